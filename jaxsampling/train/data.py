"""Datasets that ship with a dependency (nothing is downloaded).

``digits``: scikit-learn's handwritten digits (1797 images of 8 x 8 pixels
with values 0..16, 10 classes; it ships inside the scikit-learn wheel),
split once by a fixed permutation and standardised with the training split's
per-pixel mean and standard deviation (constant pixels keep scale 1).

Example:
    >>> data = digits()
    >>> data.x_train.shape, data.x_test.shape, data.num_classes
    ((1438, 64), (359, 64), 10)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Dataset", "digits"]


class Dataset(NamedTuple):
    """A classification dataset as float32 / int32 numpy arrays.

    Attributes:
        x_train: float32[n, d].
        y_train: int32[n].
        x_test: float32[m, d].
        y_test: int32[m].
        num_classes: the number of labels.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


def digits(test_fraction: float = 0.2, split_seed: int = 0) -> Dataset:
    """scikit-learn's digits, split and standardised.

    Args:
        test_fraction: the share of images held out (rounded down).
        split_seed: seed of the split permutation.

    Returns:
        A :class:`Dataset` (1438 / 359 images at the defaults).
    """
    from sklearn.datasets import load_digits

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    bunch = load_digits()
    x = np.asarray(bunch.data, np.float64)
    y = np.asarray(bunch.target, np.int32)
    order = np.random.default_rng(split_seed).permutation(len(y))
    num_test = int(len(y) * test_fraction)
    test, train = order[:num_test], order[num_test:]
    mean = x[train].mean(axis=0)
    scale = x[train].std(axis=0)
    scale[scale == 0] = 1.0
    x = ((x - mean) / scale).astype(np.float32)
    return Dataset(x[train], y[train], x[test], y[test], 10)
