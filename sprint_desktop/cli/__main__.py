"""`python -m sprint_desktop.cli ...` (and `accelerate launch -m sprint_desktop.cli distill ...`)."""

import sys

from . import main

sys.exit(main())
