"""rnn benchmark: same as `python -m rosenblatt.bench rnn`."""
import sys

from rosenblatt.bench.rnn import main

main(sys.argv[1:])
