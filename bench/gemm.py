"""SGEMM benchmark: same as `python -m rosenblatt.bench gemm`."""
import sys

from rosenblatt.bench.gemm import main

main(sys.argv[1:])
