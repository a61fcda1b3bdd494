"""Benchmarks: `python -m rosenblatt.bench [gemm|conv|rnn|train|all]` prints ratio tables
against NumPy and PyTorch measured in the same run."""
