"""``python -m telnyx_msg`` runs the ``telnyx-msg`` command."""

import sys

from telnyx_msg.cli import main

sys.exit(main())
