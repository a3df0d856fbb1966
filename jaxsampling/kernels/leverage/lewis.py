"""l_p Lewis weights by a fixed-point iteration in one jitted while-loop.

The l_p Lewis weights of a full-rank ``A`` (``n x d``) are the unique
``w > 0`` with

    w_i^(2/p) = a_i^T (A^T W^(1 - 2/p) A)^-1 a_i,        sum_i w_i = d,

i.e. ``w`` are the leverage scores of ``W^(1/2 - 1/p) A``. ``p = 2`` gives the
leverage scores. Every iteration costs one weighted leverage computation
(two ``n d^2`` GEMMs, Cholesky-QR of
:mod:`~jaxsampling.kernels.leverage.scores`).

Iterations, in log space ``v = log w`` with ``T(v) = (p/2) log(a_i^T M(v)^-1 a_i)``:

* ``"fixed_point"`` (Cohen & Peng 2015): ``v <- T(v)``. A contraction with
  factor ``|1 - p/2|`` in ``max |v - v'|`` for ``p < 4`` (``p = 1``: about 20
  iterations to ``1e-6``); for ``p >= 4`` the linearisation has eigenvalue
  ``1 - p/2 <= -1`` on the constant direction and the iterates oscillate
  (``p = 4``) or grow. For ``p > 4`` the loop detects it and stops with
  ``info.diverged`` (the residual has not reached a new minimum for five
  iterations); at ``p = 4`` the residual usually keeps creeping down and the
  loop runs to ``max_iterations`` with ``info.converged`` False.
* ``"damped"``: ``v <- v + theta (T(v) - v)`` with ``theta = 4 / (p + 2)``.
  At the fixed point ``dT/dv = -(p/2 - 1) S`` with ``S = D^-1 (Q o Q)``
  row-stochastic and similar to a PSD matrix (``Q`` the projection onto the
  column space of ``W^(1/2-1/p) A``, ``D = diag(w)``), so its eigenvalues lie
  in ``[-(p/2 - 1), 0]`` for ``p > 2`` and the damped map has spectral radius
  at most ``|p - 2| / (p + 2) < 1`` for every ``p``. A step that raises the
  residual is rejected and ``theta`` halved, so the iteration cannot run away.
* ``"auto"``: ``damped``. It converges for every ``p`` and was faster than
  ``fixed_point`` at every ``p`` measured: on a 200,000 x 50 Student-t matrix
  to ``1e-6``, 15 vs 21 iterations at ``p = 1``, 11 vs 24 at ``p = 3``.

The residual reported is ``max_i |T(v)_i - v_i|``, the largest relative
violation of the fixed-point equation (``|log(T(w)_i / w_i)|``) at the
returned weights; the loop stops when it is at most ``tol``.

Example:
  >>> import jax
  >>> from jaxsampling.kernels import leverage
  >>> A = jax.random.normal(jax.random.key(0), (2000, 5))
  >>> w, info = leverage.lewis_weights(A, p=1.0)
  >>> round(float(w.sum()), 4), bool(info.converged)
  (5.0, True)

References:
  Lewis (1978), Finite dimensional subspaces of L_p. Cohen & Peng (2015),
  l_p row sampling by Lewis weights. Fazel, Lee, Padmanabhan & Sidford (2022),
  Computing Lewis weights to high precision.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxsampling.kernels.leverage import _checks, scores
from jaxsampling.types import Array, ArrayLike

__all__ = ["LEWIS_METHODS", "LewisInfo", "lewis_weights"]

LEWIS_METHODS = ("auto", "fixed_point", "damped")


class LewisInfo(NamedTuple):
    """Diagnostics of :func:`lewis_weights`.

    Attributes:
      iterations: ``int32[]`` iterations run.
      residual: ``float[]`` ``max_i |log(T(w)_i / w_i)|`` at the returned weights.
      converged: ``bool[]`` ``residual <= tol``.
      diverged: ``bool[]`` the residual stopped falling for five iterations
        (the undamped iteration at ``p >= 4``); the weights are then not
        Lewis weights.
    """

    iterations: Array
    residual: Array
    converged: Array
    diverged: Array


class _Loop(NamedTuple):
    log_w: Array  # float[n]: current log-weights
    target: Array  # float[n]: T(log_w)
    residual: Array  # float[]
    theta: Array  # float[]: damping
    best: Array  # float[]: smallest residual so far
    stalls: Array  # int32[]: iterations since the best residual
    iterations: Array  # int32[]


def _log_update(A: Array, log_w: Array, p: float, nonzero: Array) -> tuple[Array, Array]:
    """``T(v)`` and the residual ``max |T(v) - v|`` over the non-zero rows."""
    exponent = 0.5 - 1.0 / p
    row_scale = jnp.where(nonzero, jnp.exp(exponent * log_w), 0.0)
    tau = scores._scores(A * row_scale[:, None], "auto")
    # a_i^T M^-1 a_i = tau_i / w_i^(1 - 2/p)
    log_sigma = jnp.log(tau) - 2 * exponent * log_w
    target = jnp.where(nonzero, 0.5 * p * log_sigma, -jnp.inf)
    gap = jnp.where(nonzero, jnp.abs(target - log_w), 0.0)
    residual = jnp.max(gap)
    return target, jnp.where(jnp.isnan(residual), jnp.inf, residual)


def _lewis(A: Array, p: float, method: str, tol: float, max_iterations: int):
    n, d = A.shape
    damped = method != "fixed_point"
    nonzero = jnp.any(A != 0, axis=1)
    log_w = jnp.where(nonzero, jnp.log(d / n), -jnp.inf).astype(A.dtype)
    target, residual = _log_update(A, log_w, p, nonzero)
    theta0 = 4.0 / (p + 2.0) if damped else 1.0
    init = _Loop(
        log_w, target, residual, jnp.asarray(theta0, A.dtype), residual, jnp.int32(0),
        jnp.int32(0),
    )

    def cond(s: _Loop) -> Array:
        return (s.residual > tol) & (s.iterations < max_iterations) & (s.stalls < 5)

    def body(s: _Loop) -> _Loop:
        step = jnp.where(nonzero, s.target - s.log_w, 0.0)
        log_w = jnp.where(nonzero, s.log_w + s.theta * step, -jnp.inf)
        target, residual = _log_update(A, log_w, p, nonzero)
        rose = residual > s.residual
        if damped:
            accept = ~rose
            return _Loop(
                jnp.where(accept, log_w, s.log_w),
                jnp.where(accept, target, s.target),
                jnp.where(accept, residual, s.residual),
                jnp.where(accept, s.theta, 0.5 * s.theta),
                jnp.minimum(s.best, residual),
                jnp.int32(0),
                s.iterations + 1,
            )
        improved = residual < s.best
        return _Loop(
            log_w, target, residual, s.theta, jnp.minimum(s.best, residual),
            jnp.where(improved, 0, s.stalls + 1), s.iterations + 1,
        )

    out = jax.lax.while_loop(cond, body, init)
    info = LewisInfo(
        iterations=out.iterations,
        residual=out.residual,
        converged=out.residual <= tol,
        diverged=out.stalls >= 5,
    )
    return jnp.exp(out.log_w), info


def default_tolerance(dtype) -> float:
    """The default Lewis-weight tolerance: ``1e-6`` in float64, ``1e-4`` below."""
    return 1e-6 if jnp.finfo(dtype).bits >= 64 else 1e-4


def lewis_weights(
    A: ArrayLike,
    p: float,
    *,
    method: str = "auto",
    tol: float | None = None,
    max_iterations: int = 100,
) -> tuple[Array, LewisInfo]:
    """l_p Lewis weights of ``A``: ``w_i^(2/p) = a_i^T (A^T W^(1-2/p) A)^-1 a_i``.

    Args:
      A: ``float[n, d]``, full column rank; rows may be sharded (one
        all-reduce of a ``d x d`` Gram matrix per iteration).
      p: the norm, a Python number ``>= 1``.
      method: ``"auto"``, ``"fixed_point"`` or ``"damped"`` (module docstring).
      tol: stop when ``max_i |log(T(w)_i / w_i)| <= tol``. Default ``1e-6``
        in float64 and ``1e-4`` in float32, whose residual floors at a few
        ``1e-6`` for 200,000 rows.
      max_iterations: static cap on the iterations.

    Returns:
      ``(w float[n], info LewisInfo)``; ``sum(w) = d`` at convergence, zero
      rows get weight 0.

    Raises:
      ValueError: wrong shape or dtype, ``p < 1``, an unknown ``method``, and
        with concrete ``A``: non-finite entries or rank deficiency. Under
        ``jit`` check ``info.converged``; non-finite entries give NaN weights,
        and a rank-deficient ``A`` (the rank-revealing branch of the scores)
        gives the Lewis weights of its column space, summing to ``rank(A) < d``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxsampling.kernels import leverage
      >>> A = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
      >>> w, _ = leverage.lewis_weights(A, p=1.0)
      >>> [round(v, 3) for v in w.tolist()]   # float32: tol 1e-4
      [1.0, 0.5, 0.5]
    """
    A = _checks.check_matrix(A)
    p = _checks.check_p(p)
    if method not in LEWIS_METHODS:
        raise ValueError(f"method must be one of {LEWIS_METHODS}, got {method!r}")
    if tol is None:
        tol = default_tolerance(A.dtype)
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    max_iterations = _checks.check_int(max_iterations, "max_iterations")
    _checks.raise_if_rank_deficient(A)
    return _lewis(A, p, method, tol, max_iterations)
