"""`python -m sim.plots FOLDER`: figures from a run or sweep folder."""
import sys

from sim.plots import main

if __name__ == "__main__":
    sys.exit(main())
