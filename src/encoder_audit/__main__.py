"""``python -m encoder_audit`` (also what ``torchrun -m encoder_audit`` runs)."""

import sys

from .cli.main import main

sys.exit(main())
