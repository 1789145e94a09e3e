import sys

from biapy_cls.cli import main

if __name__ == "__main__":
    sys.exit(main())  # the exit status of `python -m biapy_cls` must say whether the run failed
