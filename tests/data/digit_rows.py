"""A `custom` task loader for the tests: scikit-learn's handwritten digits read row by row, each image a
sequence of 8 steps of 8 pixel values, labelled with its digit."""

import numpy as np
from sklearn.datasets import load_digits


def load(val_size: int = 300, test_size: int = 300, seed: int = 0):
    digits = load_digits()
    x, y = digits.images.astype(np.float32), digits.target  # (1797, 8, 8), (1797,)
    order = np.random.default_rng(seed).permutation(len(x))
    val, test, train = order[:val_size], order[val_size : val_size + test_size], order[val_size + test_size :]
    return {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])}
