"""Weighted l_p regression ``min_x sum_i c_i |a_i x - b_i|^p``.

* ``p = 2``: closed form, Householder QR of ``diag(sqrt(c)) A``.
* any other ``p >= 1``: iteratively reweighted least squares. Each iteration
  solves the weighted least-squares problem with weights
  ``c_i max(|r_i|, delta)^(p - 2)`` (``r = A x - b``) and moves along the
  direction to its solution by the step in ``{2^8, ..., 2, 1, 1/2, ..., 2^-15, 0}``
  that minimises the true objective (all 25 candidates are evaluated at once,
  one ``n x 25`` array; the long steps speed up the linear convergence of
  IRLS at ``p = 1``). For ``p <= 2`` the full step is the
  majorise-minimise step (``|r|^p`` is majorised by a quadratic touching it
  at ``r``) and never increases the objective; for ``p > 2`` the direction is
  ``p - 1`` times the Newton direction and the step search makes the
  iteration monotone. ``delta`` starts at ``max |r|`` and halves every
  iteration down to ``sqrt(eps)`` times the median least-squares residual, so zero residuals do not
  make the system singular.
  The loop stops when the objective falls by less than ``tol`` relative to
  itself once ``delta`` has reached its floor, or after ``max_iterations``.
  For ``p = 1`` three final rounds solve the ``d x d`` systems of the rows
  with the smallest residuals (the vertex IRLS converges to, only linearly)
  and keep the best vertex if it lowers the objective.

Rows sharded on an explicit mesh are all-gathered first (the solver is meant
for coresets, ``m << n`` rows). Rows with ``c_i = 0`` do not count, so the padded rows of a
:class:`~jaxsampling.kernels.leverage.sampling.RowSample` coreset (zero rows,
zero weight) are harmless.

Example:
  >>> import jax.numpy as jnp
  >>> from jaxsampling.kernels import leverage
  >>> A = jnp.ones((5, 1))
  >>> b = jnp.array([0.0, 1.0, 2.0, 3.0, 100.0])
  >>> x, info = leverage.lp_regression(A, b, p=1.0)   # the median
  >>> round(float(x[0]), 4)
  2.0
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxsampling import sharding
from jaxsampling.kernels.leverage import _checks
from jaxsampling.types import Array, ArrayLike

__all__ = ["RegressionInfo", "lp_objective", "lp_regression"]

_STEPS = 16
_EXTRAPOLATE = 8


class RegressionInfo(NamedTuple):
    """Diagnostics of :func:`lp_regression`.

    Attributes:
      iterations: ``int32[]`` IRLS iterations (0 for ``p = 2``).
      objective: ``float[]`` ``sum_i c_i |a_i x - b_i|^p`` at the solution.
      converged: ``bool[]`` the stopping rule was met before ``max_iterations``.
    """

    iterations: Array
    objective: Array
    converged: Array


class _Loop(NamedTuple):
    x: Array  # float[d]
    objective: Array  # float[]
    delta: Array  # float[]: IRLS smoothing of small residuals
    change: Array  # float[]: last relative decrease of the objective
    iterations: Array  # int32[]


def lp_objective(A: Array, b: Array, x: Array, p: float, weights: Array | None = None) -> Array:
    """``sum_i c_i |a_i x - b_i|^p`` (``c = 1`` when ``weights`` is None)."""
    cost = jnp.abs(A @ x - b) ** p
    return jnp.sum(cost if weights is None else weights * cost)


def _weighted_least_squares(A: Array, b: Array, c: Array) -> Array:
    """``argmin sum c_i (a_i x - b_i)^2`` from the equilibrated normal equations."""
    Ac = A * c[:, None]
    gram = A.T @ Ac
    scale = jnp.sqrt(jnp.diagonal(gram))
    scale = jnp.where(scale > 0, scale, 1.0)
    gram = gram / scale[:, None] / scale[None, :]
    rhs = (Ac.T @ b) / scale
    factor = jax.scipy.linalg.cho_factor(gram, lower=True)
    return jax.scipy.linalg.cho_solve(factor, rhs) / scale


def _least_squares(A: Array, b: Array, c: Array) -> Array:
    root = jnp.sqrt(c)
    Q, R = jnp.linalg.qr(A * root[:, None])
    return jax.scipy.linalg.solve_triangular(R, Q.T @ (root * b), lower=False)


def _irls(A, b, c, p, tol, max_iterations):
    dtype = A.dtype
    x0 = _least_squares(A, b, c)
    r0 = A @ x0 - b
    typical = jnp.nanmedian(jnp.where(c > 0, jnp.abs(r0), jnp.nan))
    floor = jnp.sqrt(jnp.finfo(dtype).eps) * jnp.where(typical > 0, typical, 1.0)
    exponents = jnp.arange(-_EXTRAPOLATE, _STEPS, dtype=dtype)
    steps = jnp.concatenate([2.0**-exponents, jnp.zeros(1, dtype)])

    def objective_of(r):
        return jnp.sum(c[:, None] * jnp.abs(r) ** p, axis=0)

    init = _Loop(
        x0,
        jnp.sum(c * jnp.abs(r0) ** p),
        jnp.maximum(jnp.max(jnp.abs(r0)), floor),
        jnp.asarray(jnp.inf, dtype),
        jnp.int32(0),
    )

    def cond(s: _Loop) -> Array:
        not_done = (s.delta > floor) | (s.change > tol)
        return not_done & (s.iterations < max_iterations)

    def body(s: _Loop) -> _Loop:
        r = A @ s.x - b
        weights = c * jnp.maximum(jnp.abs(r), s.delta) ** (p - 2)
        direction = _weighted_least_squares(A, b, weights) - s.x
        Ad = A @ direction
        candidates = objective_of(r[:, None] + Ad[:, None] * steps[None, :])
        candidates = jnp.where(jnp.isnan(candidates), jnp.inf, candidates)
        best = jnp.argmin(candidates)
        objective = candidates[best]
        x = s.x + steps[best] * direction
        change = (s.objective - objective) / jnp.maximum(s.objective, jnp.finfo(dtype).tiny)
        delta = jnp.maximum(0.5 * s.delta, floor)
        return _Loop(x, objective, delta, change, s.iterations + 1)

    out = jax.lax.while_loop(cond, body, init)
    x, objective = out.x, out.objective
    if p == 1.0:
        x, objective = _polish_vertex(A, b, c, x, objective)
    converged = (out.delta <= floor) & (out.change <= tol)
    return x, RegressionInfo(out.iterations, objective, converged)


def _polish_vertex(A, b, c, x, objective, rounds: int = 3):
    """l_1: land on the vertex IRLS approaches (only linearly) by exact solves.

    An l_1 minimiser is a vertex that interpolates ``d`` weighted rows. Each
    round takes the ``d + 1`` rows with the smallest residuals, solves the
    ``d + 1`` square systems that leave one of them out, and keeps the best
    vertex if it lowers the objective.
    """
    d = A.shape[1]
    leave_one_out = jnp.array([[j for j in range(d + 1) if j != k] for k in range(d + 1)])
    for _ in range(rounds):
        r = jnp.where(c > 0, jnp.abs(A @ x - b), jnp.inf)
        _, rows = jax.lax.top_k(-r, min(d + 1, A.shape[0]))
        if rows.shape[0] <= d:
            break
        subsets = rows[leave_one_out]
        vertices = jax.vmap(lambda s: jnp.linalg.solve(A[s], b[s]))(subsets)
        values = jnp.sum(c[None, :] * jnp.abs(vertices @ A.T - b[None, :]), axis=1)
        values = jnp.where(jnp.isfinite(values), values, jnp.inf)
        best = jnp.argmin(values)
        better = values[best] < objective
        x = jnp.where(better, vertices[best], x)
        objective = jnp.where(better, values[best], objective)
    return x, objective


def lp_regression(
    A: ArrayLike,
    b: ArrayLike,
    p: float,
    *,
    weights: ArrayLike | None = None,
    tol: float = 1e-10,
    max_iterations: int = 200,
) -> tuple[Array, RegressionInfo]:
    """Solves ``min_x sum_i c_i |a_i x - b_i|^p`` for ``p >= 1``.

    Args:
      A: ``float[n, d]`` design, full column rank on the rows with ``c_i > 0``.
      b: ``float[n]`` targets.
      p: a Python number ``>= 1``; ``p = 2`` is solved in closed form.
      weights: ``float[n]`` non-negative row weights ``c`` (default ones).
      tol: relative decrease of the objective below which IRLS stops.
      max_iterations: static cap on the IRLS iterations.

    Returns:
      ``(x float[d], info RegressionInfo)``.

    Raises:
      ValueError: wrong shapes or dtypes, ``p < 1``, and with concrete
        inputs: non-finite entries or negative weights. Under ``jit`` a
        rank-deficient design gives NaN.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxsampling.kernels import leverage
      >>> A = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
      >>> b = jnp.array([1.0, 2.0, 3.0])
      >>> x, info = leverage.lp_regression(A, b, p=2.0)
      >>> [round(v, 4) for v in x.tolist()], round(float(info.objective), 6)
      ([1.0, 2.0], 0.0)
    """
    A = _checks.check_matrix(A, tall=False)
    p = _checks.check_p(p)
    b = _checks.check_vector(b, A.shape[0], "b", dtype=A.dtype)
    if weights is None:
        c = jnp.ones(A.shape[0], A.dtype)
    else:
        c = _checks.check_vector(weights, A.shape[0], "weights", dtype=A.dtype)
        if not _checks.is_tracer(c) and bool(jnp.any(c < 0)):
            raise ValueError("weights must be non-negative")
    max_iterations = _checks.check_int(max_iterations, "max_iterations")
    A, b, c = (sharding.unshard(v) for v in (A, b, c))
    if p == 2.0:
        x = _least_squares(A, b, c)
        info = RegressionInfo(jnp.int32(0), lp_objective(A, b, x, 2.0, c), jnp.bool_(True))
        return x, info
    return _irls(A, b, c, p, tol, max_iterations)
