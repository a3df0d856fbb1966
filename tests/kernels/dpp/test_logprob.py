"""Tests for jaxsampling.kernels.dpp.logprob (log-probabilities of a set).

In float64: each model's probabilities sum to 1 over every subset (or
ordered tuple) of a small ground set and match the numpy enumerations; the
L-ensemble and its correlation kernel agree; gradients with respect to the
kernel match central finite differences along random (symmetric)
directions; repeated items and missing items give ``-inf``.
"""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsampling.kernels import dpp
from tests.kernels.dpp import common, reference


def _all_subsets(n):
    """``int32[2^n, n]``: subset ``code`` padded with -1, items in increasing order."""
    rows = [reference.members(code, n) for code in range(2**n)]
    return np.array([r + [-1] * (n - len(r)) for r in rows], np.int32)


def _k_subsets(n, k):
    return np.array(list(itertools.combinations(range(n), k)), np.int32)


def _tuples(n, k):
    return np.array(list(itertools.product(range(n), repeat=k)), np.int32)


@functools.lru_cache(maxsize=None)
def _batched(fn):
    return jax.jit(jax.vmap(fn, in_axes=(None, 0)))


@functools.lru_cache(maxsize=None)
def _value_and_grad(fn):
    """One program per function and index length, for every single-set test."""
    return jax.jit(jax.value_and_grad(fn))


def _log_prob(fn, M, indices):
    return _value_and_grad(fn)(jnp.asarray(M, jnp.float64), jnp.asarray(indices, jnp.int32))[0]


def _log_probs(fn, M, sets):
    return np.asarray(_batched(fn)(jnp.asarray(M, jnp.float64), jnp.asarray(sets)))


def _design():
    """float64[6, 2] in general position (no zero or collinear rows)."""
    return np.random.default_rng(11).standard_normal((6, 2))


# ----------------------------------------------------------------------------
# Normalisation and agreement with the enumerations.
# ----------------------------------------------------------------------------


def test_projection_sums_to_one(x64):
    V = common.basis(6, 3)
    sets = _k_subsets(6, 3)
    lp = _log_probs(dpp.projection_log_prob, V, sets)
    np.testing.assert_allclose(np.exp(lp).sum(), 1.0, rtol=1e-12)
    law = reference.projection_law(V)
    np.testing.assert_allclose(np.exp(lp), law[reference.set_codes(sets)], rtol=1e-10)
    # The order of the items does not matter.
    np.testing.assert_allclose(_log_probs(dpp.projection_log_prob, V, sets[:, ::-1]), lp)


def test_likelihood_sums_to_one(x64):
    L = common.likelihood6()
    sets = _all_subsets(6)
    p = np.exp(_log_probs(dpp.likelihood_log_prob, L, sets))
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(p, reference.likelihood_law(L), rtol=1e-10)
    assert p[0] > 0  # the empty set: log det of an empty minor is 0


def test_correlation_sums_to_one(x64):
    K = common.correlation5()  # eigenvalues 1 and 0: no L-ensemble
    sets = _all_subsets(5)
    p = np.exp(_log_probs(dpp.correlation_log_prob, K, sets))
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(p, reference.correlation_law(K), rtol=1e-8, atol=1e-14)


def test_correlation_agrees_with_likelihood(x64):
    L = common.likelihood6()
    sets = _all_subsets(6)
    np.testing.assert_allclose(
        _log_probs(dpp.correlation_log_prob, common.correlation_of(L), sets),
        _log_probs(dpp.likelihood_log_prob, L, sets),
        rtol=1e-10,
    )


def test_k_dpp_sums_to_one(x64):
    L = common.likelihood6()
    sets = _k_subsets(6, 3)
    p = np.exp(_log_probs(dpp.k_log_prob, L, sets))
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(p, reference.k_dpp_law(L, 3)[reference.set_codes(sets)], rtol=1e-10)


@pytest.mark.parametrize("k", [2, 4])
def test_volume_sums_to_one(k, x64):
    X = common.design6()  # a zero row and a collinear pair: some sets have probability 0
    sets = _k_subsets(6, k)
    p = np.exp(_log_probs(dpp.volume_log_prob, X, sets))
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-12)
    law = reference.volume_law(X, k)[reference.set_codes(sets)]
    np.testing.assert_allclose(p, law, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("k", [2, 3])
def test_volume_rescaled_sums_to_one(k, x64):
    X = common.design5()  # a zero row (q = 0) and a collinear pair
    tuples = _tuples(5, k)
    p = np.exp(_log_probs(dpp.volume_rescaled_log_prob, X, tuples))
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-12)
    law = reference.volume_rescaled_law(X, k)
    np.testing.assert_allclose(p, law, rtol=1e-8, atol=1e-14)
    assert np.all(p[np.any(tuples == 4, axis=1)] == 0.0)  # the zero row: -inf, not NaN


# ----------------------------------------------------------------------------
# Gradients against central finite differences.
# ----------------------------------------------------------------------------


def _symmetric(shape, seed):
    D = np.random.default_rng(seed).standard_normal(shape)
    return (D + D.T) / 2


def _general(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


GRADIENT_CASES = {
    "projection": (dpp.projection_log_prob, lambda: common.basis(6, 3), [4, 0, 2], _general),
    "likelihood": (dpp.likelihood_log_prob, common.likelihood6, [1, 4, 5, -1], _symmetric),
    "correlation": (
        dpp.correlation_log_prob,
        lambda: common.correlation_of(common.likelihood6()),
        [0, 3, -1],
        _symmetric,
    ),
    "k": (dpp.k_log_prob, common.likelihood6, [1, 2, 5], _symmetric),
    "volume": (dpp.volume_log_prob, _design, [0, 2, 5], _general),
    "volume_rescaled": (dpp.volume_rescaled_log_prob, _design, [3, 1, 3], _general),
}


@pytest.mark.parametrize("name", sorted(GRADIENT_CASES))
def test_gradient_matches_finite_differences(name, x64):
    fn, matrix, indices, direction = GRADIENT_CASES[name]
    M = jnp.asarray(matrix(), jnp.float64)
    idx = jnp.asarray(indices, jnp.int32)
    value, grad = _value_and_grad(fn)(M, idx)
    assert np.isfinite(value)
    h = 1e-5
    for seed in range(3):
        D = jnp.asarray(direction(M.shape, seed))
        fd = (_log_prob(fn, M + h * D, idx) - _log_prob(fn, M - h * D, idx)) / (2 * h)
        np.testing.assert_allclose(jnp.vdot(grad, D), fd, rtol=1e-6, atol=1e-8)


def test_k_dpp_gradient_of_a_rank_deficient_kernel(x64):
    # Item 4 is never drawn (zero row and column): eigvalsh returns an exact 0,
    # whose log is -inf. The gradient is finite and matches finite differences
    # along directions that keep the zero row and column (no kink of max(lambda, 0)).
    L = np.array(common.likelihood5())
    L[4, :] = L[:, 4] = 0.0
    assert np.linalg.eigvalsh(L)[0] == 0.0
    L = jnp.asarray(L)
    idx = jnp.array([0, 3], jnp.int32)
    _, grad = _value_and_grad(dpp.k_log_prob)(L, idx)
    assert np.all(np.isfinite(grad))
    h = 1e-5
    for seed in range(3):
        D = _symmetric((5, 5), seed)
        D[4, :] = D[:, 4] = 0.0
        D = jnp.asarray(D)
        up, down = (_log_prob(dpp.k_log_prob, L + s * h * D, idx) for s in (1, -1))
        fd = (up - down) / (2 * h)
        np.testing.assert_allclose(jnp.vdot(grad, D), fd, rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------
# Impossible sets.
# ----------------------------------------------------------------------------

# Same index lengths as GRADIENT_CASES: the same compiled programs.
REPEATS = {
    "projection": (dpp.projection_log_prob, lambda: common.basis(6, 3), [2, 0, 2]),
    "likelihood": (dpp.likelihood_log_prob, common.likelihood6, [1, -1, 1, -1]),
    "correlation": (
        dpp.correlation_log_prob,
        lambda: common.correlation_of(common.likelihood6()),
        [3, 3, -1],
    ),
    "k": (dpp.k_log_prob, common.likelihood6, [1, 1, 4]),
    "volume": (dpp.volume_log_prob, _design, [0, 4, 0]),
}


@pytest.mark.parametrize("name", sorted(REPEATS))
def test_repeated_items_are_impossible(name, x64):
    fn, matrix, indices = REPEATS[name]
    assert _log_prob(fn, matrix(), indices) == -np.inf


def test_volume_rescaled_allows_repeats_beyond_d(x64):
    assert np.isfinite(_log_prob(dpp.volume_rescaled_log_prob, _design(), [3, 1, 3]))
    assert _log_prob(dpp.volume_rescaled_log_prob, _design(), [3, 3, 3]) < -30  # rank 1


@pytest.mark.parametrize(
    "fn, matrix, indices",
    [
        (dpp.projection_log_prob, lambda: common.basis(6, 3), [2, 0, -1]),
        (dpp.k_log_prob, common.likelihood6, [1, -1, 4]),
        (dpp.volume_log_prob, _design, [0, 4, -1]),
        (dpp.volume_rescaled_log_prob, _design, [0, -1, 3]),
    ],
    ids=["projection", "k", "volume", "volume_rescaled"],
)
def test_fixed_size_models_reject_padding(fn, matrix, indices, x64):
    assert _log_prob(fn, matrix(), indices) == -np.inf


def test_singular_minor_is_impossible(x64):
    L = np.array(common.likelihood6())
    L[2, :] = L[:, 2] = 0.0  # item 2 is never drawn
    assert _log_prob(dpp.likelihood_log_prob, L, [2, 0, -1, -1]) == -np.inf
    assert np.isfinite(_log_prob(dpp.likelihood_log_prob, L, [1, 0, -1, -1]))
