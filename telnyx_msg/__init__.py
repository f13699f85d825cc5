from telnyx_msg._version import __version__
