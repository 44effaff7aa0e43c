import sys

from mmreason.cli import main

if __name__ == "__main__":  # spawned worker processes (nnU-Net's) re-import the main module
    sys.exit(main())
