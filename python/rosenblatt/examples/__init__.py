"""Case studies, each runnable as `python -m rosenblatt.examples.NAME [options]`:

  perceptron  Rosenblatt's learning rule, its convergence bound, XOR, and an MLP that solves it
  digits      an MLP and a LeNet-style CNN on scikit-learn's 8x8 handwritten digits
  charlm      a character-level LSTM language model (Shakespeare, Python sources, any text)
  translate   an encoder-decoder GRU from English number words to German: greedy and beam search,
              teacher forcing and scheduled sampling
  caption     image captioning: a CNN encoder and a GRU decoder on drawn scenes of shapes
  segment     FCN semantic segmentation: 1x1 classifiers, bilinear transposed convolution, skip fusion
  localize    SPP-net object localisation: features computed once, a RoI pyramid per window, mAP
  vae         a variational auto-encoder on the digits (MLP, or conv / transposed conv)
  gan         a generative adversarial network on a ring of 8 Gaussians or on the digits
  adversarial FGSM and PGD adversarial examples, and adversarial training, on the digits

Each prints its progress and, as its last line, one JSON object of final metrics.
"""
