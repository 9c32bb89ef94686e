"""``python -m genesis`` runs the command line."""

import sys

from genesis.cli import main

sys.exit(main())
