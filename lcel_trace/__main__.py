"""`python -m lcel_trace` runs the `lcel-trace` command."""

import sys

from lcel_trace.cli import main

sys.exit(main())
