"""The package version, kept in one place (read by hatchling and ``telnyx_msg.__version__``)."""

__version__ = "0.1.0"
