"""A Ray Tune experiment orchestrator for PyTorch RNN / LSTM / GRU / MLP model and hyperparameter search."""

__version__ = "0.1.0"
