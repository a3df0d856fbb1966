"""Tests for jaxsampling.kernels.dpp.spectral (Spectrum, the law of the size).

The spectra of an L-ensemble and of a correlation kernel against numpy's
``eigh`` (sorted, zero eigenvalues dropped, the kernel rebuilt from its
pairs); ``spectrum_from_eigh``'s round-off clipping; a traced kernel keeps
every pair; ``size_distribution`` and ``max_size_for`` against the
``2^r`` enumerated Bernoulli outcomes.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsampling.kernels import dpp
from tests.kernels.dpp import common, reference


def _assert_orthonormal(V, atol):
    V = np.asarray(V, np.float64)
    np.testing.assert_allclose(V.T @ V, np.eye(V.shape[1]), atol=atol)


@pytest.mark.slow  # the float32 versions below run by default
def test_spectrum_from_likelihood(x64):
    L = common.likelihood5()
    s = dpp.spectrum_from_likelihood(L)
    lam = np.sort(np.linalg.eigvalsh(L))[::-1][:4]  # the fifth is zero: dropped
    assert s.rank == 4 and s.num_items == 5
    np.testing.assert_allclose(s.marginals, lam / (1 + lam), rtol=1e-12)
    np.testing.assert_allclose(s.log_eigenvalues, np.log(lam), rtol=1e-12)
    _assert_orthonormal(s.eigenvectors, 1e-12)
    V = np.asarray(s.eigenvectors)
    np.testing.assert_allclose((V * np.exp(s.log_eigenvalues)) @ V.T, L, atol=1e-12)


def test_spectrum_from_likelihood_float32():
    s = common.spectrum("likelihood5")  # spectrum_from_likelihood in float32
    assert s.rank == 4 and s.marginals.dtype == jnp.float32
    np.testing.assert_allclose(s.marginals, [0.75, 0.6, 0.7 / 1.7, 0.2], rtol=1e-5)
    assert np.all(np.diff(np.asarray(s.marginals)) < 0)
    _assert_orthonormal(s.eigenvectors, 1e-6)
    V = np.asarray(s.eigenvectors, np.float64)
    lam = np.exp(np.asarray(s.log_eigenvalues, np.float64))
    np.testing.assert_allclose((V * lam) @ V.T, common.likelihood5(), atol=1e-5)


def test_spectrum_from_correlation_float32():
    s = common.spectrum("correlation5")
    assert s.rank == 4  # the zero eigenvalue is dropped
    np.testing.assert_allclose(s.marginals, [1.0, 0.7, 0.45, 0.2], atol=1e-6)
    mu = np.array([0.7, 0.45, 0.2])
    np.testing.assert_allclose(s.log_eigenvalues[1:], np.log(mu / (1 - mu)), rtol=1e-5)
    assert s.log_eigenvalues[0] > 13  # eigenvalue 1 of K: lambda = +inf up to round-off


@pytest.mark.slow
def test_spectrum_from_correlation(x64):
    K = common.correlation5()
    s = dpp.spectrum_from_correlation(K)
    assert s.rank == 4  # the zero eigenvalue is dropped
    np.testing.assert_allclose(s.marginals, [1.0, 0.7, 0.45, 0.2], atol=1e-12)
    mu = np.array([0.7, 0.45, 0.2])
    np.testing.assert_allclose(s.log_eigenvalues[1:], np.log(mu / (1 - mu)), rtol=1e-10)
    assert s.log_eigenvalues[0] > 25  # eigenvalue 1 of K: lambda = +inf up to round-off
    V = np.asarray(s.eigenvectors)
    np.testing.assert_allclose((V * np.asarray(s.marginals)) @ V.T, K, atol=1e-12)


def test_spectrum_from_eigh_clips_round_off(x64):
    V = common.basis(4, 3)
    s = dpp.spectrum_from_eigh(jnp.array([-1e-15, 2.0, 0.5]), V)
    assert s.rank == 2
    np.testing.assert_allclose(s.marginals, [2 / 3, 1 / 3])
    np.testing.assert_array_equal(s.eigenvectors, V[:, [1, 2]])
    s = dpp.spectrum_from_eigh(jnp.array([1 + 1e-14, 0.5, 0.0]), V, kernel="correlation")
    assert s.rank == 2
    np.testing.assert_array_equal(s.marginals, [1.0, 0.5])
    assert s.log_eigenvalues[0] == np.inf and s.log_eigenvalues[1] == 0.0


def test_traced_kernel_keeps_every_pair():
    s = jax.jit(dpp.spectrum_from_likelihood)(jnp.asarray(common.likelihood5(), jnp.float32))
    assert s.rank == 5
    np.testing.assert_allclose(s.marginals[:4], [0.75, 0.6, 0.7 / 1.7, 0.2], rtol=1e-5)
    assert s.marginals[4] == 0.0 and s.log_eigenvalues[4] == -np.inf


# ----------------------------------------------------------------------------
# The law of |S| and max_size_for.
# ----------------------------------------------------------------------------

_size_distribution = jax.jit(dpp.size_distribution)

SIZE_CASES = {
    "uniform": np.random.default_rng(0).uniform(size=10),
    "zeros and ones": np.array([1.0, 0.0, 0.3, 1.0, 0.9, 0.0, 0.05]),
    "tiny": np.array([1e-6, 3e-7, 1e-5, 2e-6]),
    "near one": np.array([1 - 1e-6, 0.999, 0.99, 0.5, 0.5, 0.01]),
    "ones": np.ones(5),
}


@pytest.mark.parametrize("name", sorted(SIZE_CASES))
def test_size_distribution(name, x64):
    p = SIZE_CASES[name]
    pmf = np.asarray(_size_distribution(jnp.asarray(p)))
    np.testing.assert_allclose(pmf, reference.poisson_binomial(p), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(pmf.sum(), 1.0, rtol=1e-12)


def test_size_distribution_float32():
    p = SIZE_CASES["uniform"]
    pmf = _size_distribution(jnp.asarray(p, jnp.float32))
    assert pmf.dtype == jnp.float32
    np.testing.assert_allclose(pmf, reference.poisson_binomial(p), atol=1e-6)


def _spectrum_of(p):
    p = np.asarray(p, np.float64)
    with np.errstate(divide="ignore"):
        return dpp.Spectrum(np.eye(p.size), p, np.log(p) - np.log1p(-p))


@pytest.mark.parametrize("tail", [0.5, 1e-2, 1e-4, 1e-9])
@pytest.mark.parametrize("name", sorted(SIZE_CASES))
def test_max_size_for(name, tail):
    p = SIZE_CASES[name]
    m = dpp.max_size_for(_spectrum_of(p), tail=tail)
    assert isinstance(m, int)
    assert m == reference.max_size(p, tail)


def test_max_size_for_default_tail_and_bounds():
    p = np.random.default_rng(1).uniform(size=12)
    assert dpp.max_size_for(_spectrum_of(p)) == reference.max_size(p, 1e-9)
    assert dpp.max_size_for(_spectrum_of([1e-12, 1e-12])) == 1  # never below 1
    assert dpp.max_size_for(_spectrum_of(np.ones(4))) == 4  # never above the rank
    s = common.spectrum("likelihood40")
    assert dpp.max_size_for(s) == 16 < s.rank == 40
