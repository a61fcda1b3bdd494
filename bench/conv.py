"""conv benchmark: same as `python -m rosenblatt.bench conv`."""
import sys

from rosenblatt.bench.conv import main

main(sys.argv[1:])
