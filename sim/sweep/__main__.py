"""`python -m sim.sweep SPEC --out DIR`: run or resume a sweep."""
import sys

from sim.sweep.cli import main

if __name__ == "__main__":
    sys.exit(main())
