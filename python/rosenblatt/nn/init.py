"""Parameter initialisers, as torch.nn.init."""
