"""`python -m sim` is the `nksim` command."""
import sys

from .cli import main

sys.exit(main())
