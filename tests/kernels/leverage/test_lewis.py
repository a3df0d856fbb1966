"""Tests for jaxsampling.kernels.leverage.lewis (l_p Lewis weights).

The weights must satisfy the defining fixed-point equation
``w_i^(2/p) = a_i^T (A^T W^(1-2/p) A)^-1 a_i``, recomputed independently in
float64 numpy, to the reported residual (at most ``tol``), and sum to ``d``;
for p in {1, 1.5, 3, 6} and every method that the module says converges
there (the default run: auto at every p, fixed_point at 1.5, damped at 3;
the rest of the grid under ``-m slow``). The undamped iteration must not
claim convergence for p >= 4. p = 2 gives the leverage scores; zero rows get
weight zero; under jit a rank-deficient A gets its column space's weights.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.kernels.leverage import common, reference

TOL = 1e-6
_lewis = common.lewis_weights
_matrix = common.small_matrix


CONVERGING = [
    (1.0, "auto"),
    (1.5, "auto"),
    (3.0, "auto"),
    (6.0, "auto"),
    (1.5, "fixed_point"),
    (3.0, "damped"),
    pytest.param(1.0, "fixed_point", marks=pytest.mark.slow),
    pytest.param(3.0, "fixed_point", marks=pytest.mark.slow),
    pytest.param(1.0, "damped", marks=pytest.mark.slow),
    pytest.param(1.5, "damped", marks=pytest.mark.slow),
    pytest.param(6.0, "damped", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("p, method", CONVERGING)
def test_fixed_point_equation(x64, p, method):
    A = _matrix()
    w, info = _lewis(A, p=p, method=method)
    w = np.asarray(w)
    assert w.dtype == np.float64
    assert bool(info.converged) and not bool(info.diverged), info
    assert float(info.residual) <= TOL
    assert w[common.ZERO_ROW] == 0.0
    # info.residual is max |T(v) - v| in v = log w with T(v) = (p/2) log(quad):
    # the numpy violation |(2/p) log w - log quad| is (2/p) times it.
    violation = reference.lewis_violation(A, w, p)
    np.testing.assert_allclose(
        violation, (2.0 / p) * float(info.residual), rtol=1e-6, atol=1e-12
    )
    assert violation <= (2.0 / p) * TOL * (1 + 1e-6)
    # sum_i w_i = d exactly at the fixed point; each w_i is off by at most
    # a relative (2/p) tol-ish amount, so the sum is off by d * O(tol).
    np.testing.assert_allclose(w.sum(), A.shape[1], rtol=10 * TOL)
    assert np.all(w <= 1 + 10 * TOL)


@pytest.mark.parametrize("p", [4.0, 6.0])
def test_fixed_point_iteration_fails_for_large_p(x64, p):
    # 1 - p/2 <= -1 on the constant direction: the undamped iteration
    # oscillates or grows; it must say so rather than claim convergence.
    w, info = _lewis(_matrix(), p=p, method="fixed_point")
    assert bool(info.diverged) or not bool(info.converged), info
    assert not bool(info.converged)
    assert reference.lewis_violation(_matrix(), np.asarray(w), p) > 10 * TOL


@pytest.mark.parametrize(
    "method",
    [
        "auto",
        pytest.param("fixed_point", marks=pytest.mark.slow),
        pytest.param("damped", marks=pytest.mark.slow),
    ],
)
def test_p2_is_leverage(x64, method):
    A = _matrix()
    w, info = _lewis(A, p=2.0, method=method)
    assert bool(info.converged)
    np.testing.assert_allclose(w, reference.svd_leverage(A), rtol=0, atol=1e-12)


@pytest.mark.slow
def test_float32_default():
    A = jnp.asarray(_matrix(), jnp.float32)
    w, info = _lewis(A, p=1.0, method="auto")
    assert w.dtype == jnp.float32
    assert bool(info.converged), info
    with jax.enable_x64(True):
        violation = reference.lewis_violation(
            np.asarray(A, np.float64), np.asarray(w, np.float64), 1.0
        )
    assert violation <= 2 * TOL * (1 + 1e-3) + 1e-5


def test_rank_deficient_under_jit_gives_column_space_weights(x64):
    # Documented: under jit (no concrete check) a rank-deficient A gives the
    # Lewis weights of its column space, summing to rank(A) = 2 < 3.
    A = _matrix()[:, :2]
    deficient = np.concatenate([A, A[:, :1] - 2.0 * A[:, 1:2]], axis=1)
    w, info = _lewis(deficient, p=1.0, method="auto")
    assert bool(info.converged)
    np.testing.assert_allclose(np.sum(w), 2.0, rtol=1e-5)
    assert reference.lewis_violation(A, np.asarray(w), 1.0) <= 2 * TOL * (1 + 1e-3)
