"""Tests for jaxsampling.kernels.leverage.scores.

Exact leverage scores against a float64 numpy SVD for every method; the
ill-conditioned regime (the column space known exactly, the matrix mixed by
an ill-conditioned right factor) where only ``auto``'s refinement / SVD
branches stay accurate; rank deficiency through the rank-revealing branch;
float32 branches; root-leverage scores.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsampling.kernels import leverage
from tests.kernels.leverage import reference

EPS64 = np.finfo(np.float64).eps
EPS32 = np.finfo(np.float32).eps

# One compiled program per (method, dtype): every test matrix is 60 x 4.
_scores = jax.jit(leverage.leverage_scores, static_argnames="method")


def _coherent(n=60, d=4, seed=0):
    """Gaussian rows with log-normal row scales, one row alone in its column."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d)) * np.exp(rng.standard_normal((n, 1)))
    A[:, -1] = 0.0
    A[7, -1] = 3.0  # row 7 is the only one reaching the last column: tau_7 = 1
    return A


def _mixed(A, cond, seed=1):
    """``A T`` with ``T`` of condition number ``cond``: same column space as ``A``."""
    rng = np.random.default_rng(seed)
    d = A.shape[1]
    Q1, _ = np.linalg.qr(rng.standard_normal((d, d)))
    Q2, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return A @ Q1 @ np.diag(np.logspace(0.0, -np.log10(cond), d)) @ Q2


@pytest.mark.parametrize("method", leverage.METHODS)
def test_matches_svd_float64(x64, method):
    A = _coherent()
    expected = reference.svd_leverage(A)
    tau = np.asarray(_scores(A, method=method))
    assert tau.dtype == np.float64
    np.testing.assert_allclose(tau, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tau.sum(), A.shape[1], rtol=1e-13)
    assert np.all(tau >= 0) and np.all(tau <= 1 + 1e-12)
    np.testing.assert_allclose(tau[7], 1.0, atol=1e-12)


@pytest.mark.parametrize("cond", [1e6, 1e10])
def test_ill_conditioned_auto_stays_accurate(x64, cond):
    # A T has A's column space, hence A's scores; forming A T in float64
    # perturbs them by about eps * cond, the tolerance's scale.
    A = _coherent()
    expected = reference.svd_leverage(A)
    B = _mixed(A, cond)
    assert 0.5 * cond < np.linalg.cond(B) < 5 * cond
    atol = 10 * EPS64 * cond
    tau = np.asarray(_scores(B))
    np.testing.assert_allclose(tau, expected, rtol=0, atol=atol)
    np.testing.assert_allclose(tau.sum(), A.shape[1], atol=atol)
    assert np.all(tau >= 0) and np.all(tau <= 1 + atol)
    # The tolerance is meaningful: plain one-pass Cholesky-QR (relative error
    # ~ eps kappa^2) misses it, which is why "auto" refines or switches.
    plain = np.asarray(_scores(B, method="cholqr"))
    assert not np.all(np.abs(plain - expected) <= atol)


def test_column_scaling_is_harmless(x64):
    # Columns scaled over 10 decades: the column equilibration of the Gram
    # matrix removes it, so even one-pass Cholesky-QR is exact.
    A = _coherent()
    expected = reference.svd_leverage(A)
    scaled = A * np.array([1.0, 1e-3, 1e-6, 1e-10])
    for method in leverage.METHODS:
        np.testing.assert_allclose(
            _scores(scaled, method=method), expected, rtol=0, atol=1e-12
        )


@pytest.mark.parametrize("cond", [10.0, 1e3])
def test_float32_auto_branches(cond):
    # float32: cond 10 takes the one-pass branch, 1e3 the SVD branch
    # (module docstring: eps kappa_F(G) against sqrt(eps) and 1e-2). Each is
    # held to its own error: one-pass Cholesky-QR ~ eps kappa(B)^2 (kappa(B) = 40
    # at cond 10: 1.9e-4), the SVD ~ eps kappa(B).
    A = _coherent()
    expected = reference.svd_leverage(A)
    mixed = _mixed(A, cond)
    B = jnp.asarray(mixed, jnp.float32)
    tau = np.asarray(_scores(B))
    assert tau.dtype == np.float32
    kappa = np.linalg.cond(mixed)
    atol = EPS32 * kappa**2 if cond == 10.0 else max(10 * EPS32 * cond, 1e-5)
    np.testing.assert_allclose(tau, expected, rtol=0, atol=atol)
    np.testing.assert_allclose(tau.sum(), A.shape[1], atol=A.shape[1] * atol)
    assert np.all(tau >= 0) and np.all(tau <= 1 + atol)


@pytest.mark.parametrize("method", ["svd", "auto"])
def test_rank_deficient_sums_to_rank(x64, method):
    A = _coherent()[:, :3]
    dependent = A[:, :2] @ np.array([[1.0], [-2.0]])
    deficient = np.concatenate([A, dependent], axis=1)  # rank 3
    tau = np.asarray(_scores(deficient, method=method))
    np.testing.assert_allclose(tau.sum(), 3.0, rtol=1e-12)
    np.testing.assert_allclose(tau, reference.svd_leverage(A), rtol=0, atol=1e-12)
    assert np.all(tau >= 0) and np.all(tau <= 1 + 1e-12)


def test_root_leverage_is_sqrt():
    A = jnp.asarray(_coherent(), jnp.float32)
    root = jax.jit(leverage.root_leverage_scores)(A)
    np.testing.assert_allclose(root, jnp.sqrt(_scores(A, method="auto")), rtol=1e-6)


def test_root_leverage_bounds_rows(x64):
    # |a_i x| <= sqrt(tau_i) ||A x||_2 for all x (Cauchy-Schwarz in the whitened basis).
    A = _coherent()
    root = np.sqrt(np.asarray(_scores(A, method="auto")))
    X = np.random.default_rng(3).standard_normal((A.shape[1], 200))
    AX = A @ X
    bound = root[:, None] * np.linalg.norm(AX, axis=0)
    assert np.all(np.abs(AX) <= bound * (1 + 1e-12))
