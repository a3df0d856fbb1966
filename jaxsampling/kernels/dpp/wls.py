r"""Weighted least squares: i.i.d. optimal, projection-DPP and volume-rescaled designs.

Approximate ``f`` in ``L^2(mu)`` by ``V_m = span(phi_1..phi_m)``, ``phi``
orthonormal in ``L^2(mu)``, from evaluations at random points ``x_1..x_n``
(Nouy & Michel 2023). With the inverse Christoffel function
``k_m(x) = sum_j phi_j(x)^2`` (``int k_m dmu = m``), every design here uses

* the **optimal density** ``rho(x) = k_m(x) / m`` (w.r.t. ``mu``) and the
  **weights** ``w(x) = m / k_m(x) = 1 / rho(x)``;
* the weighted least-squares estimator (:func:`wls_fit`)

      f_hat = argmin_{v in V_m} (1/n) sum_i w(x_i) (f(x_i) - v(x_i))^2

  and its Gram matrix ``G = (1/n) sum_i w(x_i) phi(x_i) phi(x_i)^T``, with
  ``E[G] = I`` for all four designs. ``||G - I||_2 <= 1/2`` is the usual
  stability event (Cohen & Migliorati 2017): on it
  ``||f - f_hat||^2 <= e_m(f)^2 + 4 ||(1/n) sum_i w(x_i) r(x_i) phi(x_i)||^2``
  with ``r = f - P_{V_m} f`` and ``e_m(f) = ||r||`` the best-approximation
  error.

The designs (each a :class:`WLSSample` of points and weights):

* ``iid``: ``n`` i.i.d. points from ``rho`` (optimal weighted least squares,
  Cohen & Migliorati 2017); ``G`` is well conditioned with high probability
  once ``n >~ m log m``.
* ``dpp``: the projection DPP of ``V_m``: ``n = m`` points with joint density
  ``det(phi(x_i) . phi(x_j))_{ij} / m!`` w.r.t. ``mu^{otimes m}``, each with
  marginal ``rho``. With ``n = m`` the estimator interpolates, and
  ``E ||f - f_hat||^2 = (m + 1) e_m(f)^2`` exactly (volume sampling of size
  ``m``; Derezinski & Warmuth 2017).
* ``volume_rescaled``: ``n >= m`` points with joint density
  ``(n - m)! / n! det(sum_i w(x_i) phi(x_i) phi(x_i)^T) prod_i rho(x_i)``
  (generalised volume-rescaled sampling): the ``m`` points of the projection
  DPP and ``n - m`` i.i.d. points from ``rho``, shuffled. The estimator is
  unbiased, ``E[f_hat] = P_{V_m} f``, and quasi-optimal in expectation,
  ``E ||f - f_hat||^2 <= C e_m(f)^2``, with ``n = O(m log m)`` points
  (Derezinski, Warmuth & Hsu 2022; Nouy & Michel 2023).
* ``repeated_dpp``: ``r`` independent projection DPPs, ``n = r m`` points
  (Nouy & Michel 2023): ``G`` is the average of ``r`` independent
  ``E[G_k] = I`` terms of small variance, so it is well conditioned with far
  fewer points than ``iid``.

Two settings:

* **continuous**: ``mu`` uniform on ``[-1, 1]^d``, ``phi`` the tensor
  Legendre basis of a space (:mod:`.legendre`; an int ``m`` for one
  dimension). The draws are exact rejection samplers, with no
  discretisation. Propose ``x_k = cos(pi U_k)`` (the arcsine density
  ``a(x_k) = 1 / (pi sqrt(1 - x_k^2))``). By
  ``phi_j(x)^2 <= 4 pi^{-1} (1 - x^2)^{-1/2}`` (:mod:`.legendre`),
  ``k_m(x) <= m 4^d / prod_k (pi sqrt(1 - x_k^2)) = m 4^d prod_k a(x_k)``,
  so, as densities in ``dx``, ``rho <= 2^d prod_k a``: keeping ``x`` with
  probability ``k_m(x) prod_k (pi sqrt(1 - x_k^2)) / (m 4^d)`` samples
  ``rho`` with ``2^d`` proposals per point on average (``iid``). The DPP is
  the chain rule (Hough et al. 2006): after ``t`` points the next one has
  density ``||P_t phi(x)||^2 / (m - t)`` w.r.t. ``mu``, ``P_t`` the
  projection onto the orthogonal complement of ``phi(x_1)..phi(x_t)`` in
  ``R^m``; it is drawn by proposing from ``rho`` (as above) and accepting
  with probability ``||P_t phi(x)||^2 / k_m(x)``. The two acceptances are
  one test, ``U < ||P_t phi(x)||^2 prod_k (pi sqrt(1 - x_k^2)) / (m 4^d)``,
  passed with probability ``(m - t) / (2^d m)`` per proposal, so a DPP draw
  costs ``2^d m H_m ~ 2^d m log m`` proposals on average
  (:func:`expected_proposals`; ``H_m`` the harmonic number), each
  ``O(m^2)`` flops (a two-pass Gram-Schmidt residual). The loops are
  ``lax.while_loop`` s: the DPP makes one proposal per unfinished draw per
  iteration (a batch runs until its slowest draw is done, about
  ``2^d m (H_m + log B)`` iterations); ``iid`` proposes
  ``2^d n + 6 * 2^d sqrt(n) + 2^{d+3}`` points per round and keeps the
  first ``n`` accepted (one round, except with probability about ``1e-9``).
  A draw not finished after ``2^d m (H_m + 80)`` proposals (``iid``: 50
  rounds) comes back NaN (probability below ``e^{-80}``).
* **pool**: ``mu`` the empirical measure of ``N`` candidates, ``phi`` given
  as the ``(N, m)`` matrix ``Phi`` of basis values with ``Phi^T Phi / N = I``
  (:func:`pool_basis` orthonormalises a full-rank one). The DPP is
  :func:`~jaxsampling.kernels.dpp.sample_projection` of ``Phi / sqrt(N)``
  and volume-rescaled sampling is
  :func:`~jaxsampling.kernels.dpp.volume_rescaled_sample`; draws are row
  indices.

Every sampler takes one key (one draw, or ``num_draws`` draws) or a batch
of keys (one draw per key; the batch axis keeps the keys' sharding and no
collective is added). Sizes (``n``, ``repeats``, ``num_draws``) are static
ints and the space is concrete, so under ``jax.jit`` pass them through a
closure or ``static_argnums``.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxsampling.kernels import dpp
  >>> m = 6
  >>> sample = dpp.legendre_dpp(jax.random.key(0), m, num_draws=3)
  >>> sample.x.shape, sample.weights.shape
  ((3, 6), (3, 6))
  >>> p = lambda x: 1 - 2 * x + x**5             # in V_6: recovered exactly
  >>> Phi = dpp.legendre_basis(sample.x, m)
  >>> fit = dpp.wls_fit(Phi, p(sample.x), sample.weights)
  >>> fit.coef.shape, fit.gram_eigenvalues.shape, fit.gram_deviation.shape
  ((3, 6), (3, 6), (3,))
  >>> fitted = jnp.einsum("bnm,bm->bn", Phi, fit.coef)
  >>> bool(jnp.allclose(fitted, p(sample.x), atol=1e-3))
  True

References:
  Nouy & Michel (2023), Weighted least-squares approximation with determinantal
  point processes and generalized volume sampling (arXiv:2312.14057).
  Cohen & Migliorati (2017), Optimal weighted least-squares methods.
  Derezinski & Warmuth (2017), Unbiased estimates for linear regression via
  volume sampling. Derezinski, Warmuth & Hsu (2022), Unbiased estimators for
  random design regression. Hough, Krishnapur, Peres & Virag (2006).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxsampling.kernels.dpp import _checks
from jaxsampling.kernels.dpp.legendre import _tensor_basis, space_indices
from jaxsampling.kernels.dpp.projection import sample_projection
from jaxsampling.kernels.dpp.volume import volume_rescaled_sample
from jaxsampling.types import Array, ArrayLike

__all__ = [
    "WLSFit",
    "WLSSample",
    "expected_proposals",
    "legendre_dpp",
    "legendre_iid",
    "legendre_repeated_dpp",
    "legendre_volume_rescaled",
    "optimal_weights",
    "pool_basis",
    "pool_dpp",
    "pool_iid",
    "pool_repeated_dpp",
    "pool_volume_rescaled",
    "well_conditioned",
    "wls_fit",
]


class WLSSample(NamedTuple):
    """A design for weighted least squares.

    Attributes:
      x: the points: ``float[..., n]`` (an int space), ``float[..., n, d]``
        (a multi-index space), or ``int32[..., n]`` pool row indices.
      weights: ``float[..., n]``, ``w(x_i) = m / sum_j phi_j(x_i)^2``.
    """

    x: Array
    weights: Array


class WLSFit(NamedTuple):
    """A weighted least-squares fit.

    Attributes:
      coef: ``float[..., m]`` coefficients of ``f_hat = sum_j coef_j phi_j``
        (``float[..., m, k]`` for ``k`` right-hand sides).
      gram_eigenvalues: ``float[..., m]`` eigenvalues of
        ``G = (1/n) sum_i w_i phi(x_i) phi(x_i)^T``, ascending.
      gram_deviation: ``float[...]``, ``||G - I||_2``.
    """

    coef: Array
    gram_eigenvalues: Array
    gram_deviation: Array


# ---------------------------------------------------------------------------
# Weights and the weighted least-squares solve.


def optimal_weights(features: ArrayLike) -> Array:
    """``w(x) = m / sum_j phi_j(x)^2`` from basis values ``features[..., m]``."""
    features = jnp.asarray(features)
    return features.shape[-1] / jnp.sum(features * features, axis=-1)


def wls_fit(
    features: ArrayLike,
    y: ArrayLike,
    weights: ArrayLike,
    mask: ArrayLike | None = None,
) -> WLSFit:
    r"""The weighted least-squares coefficients and the Gram matrix's spectrum.

    Minimises ``(1/n) sum_i w_i (y_i - features_i . c)^2`` with
    ``A = diag(sqrt(w / n)) features`` (so ``G = A^T A``) by a Householder
    QR of ``A`` and back substitution, written in plain XLA operations
    (jaxlib 0.10.2's batched CPU LAPACK kernels can deadlock XLA's thread
    pool); pivots of ``R`` at or below ``max(n, m) eps max_j |R_jj|`` give
    zero coefficients (a basic solution for a rank-deficient design). The
    eigenvalues of ``G = R^T R`` come from a Householder tridiagonalisation
    and bisection on Sturm counts, to about ``m eps lambda_max``; their cost
    is ``O(m^3)`` per design, the QR's ``O(n m^2)``. Rows with ``mask == False`` are
    left out, and ``n`` counts the others: a padded fixed-size batch fits
    designs of several sizes in one program. Batched over leading axes.

    Args:
      features: ``(..., n, m)`` basis values ``phi_j(x_i)``.
      y: ``(..., n)`` observations ``f(x_i)``, or ``(..., n, k)`` for ``k``
        functions at once (one SVD).
      weights: ``(..., n)`` non-negative weights.
      mask: optional ``bool[..., n]``, the rows to use.

    Returns:
      :class:`WLSFit` (``coef`` ``(..., m)``, or ``(..., m, k)``);
      ``gram_eigenvalues`` has ``m - n`` zeros when ``n < m``.

    Raises:
      ValueError: mismatched shapes, non-floating input, or (concrete)
        negative or NaN weights.
    """
    features = jnp.asarray(features)
    if features.ndim < 2 or not jnp.issubdtype(features.dtype, jnp.floating):
        raise ValueError(
            f"features must be a floating (..., n, m) array, got {features.dtype} "
            f"{features.shape}"
        )
    n, m = features.shape[-2:]
    y = jnp.asarray(y, features.dtype)
    weights = jnp.asarray(weights)
    batch = features.shape[:-2]
    if weights.shape != batch + (n,):
        raise ValueError(f"weights must have shape {batch + (n,)}, got {weights.shape}")
    if y.shape != batch + (n,) and y.shape[:-1] != batch + (n,):
        raise ValueError(
            f"y must have shape {batch + (n,)} or {batch + (n,)} + (k,), got {y.shape}"
        )
    if not jnp.issubdtype(weights.dtype, jnp.floating):
        raise ValueError(f"weights must have a floating dtype, got {weights.dtype}")
    if not _checks.is_tracer(weights):
        w = np.asarray(weights)
        if np.isnan(w).any() or (w < 0).any():
            raise ValueError("weights must be non-negative and not NaN")
    if mask is None:
        mask = jnp.ones(batch + (n,), bool)
    else:
        mask = jnp.asarray(mask)
        if mask.shape != batch + (n,) or mask.dtype != jnp.bool_:
            raise ValueError(
                f"mask must be bool{list(batch + (n,))}, got {mask.dtype} {mask.shape}"
            )
    return _wls_core(features, y, weights, mask)


# The solve is written in plain XLA operations (no LAPACK custom call): in
# jaxlib 0.10.2 the batched CPU LAPACK kernels split their batch over XLA's
# intra-op thread pool and block waiting for it (``jax::ParallelBatchMap``),
# which deadlocks a 2-thread pool when two such kernels run at once.


def _householder_qr(M: Array, m: int) -> Array:
    """Householder triangularisation of the first ``m`` columns of ``M[..., n, c]``.

    Returns ``Q^T M`` (``n x c``): its top ``m x m`` block is ``R``, the rest
    of its top ``m`` rows is ``Q^T`` applied to the other columns. ``n >= m``.
    """
    rows = jnp.arange(M.shape[-2])

    def step(j, M):
        x = jnp.where(rows >= j, lax.dynamic_index_in_dim(M, j, -1, keepdims=False), 0)
        norm = jnp.sqrt(jnp.sum(x * x, axis=-1))
        xj = lax.dynamic_index_in_dim(x, j, -1, keepdims=False)
        alpha = -jnp.where(xj >= 0, 1, -1) * norm
        v = x - jnp.where(rows == j, alpha[..., None], 0)
        vv = jnp.sum(v * v, axis=-1)
        scale = jnp.where(vv > 0, 2 / jnp.where(vv > 0, vv, 1), 0)
        w = jnp.einsum("...n,...nc->...c", v, M) * scale[..., None]
        return M - v[..., :, None] * w[..., None, :]

    return lax.fori_loop(0, m, step, M)


def _back_substitution(R: Array, rhs: Array, cutoff: Array) -> Array:
    """``R^{-1} rhs`` for upper-triangular ``R[..., m, m]``; pivots at or
    below ``cutoff`` give a zero coefficient (a basic solution)."""
    m = R.shape[-1]

    def step(i, c):
        j = m - 1 - i
        row = lax.dynamic_index_in_dim(R, j, -2, keepdims=False)  # (..., m)
        pivot = lax.dynamic_index_in_dim(row, j, -1, keepdims=False)
        b = lax.dynamic_index_in_dim(rhs, j, -2, keepdims=False)  # (..., k)
        residual = b - jnp.einsum("...m,...mk->...k", row, c)
        ok = jnp.abs(pivot) > cutoff
        cj = jnp.where(ok[..., None], residual / jnp.where(ok, pivot, 1)[..., None], 0)
        return lax.dynamic_update_index_in_dim(c, cj, j, -2)

    return lax.fori_loop(0, m, step, jnp.zeros_like(rhs))


def _tridiagonal(G: Array) -> tuple[Array, Array]:
    """``(diagonal, off-diagonal)`` of a symmetric ``G[..., m, m]`` reduced by
    Householder similarity transforms (same eigenvalues)."""
    m = G.shape[-1]
    idx = jnp.arange(m)

    def step(k, G):
        x = jnp.where(idx > k, lax.dynamic_index_in_dim(G, k, -1, keepdims=False), 0)
        norm = jnp.sqrt(jnp.sum(x * x, axis=-1))
        xk = jnp.sum(jnp.where(idx == k + 1, x, 0), axis=-1)
        alpha = -jnp.where(xk >= 0, 1, -1) * norm
        v = x - jnp.where(idx == k + 1, alpha[..., None], 0)
        vv = jnp.sum(v * v, axis=-1)
        beta = jnp.where(vv > 0, 2 / jnp.where(vv > 0, vv, 1), 0)
        p = beta[..., None] * jnp.einsum("...ij,...j->...i", G, v)
        q = p - (0.5 * beta * jnp.sum(v * p, axis=-1))[..., None] * v
        return G - v[..., :, None] * q[..., None, :] - q[..., :, None] * v[..., None, :]

    T = lax.fori_loop(0, max(m - 2, 0), step, G)
    diag = jnp.diagonal(T, axis1=-2, axis2=-1)
    off = jnp.diagonal(T, offset=1, axis1=-2, axis2=-1)
    return diag, off


def _tridiagonal_eigenvalues(d: Array, e: Array) -> Array:
    """All eigenvalues (ascending) of the symmetric tridiagonal ``(d, e)`` by
    bisection on Sturm counts, to the dtype's resolution of the spectrum's
    range (Gershgorin interval)."""
    m = d.shape[-1]
    dtype = d.dtype
    tiny = jnp.finfo(dtype).tiny
    e_abs = jnp.abs(e)
    pad = jnp.zeros(e.shape[:-1] + (1,), dtype)
    radius = jnp.concatenate([pad, e_abs], -1) + jnp.concatenate([e_abs, pad], -1)
    lo = jnp.min(d - radius, axis=-1, keepdims=True)
    hi = jnp.max(d + radius, axis=-1, keepdims=True)
    span = jnp.maximum(hi - lo, tiny)
    lo, hi = lo - 1e-3 * span, hi + 1e-3 * span
    e2 = jnp.concatenate([pad, e * e], -1)  # e2[i] = e[i-1]^2
    target = jnp.arange(m, dtype=jnp.int32)

    def count_below(x):  # (..., m) shifts -> number of eigenvalues < x
        def body(i, carry):
            q, count = carry
            di = lax.dynamic_index_in_dim(d, i, -1, keepdims=True)
            ei = lax.dynamic_index_in_dim(e2, i, -1, keepdims=True)
            q = di - x - ei / q
            q = jnp.where(jnp.abs(q) < tiny, -tiny, q)
            return q, count + (q < 0).astype(jnp.int32)

        init = (jnp.ones_like(x), jnp.zeros(x.shape, jnp.int32))
        return lax.fori_loop(0, m, body, init)[1]

    def bisect(_, bounds):
        a, b = bounds
        mid = 0.5 * (a + b)
        below = count_below(mid) <= target  # the target-th eigenvalue is >= mid
        return jnp.where(below, mid, a), jnp.where(below, b, mid)

    iterations = 2 + int(-np.log2(np.finfo(dtype).eps)) + 4
    bounds = (jnp.broadcast_to(lo, d.shape), jnp.broadcast_to(hi, d.shape))
    a, b = lax.fori_loop(0, iterations, bisect, bounds)
    return 0.5 * (a + b)


def _solve(A: Array, b: Array) -> tuple[Array, Array]:
    """``(coef[..., m, k], eigenvalues of A^T A [..., m])``: least squares by
    Householder QR and back substitution, the spectrum by tridiagonalisation
    and bisection. Pivots of ``R`` at or below ``max(n, m) eps max|R_jj|``
    give zero coefficients."""
    n, m = A.shape[-2:]
    M = jnp.concatenate([A, b], axis=-1)
    if n < m:  # zero rows change neither the fit nor A^T A
        zeros = jnp.zeros(M.shape[:-2] + (m - n, M.shape[-1]), M.dtype)
        M = jnp.concatenate([M, zeros], axis=-2)
    QtM = _householder_qr(M, m)
    R, rhs = QtM[..., :m, :m], QtM[..., :m, m:]
    pivots = jnp.abs(jnp.diagonal(R, axis1=-2, axis2=-1))
    cutoff = max(n, m) * jnp.finfo(A.dtype).eps * jnp.max(pivots, axis=-1)
    coef = _back_substitution(R, rhs, cutoff)
    # NaN or infinite input: NaN coefficients, not the zeros of cut pivots.
    coef = jnp.where(jnp.isfinite(cutoff)[..., None, None], coef, jnp.nan)
    G = jnp.einsum("...ki,...kj->...ij", R, R)
    eig = _tridiagonal_eigenvalues(*_tridiagonal(G))
    return coef, jnp.maximum(eig, 0)


@jax.jit
def _wls_core(features: Array, y: Array, weights: Array, mask: Array) -> WLSFit:
    count = jnp.sum(mask, axis=-1).astype(features.dtype)
    w = jnp.where(mask, weights, 0).astype(features.dtype)
    scale = jnp.sqrt(w / count[..., None])
    A = scale[..., None] * features
    multi = y.ndim == features.ndim  # k right-hand sides on the last axis
    b = scale[..., None] * (y if multi else y[..., None])
    coef, eig = _solve(A, b)
    deviation = jnp.maximum(eig[..., -1] - 1, 1 - eig[..., 0])
    return WLSFit(coef if multi else coef[..., 0], eig, deviation)


def well_conditioned(fit: WLSFit, delta: float = 0.5) -> Array:
    """``bool[...]``: ``||G - I||_2 <= delta`` (the stability event of the design)."""
    return fit.gram_deviation <= delta


# ---------------------------------------------------------------------------
# Continuous designs on [-1, 1]^d by exact rejection sampling.


def expected_proposals(m: int, d: int = 1) -> float:
    """Mean proposals of one continuous projection-DPP draw: ``2^d m H_m``."""
    return 2.0**d * m * sum(1.0 / k for k in range(1, m + 1))


_IID_MAX_ROUNDS = 50


def _dpp_cap(m: int, d: int) -> int:
    harmonic = sum(1.0 / k for k in range(1, m + 1))
    return int(math.ceil(2.0**d * m * (harmonic + 80.0)))


def _propose(
    key: Array, shape: tuple[int, ...], d: int, dtype: Any
) -> tuple[Array, Array, Array]:
    """Arcsine proposals ``x = cos(pi U)``, the envelope factor and a test uniform.

    Returns ``(x[*shape, d], prod_k pi sin(pi U_k) [*shape], V[*shape])``, from
    one ``uniform`` call (one threefry program to compile).
    """
    u = jax.random.uniform(key, shape + (d + 1,), dtype)
    theta = jnp.pi * u[..., :d]
    envelope = jnp.prod(jnp.pi * jnp.sin(theta), axis=-1)
    return jnp.cos(theta), envelope, u[..., d]


def _iid_round_size(n: int, d: int) -> int:
    """Proposals per round: ``2^d n`` plus 6 binomial standard deviations and 8."""
    ratio = 2**d
    return ratio * n + int(math.ceil(6 * ratio * math.sqrt(n) + 8 * ratio))


def _iid_one(key: Array, indices: np.ndarray, n: int, dtype: Any) -> Array:
    """``n`` i.i.d. points from ``rho`` on ``[-1, 1]^d``: ``float[n, d]`` (NaN: capped).

    Each round proposes :func:`_iid_round_size` arcsine points and keeps the
    accepted ones in proposal order until ``n`` are kept (one round, except
    with probability about ``1e-9``).
    """
    m, d = indices.shape
    bound = m * 4.0**d
    size = _iid_round_size(n, d)

    def cond(carry):
        it, count, _ = carry
        return (it < _IID_MAX_ROUNDS) & (count < n)

    def body(carry):
        it, count, x = carry
        prop, envelope, u = _propose(jax.random.fold_in(key, it), (size,), d, dtype)
        k_m = jnp.sum(_tensor_basis(prop, indices) ** 2, axis=-1)
        accept = u * bound < k_m * envelope
        slot = count + jnp.cumsum(accept, dtype=jnp.int32) - 1
        slot = jnp.where(accept & (slot < n), slot, n)
        x = x.at[slot].set(prop, mode="drop")
        return it + 1, jnp.minimum(count + jnp.sum(accept, dtype=jnp.int32), n), x

    init = (jnp.int32(0), jnp.int32(0), jnp.full((n, d), jnp.nan, dtype))
    return lax.while_loop(cond, body, init)[2]


def _dpp_batch(keys: Array, indices: np.ndarray, dtype: Any) -> Array:
    """Projection-DPP draws on ``[-1, 1]^d``, one per key: ``float[B, m, d]``.

    The batch is looped explicitly (not a ``vmap`` of a while loop, which
    would copy every draw's ``m x m`` state each iteration): an iteration
    makes one proposal per unfinished draw and writes one row where it is
    accepted. A draw not finished after :func:`_dpp_cap` proposals is NaN.
    """
    m, d = indices.shape
    b = keys.shape[0]
    bound = m * 4.0**d
    cap = _dpp_cap(m, d)
    rows = jnp.arange(b)

    def cond(carry):
        t, count, _, _ = carry
        return jnp.any((t < m) & (count < cap))

    def body(carry):
        t, count, Q, X = carry
        active = (t < m) & (count < cap)
        prop, envelope, u = jax.vmap(
            lambda k, c: _propose(jax.random.fold_in(k, c), (), d, dtype)
        )(keys, count)
        phi = _tensor_basis(prop, indices)  # (B, m)
        r = phi - jnp.einsum("bkm,bk->bm", Q, jnp.einsum("bkm,bm->bk", Q, phi))
        r = r - jnp.einsum("bkm,bk->bm", Q, jnp.einsum("bkm,bm->bk", Q, r))  # CGS2
        norm2 = jnp.sum(r * r, axis=1)
        accept = active & (u * bound < norm2 * envelope)
        direction = r / jnp.sqrt(jnp.where(accept, norm2, 1))[:, None]
        slot = jnp.where(accept, t, m)  # out of range: dropped
        Q = Q.at[rows, slot].set(direction, mode="drop")
        X = X.at[rows, slot].set(prop, mode="drop")
        return t + accept.astype(jnp.int32), count + active.astype(jnp.int32), Q, X

    init = (
        jnp.zeros(b, jnp.int32),
        jnp.zeros(b, jnp.int32),
        jnp.zeros((b, m, m), dtype),
        jnp.zeros((b, m, d), dtype),
    )
    t, _, _, X = lax.while_loop(cond, body, init)
    return jnp.where((t == m)[:, None, None], X, jnp.nan)


def _continuous_setup(key: Any, space: Any, num_draws: int | None, dtype: Any):
    indices, scalar = space_indices(space)
    keys, single = _checks.as_keys(key, num_draws)
    dtype = jnp.dtype(dtype if dtype is not None else jnp.result_type(float))
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype must be floating, got {dtype}")
    spec = tuple(tuple(int(v) for v in row) for row in indices)
    return spec, scalar, keys, single, dtype


def _iid_points(keys: Array, indices: np.ndarray, n: int, dtype: Any) -> Array:
    return jax.vmap(lambda k: _iid_one(k, indices, n, dtype))(keys)


def _split(keys: Array, num: int) -> Array:
    return jax.vmap(lambda k: jax.random.split(k, num))(keys)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _draw(keys: Array, spec: tuple, method: str, size: int, dtype: Any) -> WLSSample:
    """Batched continuous draws (``size``: ``n``, or the repeats of ``repeated_dpp``).

    Returns points ``float[B, n, d]`` and their weights ``m / k_m(x)``.
    """
    indices = np.asarray(spec, np.int32)
    m, d = indices.shape
    b = keys.shape[0]
    if method == "iid":
        x = _iid_points(keys, indices, size, dtype)
    elif method == "dpp":
        x = _dpp_batch(keys, indices, dtype)
    elif method == "repeated_dpp":
        x = _dpp_batch(_split(keys, size).reshape(b * size), indices, dtype)
        x = x.reshape(b, size * m, d)
    else:  # volume_rescaled
        parts = _split(keys, 3)
        x = _dpp_batch(parts[:, 0], indices, dtype)
        if size > m:
            rest = _iid_points(parts[:, 1], indices, size - m, dtype)
            x = jnp.concatenate([x, rest], axis=1)
            shuffle = lambda k, row: row[jax.random.permutation(k, size)]  # noqa: E731
            x = jax.vmap(shuffle)(parts[:, 2], x)
    return WLSSample(x, optimal_weights(_tensor_basis(x, indices)))


def _continuous(key, space, method, size, num_draws, dtype) -> WLSSample:
    spec, scalar, keys, single, dtype = _continuous_setup(key, space, num_draws, dtype)
    m = len(spec)
    if method in ("iid", "repeated_dpp"):
        size = _checks.check_int(size, "repeats" if method == "repeated_dpp" else "n")
    elif method == "volume_rescaled":
        size = _check_n(size, m)
    sample = _draw(keys, spec, method, size, dtype)
    if scalar:
        sample = sample._replace(x=sample.x[..., 0])
    return _checks.unbatch(sample, single)


def _check_n(n: Any, m: int, name: str = "n") -> int:
    n = _checks.check_int(n, name)
    if n < m:
        raise ValueError(
            f"{name} must be >= m = {m} (the dimension of the space), got {n}"
        )
    return n


def legendre_iid(
    key: Any, space: Any, n: int, *, num_draws: int | None = None, dtype: Any = None
) -> WLSSample:
    """``n`` i.i.d. points from the optimal density ``rho = k_m / m`` on ``[-1, 1]^d``.

    Exact rejection from the arcsine density, ``2^d`` proposals per point on
    average (module docstring).

    Args:
      key: a PRNG key, or a batch of keys ``(B,)`` (one draw per key).
      space: an int ``m`` (1-D) or an ``(m, d)`` multi-index array (:mod:`.legendre`).
      n: static number of points (``>= 1``).
      num_draws: static number of draws from one key.
      dtype: floating dtype of the points (default: float32, float64 under x64).

    Returns:
      :class:`WLSSample` with ``x`` ``[(B,) n]`` (int space) or ``[(B,) n, d]``.

    Raises:
      ValueError: a bad key, space, ``n``, ``num_draws`` or ``dtype``.
    """
    return _continuous(key, space, "iid", n, num_draws, dtype)


def legendre_dpp(
    key: Any, space: Any, *, num_draws: int | None = None, dtype: Any = None
) -> WLSSample:
    """The projection DPP of a Legendre space on ``[-1, 1]^d``, exactly: ``m`` points.

    The chain rule with exact rejection sampling of each conditional
    (module docstring): ``2^d m H_m`` proposals per draw on average. The
    points come in uniformly random order (the chain rule's ordered law is
    symmetric).

    Args:
      key: a PRNG key, or a batch of keys ``(B,)``.
      space: an int ``m`` or an ``(m, d)`` multi-index array.
      num_draws: static number of draws from one key.
      dtype: floating dtype of the points.

    Returns:
      :class:`WLSSample` with ``m`` points per draw (NaN if the proposal cap,
      about ``e^{-80}`` likely, was hit).

    Raises:
      ValueError: a bad key, space, ``num_draws`` or ``dtype``.
    """
    return _continuous(key, space, "dpp", None, num_draws, dtype)


def legendre_volume_rescaled(
    key: Any, space: Any, n: int, *, num_draws: int | None = None, dtype: Any = None
) -> WLSSample:
    """Generalised volume-rescaled sampling on ``[-1, 1]^d``: ``n >= m`` points.

    Joint density ``(n - m)! / n! det(sum_i w(x_i) phi(x_i) phi(x_i)^T)
    prod_i rho(x_i)`` w.r.t. ``mu^{otimes n}``: the ``m`` points of
    :func:`legendre_dpp` and ``n - m`` of :func:`legendre_iid`, shuffled.
    With the weights ``w = 1 / rho`` (and the ``1/n`` of :func:`wls_fit`)
    ``f_hat`` is unbiased, ``E[f_hat] = P_{V_m} f``.

    Args:
      key: a PRNG key, or a batch of keys ``(B,)``.
      space: an int ``m`` or an ``(m, d)`` multi-index array.
      n: static number of points, ``n >= m``.
      num_draws: static number of draws from one key.
      dtype: floating dtype of the points.

    Returns:
      :class:`WLSSample` with ``n`` points per draw.

    Raises:
      ValueError: a bad key, space, ``num_draws`` or ``dtype``, or ``n < m``.
    """
    return _continuous(key, space, "volume_rescaled", n, num_draws, dtype)


def legendre_repeated_dpp(
    key: Any,
    space: Any,
    repeats: int,
    *,
    num_draws: int | None = None,
    dtype: Any = None,
) -> WLSSample:
    """``repeats`` independent projection DPPs of a Legendre space, concatenated.

    ``n = repeats * m`` points; block ``k`` (points ``k m .. (k+1) m - 1``)
    is the ``k``-th DPP draw.

    Args:
      key: a PRNG key, or a batch of keys ``(B,)``.
      space: an int ``m`` or an ``(m, d)`` multi-index array.
      repeats: static number of DPP draws ``r >= 1``.
      num_draws: static number of draws from one key.
      dtype: floating dtype of the points.

    Returns:
      :class:`WLSSample` with ``repeats * m`` points per draw.

    Raises:
      ValueError: a bad key, space, ``repeats``, ``num_draws`` or ``dtype``.
    """
    return _continuous(key, space, "repeated_dpp", repeats, num_draws, dtype)


# ---------------------------------------------------------------------------
# Pool designs: mu the empirical measure of N candidates.


def pool_basis(Phi: ArrayLike) -> Array:
    """``sqrt(N) Q`` with ``Q R = Phi``: a basis of the same space, orthonormal
    for the empirical measure (``B^T B / N = I``).

    Raises:
      ValueError: ``Phi`` not a floating ``(N, m)`` array with ``N >= m``, or
        (concrete) non-finite.
    """
    Phi = _checks.check_floating(Phi, "Phi", 2, "(N, m)")
    if Phi.shape[0] < Phi.shape[1]:
        raise ValueError(f"Phi must have N >= m rows, got shape {Phi.shape}")
    Q, _ = jnp.linalg.qr(Phi)
    return math.sqrt(Phi.shape[0]) * Q


def _check_pool(Phi: ArrayLike) -> Array:
    Phi = _checks.check_floating(Phi, "Phi", 2, "(N, m)")
    N, m = Phi.shape
    if N < m:
        raise ValueError(f"Phi must have N >= m rows, got shape {Phi.shape}")
    if not _checks.is_tracer(Phi):
        v = np.asarray(Phi, np.float64)
        err = float(np.abs(v.T @ v / N - np.eye(m)).max())
        if err > _checks.tolerance(Phi.dtype, N):
            raise ValueError(
                f"Phi must be orthonormal for the empirical measure: max |Phi^T Phi / N"
                f" - I| = {err:.3g}; use pool_basis(Phi) first"
            )
    return Phi


@functools.partial(jax.jit, static_argnums=(2, 3))
def _pool_draw(keys: Array, Phi: Array, method: str, size: int) -> WLSSample:
    """Batched pool draws (``size``: ``n``, or the repeats of ``repeated_dpp``)."""
    b, (N, m) = keys.shape[0], Phi.shape
    if method == "iid":
        logits = jnp.log(jnp.sum(Phi * Phi, axis=1))
        draw = lambda k: jax.random.categorical(k, logits, shape=(size,))  # noqa: E731
        idx = jax.vmap(draw)(keys).astype(jnp.int32)
    elif method == "dpp":
        idx = sample_projection(keys, Phi / math.sqrt(N))
    elif method == "repeated_dpp":
        flat = _split(keys, size).reshape(b * size)
        idx = sample_projection(flat, Phi / math.sqrt(N)).reshape(b, size * m)
    else:  # volume_rescaled
        idx = volume_rescaled_sample(keys, Phi, size)
    return WLSSample(idx, optimal_weights(Phi)[idx])


def _pool(key, Phi, method, size, num_draws) -> WLSSample:
    Phi = _check_pool(Phi)
    keys, single = _checks.as_keys(key, num_draws)
    if method == "volume_rescaled":
        size = _check_n(size, Phi.shape[1])
    elif method != "dpp":
        size = _checks.check_int(size, "repeats" if method == "repeated_dpp" else "n")
    return _checks.unbatch(_pool_draw(keys, Phi, method, size), single)


def pool_iid(
    key: Any, Phi: ArrayLike, n: int, *, num_draws: int | None = None
) -> WLSSample:
    """``n`` i.i.d. rows, row ``i`` with probability ``k_m(x_i) / (N m)``.

    Args:
      key: a PRNG key, or a batch of keys ``(B,)``.
      Phi: ``(N, m)`` basis values, ``Phi^T Phi / N = I``.
      n: static number of rows.
      num_draws: static number of draws from one key.

    Returns:
      :class:`WLSSample` with ``int32`` row indices ``[(B,) n]``.

    Raises:
      ValueError: ``Phi`` not a finite floating ``(N, m)`` array with
        ``N >= m``, (concrete) not orthonormal for the empirical measure, or
        a bad key, ``n`` or ``num_draws``.
    """
    return _pool(key, Phi, "iid", n, num_draws)


def pool_dpp(key: Any, Phi: ArrayLike, *, num_draws: int | None = None) -> WLSSample:
    """The projection DPP of the pool (``K = Phi Phi^T / N``): ``m`` distinct rows.

    Args:
      key: a PRNG key, or a batch of keys ``(B,)``.
      Phi: ``(N, m)`` basis values, ``Phi^T Phi / N = I``.
      num_draws: static number of draws from one key.

    Returns:
      :class:`WLSSample` with ``int32`` row indices ``[(B,) m]``, the items of
      :func:`~jaxsampling.kernels.dpp.sample_projection` with the same keys.

    Raises:
      ValueError: as :func:`pool_iid`.
    """
    return _pool(key, Phi, "dpp", None, num_draws)


def pool_volume_rescaled(
    key: Any, Phi: ArrayLike, n: int, *, num_draws: int | None = None
) -> WLSSample:
    """Volume-rescaled sampling of ``n >= m`` rows (repeats allowed) of the pool.

    :func:`~jaxsampling.kernels.dpp.volume_rescaled_sample` with the same
    keys: ``m`` rows of the projection DPP and ``n - m`` i.i.d. rows from
    ``rho``, shuffled.

    Args:
      key: a PRNG key, or a batch of keys ``(B,)``.
      Phi: ``(N, m)`` basis values, ``Phi^T Phi / N = I``.
      n: static number of rows, ``n >= m``.
      num_draws: static number of draws from one key.

    Returns:
      :class:`WLSSample` with ``int32`` row indices ``[(B,) n]``.

    Raises:
      ValueError: as :func:`pool_iid`, or ``n < m``.
    """
    return _pool(key, Phi, "volume_rescaled", n, num_draws)


def pool_repeated_dpp(
    key: Any, Phi: ArrayLike, repeats: int, *, num_draws: int | None = None
) -> WLSSample:
    """``repeats`` independent projection DPPs of the pool, concatenated (``r m`` rows).

    Args:
      key: a PRNG key, or a batch of keys ``(B,)``.
      Phi: ``(N, m)`` basis values, ``Phi^T Phi / N = I``.
      repeats: static number of DPP draws ``r >= 1``.
      num_draws: static number of draws from one key.

    Returns:
      :class:`WLSSample` with ``int32`` row indices ``[(B,) repeats * m]``;
      block ``k`` is the draw of :func:`~jaxsampling.kernels.dpp.sample_projection`
      with the ``k``-th of ``split(key_b, repeats)``.

    Raises:
      ValueError: as :func:`pool_iid`.
    """
    return _pool(key, Phi, "repeated_dpp", repeats, num_draws)
