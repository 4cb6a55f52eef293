"""`python -m vmm.cli`: the same as the `pyvmm` command."""

import sys

from vmm.cli import main

sys.exit(main())
