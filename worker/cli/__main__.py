"""`python -m worker.cli` runs the `crackq` command."""

import sys

from worker.cli.main import main

sys.exit(main())
