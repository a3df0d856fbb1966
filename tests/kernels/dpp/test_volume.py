"""Tests for jaxsampling.kernels.dpp.volume (volume and volume-rescaled sampling).

100,000 draws from fixed keys of a 6 x 2 design with a zero row and two
collinear rows: the law of the set against ``det(X_S^T X_S)`` enumerated in
numpy (chi-square), for ``k = d`` (the zero row and the collinear pair,
probability 0, never appear) and ``k > d``; each item's position uniform;
volume-rescaled sampling of a 5 x 2 design: the law of the ordered tuple
against the Cauchy-Binet sum of the construction (chi-square), no
zero-probability tuple; ``column_basis``.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsampling import testing
from jaxsampling.kernels import dpp
from tests.kernels.dpp import common, reference


@functools.lru_cache(maxsize=None)
def _volume_draws(k):
    X = common.design6()
    S = common.volume_sample(
        jax.random.key(20 + k), jnp.asarray(X, jnp.float32), k=k, num_draws=common.NUM_DRAWS
    )
    return X, np.asarray(S)


@functools.lru_cache(maxsize=None)
def _rescaled_draws(k):
    X = common.design5()
    S = common.volume_rescaled_sample(
        jax.random.key(30 + k), jnp.asarray(X, jnp.float32), k=k, num_draws=common.NUM_DRAWS
    )
    return X, np.asarray(S)


@pytest.mark.parametrize("k", [2, 4])
def test_volume_law(k):
    X, S = _volume_draws(k)
    assert S.shape == (common.NUM_DRAWS, k)
    common.assert_valid_draws(S, 6, np.full(S.shape[0], k))
    law = reference.volume_law(X, k)
    testing.assert_chi_square(reference.histogram(reference.set_codes(S), 2**6), law)


def test_volume_zero_probability_sets_never_appear():
    _, S = _volume_draws(2)
    assert not np.any(S == 5)  # the zero row
    assert not np.any((np.sort(S, axis=1) == [0, 1]).all(axis=1))  # the collinear pair
    _, S = _volume_draws(4)
    assert np.any(S == 5)  # with k > d the zero row has positive probability


def test_volume_order_is_uniform():
    X, S = _volume_draws(4)
    law = reference.volume_law(X, 4)
    inclusion = np.array([law[(np.arange(64) >> i) & 1 == 1].sum() for i in range(6)])
    at = np.stack([np.bincount(S[:, j], minlength=6) for j in range(4)], axis=1)
    testing.assert_binomial_count(at, S.shape[0], inclusion[:, None] / 4 * np.ones((1, 4)))


@pytest.mark.parametrize("k", [3, pytest.param(2, marks=pytest.mark.slow)])
def test_volume_rescaled_law(k):
    X, S = _rescaled_draws(k)
    assert S.shape == (common.NUM_DRAWS, k) and S.dtype == np.int32
    assert np.all((S >= 0) & (S < 5))
    law = reference.volume_rescaled_law(X, k)
    np.testing.assert_allclose(law.sum(), 1.0, rtol=1e-12)
    observed = reference.histogram(reference.tuple_codes(S, 5), 5**k)
    assert np.all(observed[law < 1e-12] == 0)  # zero-probability tuples never appear
    testing.assert_chi_square(observed, law)


def test_volume_rescaled_zero_probability_tuples():
    _, S = _rescaled_draws(3)
    assert not np.any(S == 4)  # the zero row: q = 0
    assert not np.any((S[:, :1] == S).all(axis=1))  # (i, i, i) spans one direction
    collinear = np.isin(S, [0, 1]).all(axis=1)
    assert not np.any(collinear)  # rows 0 and 1 only: rank 1
    assert np.any(S[:, 0] == S[:, 1])  # repeats do occur (k > d)


def test_column_basis():
    X = common.design6()
    Q = np.asarray(dpp.column_basis(jnp.asarray(X, jnp.float32)), np.float64)
    assert Q.shape == (6, 2)
    np.testing.assert_allclose(Q.T @ Q, np.eye(2), atol=1e-6)
    np.testing.assert_allclose(Q @ (Q.T @ X), X, atol=1e-5)
