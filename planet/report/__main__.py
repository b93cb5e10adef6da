"""`python -m planet.report`: the same as `planet report` (planet/report/cli.py)."""

import sys

from planet.report.cli import main

sys.exit(main())
