"""train benchmark: same as `python -m rosenblatt.bench train`."""
import sys

from rosenblatt.bench.train import main

main(sys.argv[1:])
