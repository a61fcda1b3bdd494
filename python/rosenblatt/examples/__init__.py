"""Case studies, each runnable as `python -m rosenblatt.examples.NAME [options]`:

  perceptron  Rosenblatt's learning rule, its convergence bound, XOR, and an MLP that solves it
  digits      an MLP and a LeNet-style CNN on scikit-learn's 8x8 handwritten digits
  charlm      a character-level LSTM language model (Shakespeare, Python sources, any text)

Each prints its progress and, as its last line, one JSON object of final metrics.
"""
