"""Tests for jaxsampling.kernels.leverage.regression (weighted l_p regression).

Against independent float64 solutions: numpy ``lstsq`` (p = 2), a scipy
``linprog`` linear program (p = 1) and scipy BFGS (p = 3). One 210 x 3
problem with heavy-tailed noise whose last 10 rows are wild outliers with
weight zero: the solution must ignore them.
"""

import functools

import jax
import numpy as np
import pytest

from jaxsampling.kernels import leverage
from tests.kernels.leverage import reference

N, D, BAD = 200, 3, 10
_regression = jax.jit(leverage.lp_regression, static_argnames="p")


@functools.lru_cache(maxsize=None)
def _problem():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((N + BAD, D))
    b = A @ np.array([1.0, -2.0, 0.5]) + rng.standard_t(2.0, size=N + BAD)
    b[N:] += 1e4  # outliers, weight 0 below
    weights = np.r_[np.ones(N), np.zeros(BAD)]
    return A, b, weights


@functools.lru_cache(maxsize=None)
def _reference(p):
    A, b, _ = _problem()
    A, b = A[:N], b[:N]
    if p == 1.0:
        return reference.l1_regression_lp(A, b)
    if p == 2.0:
        x = np.linalg.lstsq(A, b, rcond=None)[0]
        return float(np.sum((A @ x - b) ** 2))
    return reference.lp_regression_minimize(A, b, p)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_zero_weight_rows_ignored_and_optimal(x64, p):
    A, b, weights = _problem()
    x, info = _regression(A, b, p=p, weights=weights)
    expected = _reference(p)
    if p != 1.0:  # at p = 1 IRLS may stop at max_iterations (linear convergence)
        assert bool(info.converged)
    np.testing.assert_allclose(info.objective, expected, rtol=1e-8)
    # The reported objective is the objective of x, on the weighted rows only.
    np.testing.assert_allclose(
        info.objective, np.sum(np.abs(A[:N] @ np.asarray(x) - b[:N]) ** p), rtol=1e-12
    )
    assert float(info.objective) >= expected * (1 - 1e-12)
    if p == 2.0:
        np.testing.assert_allclose(
            x, np.linalg.lstsq(A[:N], b[:N], rcond=None)[0], rtol=0, atol=1e-10
        )
        assert int(info.iterations) == 0


def test_p2_general_weights_match_lstsq(x64):
    A, b, _ = _problem()
    c = np.random.default_rng(1).uniform(0.0, 3.0, size=A.shape[0])
    x, info = _regression(A, b, p=2.0, weights=c)
    root = np.sqrt(c)
    expected = np.linalg.lstsq(A * root[:, None], b * root, rcond=None)[0]
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(
        info.objective, leverage.lp_objective(A, b, expected, 2.0, c), rtol=1e-10
    )


@pytest.mark.parametrize("p", [1.0, 3.0])
def test_general_weights(x64, p):
    A, b, _ = _problem()
    c = np.r_[np.random.default_rng(2).uniform(0.5, 2.0, size=N), np.zeros(BAD)]
    if p == 1.0:
        expected = reference.l1_regression_lp(A[:N], b[:N], weights=c[:N])
    else:
        expected = reference.lp_regression_minimize(A[:N], b[:N], p, weights=c[:N])
    _, info = _regression(A, b, p=p, weights=c)
    np.testing.assert_allclose(info.objective, expected, rtol=1e-8)
