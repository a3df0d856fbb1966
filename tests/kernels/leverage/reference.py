"""Independent float64 numpy/scipy references for the leverage kernel tests.

Nothing here imports the kernels: every quantity is computed from its
definition (an SVD, a linear program, a constrained minimisation, a
water-filling), so a test compares the kernel with a second derivation.
"""

import numpy as np
from scipy import linalg, optimize


def svd_leverage(A):
    """``||U_i||^2`` over the left singular vectors above numpy's rank tolerance."""
    A = np.asarray(A, np.float64)
    U, s, _ = np.linalg.svd(A, full_matrices=False)
    keep = s > s[0] * max(A.shape) * np.finfo(np.float64).eps
    return np.sum(U[:, keep] ** 2, axis=1)


def lewis_violation(A, w, p):
    """``max_i |log(w_i^(2/p) / a_i^T (A^T W^(1-2/p) A)^-1 a_i)|``, non-zero rows."""
    A = np.asarray(A, np.float64)
    w = np.asarray(w, np.float64)
    rows = np.any(A != 0, axis=1)
    A, w = A[rows], w[rows]
    M = A.T @ (w[:, None] ** (1.0 - 2.0 / p) * A)
    quad = np.einsum("ij,ij->i", A, np.linalg.solve(M, A.T).T)
    return float(np.max(np.abs((2.0 / p) * np.log(w) - np.log(quad))))


def l1_sensitivity_lp(A):
    """``1 / min{||A x||_1 : a_i x = 1}`` per row, and the minimisers, by linprog.

    Variables ``(x, t)`` with ``-t <= A x <= t``; minimise ``sum t``.
    """
    A = np.asarray(A, np.float64)
    n, d = A.shape
    cost = np.r_[np.zeros(d), np.ones(n)]
    eye = np.eye(n)
    A_ub = np.block([[A, -eye], [-A, -eye]])
    bounds = [(None, None)] * d + [(0, None)] * n
    sigma, xs = np.empty(n), np.empty((n, d))
    for i in range(n):
        res = optimize.linprog(
            cost, A_ub=A_ub, b_ub=np.zeros(2 * n), A_eq=np.r_[A[i], np.zeros(n)][None],
            b_eq=[1.0], bounds=bounds, method="highs",
        )
        assert res.status == 0, res.message
        sigma[i], xs[i] = 1.0 / res.fun, res.x[:d]
    return sigma, xs


def lp_sensitivity_minimize(A, p):
    """``1 / min{||A x||_p^p : a_i x = 1}`` per row (p > 1), and the minimisers.

    ``x = a_i / ||a_i||^2 + N z`` with ``N`` a null-space basis of ``a_i``
    (scipy), minimised over ``z`` by BFGS with the analytic gradient.
    """
    A = np.asarray(A, np.float64)
    n, d = A.shape
    sigma, xs = np.empty(n), np.empty((n, d))
    for i in range(n):
        a = A[i]
        base = a / (a @ a)
        N = linalg.null_space(a[None])
        B, c = A @ N, A @ base

        def f(z, B=B, c=c):
            r = B @ z + c
            return np.sum(np.abs(r) ** p), B.T @ (p * np.abs(r) ** (p - 1) * np.sign(r))

        res = optimize.minimize(
            f, np.zeros(d - 1), jac=True, method="BFGS",
            options={"gtol": 1e-13, "maxiter": 10_000},
        )
        sigma[i], xs[i] = 1.0 / res.fun, base + N @ res.x
    return sigma, xs


def l1_regression_lp(A, b, weights=None):
    """``min_x sum_i c_i |a_i x - b_i|`` by linprog: the optimal value."""
    A, b = np.asarray(A, np.float64), np.asarray(b, np.float64)
    n, d = A.shape
    c = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    eye = np.eye(n)
    res = optimize.linprog(
        np.r_[np.zeros(d), c],
        A_ub=np.block([[A, -eye], [-A, -eye]]),
        b_ub=np.r_[b, -b],
        bounds=[(None, None)] * d + [(0, None)] * n, method="highs",
    )
    assert res.status == 0, res.message
    return res.fun


def lp_regression_minimize(A, b, p, weights=None):
    """``min_x sum_i c_i |a_i x - b_i|^p`` for ``p > 1`` by BFGS from least squares."""
    A, b = np.asarray(A, np.float64), np.asarray(b, np.float64)
    c = np.ones(A.shape[0]) if weights is None else np.asarray(weights, np.float64)

    def f(x):
        r = A @ x - b
        grad = A.T @ (c * p * np.abs(r) ** (p - 1) * np.sign(r))
        return np.sum(c * np.abs(r) ** p), grad

    x0 = np.linalg.lstsq(A * np.sqrt(c)[:, None], b * np.sqrt(c), rcond=None)[0]
    res = optimize.minimize(
        f, x0, jac=True, method="BFGS", options={"gtol": 1e-12, "maxiter": 10_000}
    )
    return res.fun


def inclusion_probabilities(q, m):
    """Water-filling: ``pi = min(1, c q)`` with ``sum pi = m``."""
    q = np.asarray(q, np.float64)
    q = q / q.sum()
    order = np.argsort(-q)
    pi = np.zeros_like(q)
    for k in range(m + 1):  # k saturated rows
        rest = q[order[k:]]
        c = (m - k) / rest.sum()
        if k == len(q) or c * rest[0] <= 1.0:
            pi[order[:k]] = 1.0
            pi[order[k:]] = c * rest
            return pi
    raise AssertionError("unreachable: m <= number of positive entries")
