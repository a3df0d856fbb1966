"""Shared test matrices, jitted kernels and draw checks for the DPP tests.

Compiling dominates the run time, so the tests share one jitted wrapper per
kernel (jit caches per wrapper) and a few fixed float64 numpy matrices
(passed as float32 unless a test runs under the ``x64`` fixture): one
program per shape, dtype and static argument.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxsampling.kernels import dpp

NUM_DRAWS = 100_000
"""Draws per statistical test: a 1% relative error of a 5% cell is 5 sigma."""

sample_projection = jax.jit(dpp.sample_projection, static_argnames="num_draws")
sample = jax.jit(dpp.sample, static_argnames=("max_size", "num_draws"))
sample_k = jax.jit(dpp.sample_k, static_argnames=("k", "num_draws"))
volume_sample = jax.jit(dpp.volume_sample, static_argnames=("k", "num_draws"))
volume_rescaled_sample = jax.jit(dpp.volume_rescaled_sample, static_argnames=("k", "num_draws"))


def _frozen(a):
    a = np.asarray(a, np.float64)
    a.setflags(write=False)
    return a


def _orthogonal(n, seed):
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return Q


@functools.lru_cache(maxsize=None)
def basis(n, k, seed=0):
    """float64[n, k] with orthonormal columns (QR of a Gaussian matrix)."""
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, k)))
    return _frozen(Q)


def _from_spectrum(eigenvalues, seed):
    U = _orthogonal(len(eigenvalues), seed)
    M = (U * np.asarray(eigenvalues, np.float64)) @ U.T
    return _frozen((M + M.T) / 2)


@functools.lru_cache(maxsize=None)
def likelihood5():
    """float64[5, 5] L-ensemble of rank 4: eigenvalues 3, 1.5, 0.7, 0.25, 0 (E|S| = 1.96)."""
    return _from_spectrum([3.0, 1.5, 0.7, 0.25, 0.0], seed=1)


@functools.lru_cache(maxsize=None)
def correlation5():
    """float64[5, 5] correlation kernel with eigenvalues 1, 0.7, 0.45, 0.2, 0."""
    return _from_spectrum([1.0, 0.7, 0.45, 0.2, 0.0], seed=2)


@functools.lru_cache(maxsize=None)
def likelihood6():
    """float64[6, 6] full-rank L-ensemble: eigenvalues 4, 2, 1, 0.5, 0.2, 0.05."""
    return _from_spectrum([4.0, 2.0, 1.0, 0.5, 0.2, 0.05], seed=3)


@functools.lru_cache(maxsize=None)
def likelihood40():
    """float64[40, 40] L-ensemble with eigenvalues 8 * 0.7^j.

    In float32 the spectrum keeps all 40 eigenpairs and ``max_size_for`` is 16,
    so the chain rule is bucketed (several widths); most draws keep only
    leading eigenvectors (``sum_{j >= 18} p_j`` is about 0.05).
    """
    return _from_spectrum(8.0 * 0.7 ** np.arange(40), seed=4)


@functools.lru_cache(maxsize=None)
def design6():
    """float64[6, 2] full rank; row 1 = -2 row 0 (collinear), row 5 = 0.

    Volume sampling with ``k = d = 2`` never picks row 5 nor ``{0, 1}``.
    """
    X = np.random.default_rng(5).standard_normal((6, 2))
    X[1] = -2.0 * X[0]
    X[5] = 0.0
    return _frozen(X)


@functools.lru_cache(maxsize=None)
def design5():
    """float64[5, 2] full rank with a zero row (4) and collinear rows 0 and 1."""
    X = np.random.default_rng(6).standard_normal((5, 2)) * [[1.0, 3.0]]
    X[1] = 0.5 * X[0]
    X[4] = 0.0
    return _frozen(X)


@functools.lru_cache(maxsize=None)
def spectrum(name):
    """The float32 :class:`dpp.Spectrum` of one of the kernels above (computed once)."""
    M = jnp.asarray(globals()[name](), jnp.float32)
    if name.startswith("correlation"):
        return dpp.spectrum_from_correlation(M)
    return dpp.spectrum_from_likelihood(M)


ENSEMBLE_SEEDS = {"likelihood5": 1, "correlation5": 2, "likelihood40": 3}


@functools.lru_cache(maxsize=None)
def ensemble_draws(name, max_size, num_draws=NUM_DRAWS):
    """(keys, numpy DPPDraw): ``sample`` from a batch of keys, so tests can reuse a prefix."""
    keys = jax.random.split(jax.random.key(ENSEMBLE_SEEDS[name]), num_draws)
    draw = sample(keys, spectrum(name), max_size=max_size)
    return keys, jax.tree.map(np.asarray, draw)


def bucketed_draws():
    """20,000 draws of the 40-item spectrum with max_size 16 (the bucketed chain rule)."""
    return ensemble_draws("likelihood40", 16, 20_000)


def correlation_of(L):
    """``K = L (I + L)^{-1}`` in float64."""
    L = np.asarray(L, np.float64)
    return L @ np.linalg.inv(np.eye(L.shape[0]) + L)


def assert_valid_draws(indices, n, sizes=None):
    """Each row: distinct items in ``[0, n)`` first, then only ``-1``; ``sizes`` items."""
    idx = np.asarray(indices)
    assert idx.dtype == np.int32, idx.dtype
    valid = idx != dpp.PAD
    assert np.all((idx[valid] >= 0) & (idx[valid] < n)), "item out of range"
    # Items first, padding after.
    assert np.all(valid[:, :-1] | ~valid[:, 1:]), "an item follows the padding"
    s = np.sort(np.where(valid, idx, n + np.arange(idx.shape[1])), axis=1)
    assert np.all(s[:, 1:] > s[:, :-1]), "a draw repeats an item"
    if sizes is not None:
        np.testing.assert_array_equal(valid.sum(axis=1), np.asarray(sizes))
