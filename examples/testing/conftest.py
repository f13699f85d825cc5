"""Enable the telnyx_msg fixtures: ``telnyx_fake``, ``telnyx_client``,
``telnyx_fake_config``.
"""

pytest_plugins = ["telnyx_msg.testing.pytest_plugin"]
