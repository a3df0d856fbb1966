"""Log-probabilities of a given set under each model, differentiable in the kernel.

================================  ===============================================
function                          ``log P``
================================  ===============================================
:func:`projection_log_prob`       ``log det(V_S)^2`` (``|S| = k``)
:func:`likelihood_log_prob`       ``log det(L_S) - log det(I + L)``
:func:`correlation_log_prob`      ``log |det(K - I_{not S})|``
:func:`k_log_prob`                ``log det(L_S) - log e_k(lambda(L))``
:func:`volume_log_prob`           ``log det(X_S^T X_S) - log C(N-d, k-d) det(X^T X)``
:func:`volume_rescaled_log_prob`  ordered tuple: ``log (k-d)!/k! det(G) prod q``
================================  ===============================================

Sets of variable size are passed padded, with ``-1`` (or a ``mask``) marking
the padding, as :class:`~.ensemble.DPPDraw` returns them. Determinants go
through ``slogdet``, so gradients flow into ``L``, ``K``, ``V`` or ``X``;
an impossible set (repeated item, singular minor) gives ``-inf``.

Example:
  >>> import jax.numpy as jnp
  >>> from jaxsampling.kernels import dpp
  >>> L = jnp.array([[2.0, 0.5], [0.5, 1.0]])
  >>> total = sum(jnp.exp(dpp.likelihood_log_prob(L, jnp.array(s)))
  ...             for s in ([-1, -1], [0, -1], [1, -1], [0, 1]))
  >>> print(f"{float(total):.4f}")
  1.0000
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.special import gammaln

from jaxsampling.kernels.dpp import _checks
from jaxsampling.kernels.dpp.chain_rule import PAD
from jaxsampling.kernels.dpp.ensemble import log_elementary_symmetric
from jaxsampling.types import Array, ArrayLike

__all__ = [
    "correlation_log_prob",
    "k_log_prob",
    "likelihood_log_prob",
    "projection_log_prob",
    "volume_log_prob",
    "volume_rescaled_log_prob",
]


def _indices(indices: ArrayLike, n: int, name: str = "indices") -> Array:
    indices = jnp.asarray(indices)
    if indices.ndim != 1 or not jnp.issubdtype(indices.dtype, jnp.integer):
        raise ValueError(f"{name} must be a 1-D integer array, got {indices.shape} {indices.dtype}")
    if not _checks.is_tracer(indices):
        bad = (indices != PAD) & ((indices < 0) | (indices >= n))
        if bool(bad.any()):
            raise ValueError(f"{name} has entries outside [0, {n}) other than the padding -1")
    return indices


def _log_det(M: Array) -> Array:
    sign, logdet = jnp.linalg.slogdet(M)
    return jnp.where(sign > 0, logdet, -jnp.inf)


def _distinct(indices: Array, mask: Array) -> Array:
    same = (indices[:, None] == indices[None, :]) & mask[:, None] & mask[None, :]
    return jnp.sum(same) == jnp.sum(mask)


def _masked_minor(M: Array, indices: Array) -> tuple[Array, Array]:
    mask = indices != PAD
    safe = jnp.where(mask, indices, 0)
    minor = M[safe][:, safe]
    both = mask[:, None] & mask[None, :]
    eye = jnp.eye(indices.shape[0], dtype=M.dtype)
    return jnp.where(both, minor, eye), mask


def projection_log_prob(V: ArrayLike, indices: ArrayLike) -> Array:
    """``log P(S)`` under the projection DPP ``V V^T`` (``V`` ``N x k``, ``|S| = k``)."""
    V = _checks.check_floating(V, "V", 2, "(N, k)")
    indices = _indices(indices, V.shape[0])
    if indices.shape[0] != V.shape[1]:
        raise ValueError(f"indices must have length k = {V.shape[1]}, got {indices.shape[0]}")
    mask = indices != PAD
    rows = V[jnp.where(mask, indices, 0)]
    value = 2 * jnp.linalg.slogdet(rows)[1]
    return jnp.where(jnp.all(mask) & _distinct(indices, mask), value, -jnp.inf)


def likelihood_log_prob(L: ArrayLike, indices: ArrayLike) -> Array:
    """``log det(L_S) - log det(I + L)`` for a padded set ``S``."""
    L = _checks.check_floating(L, "L", 2, "(N, N)")
    indices = _indices(indices, L.shape[0])
    minor, mask = _masked_minor(L, indices)
    normaliser = _log_det(jnp.eye(L.shape[0], dtype=L.dtype) + L)
    value = _log_det(minor) - normaliser
    return jnp.where(_distinct(indices, mask), value, -jnp.inf)


def correlation_log_prob(K: ArrayLike, indices: ArrayLike) -> Array:
    """``log P(S = A) = log |det(K - I_{not A})|`` for a correlation kernel ``K``."""
    K = _checks.check_floating(K, "K", 2, "(N, N)")
    n = K.shape[0]
    indices = _indices(indices, n)
    mask = indices != PAD
    member = jnp.zeros(n, bool).at[jnp.where(mask, indices, n)].set(True, mode="drop")
    M = K - jnp.diag(jnp.where(member, 0, 1).astype(K.dtype))
    value = jnp.linalg.slogdet(M)[1]
    return jnp.where(_distinct(indices, mask), value, -jnp.inf)


def k_log_prob(L: ArrayLike, indices: ArrayLike) -> Array:
    """``log det(L_S) - log e_k(lambda(L))`` under the k-DPP, ``k = len(indices)``."""
    L = _checks.check_floating(L, "L", 2, "(N, N)")
    indices = _indices(indices, L.shape[0])
    k = indices.shape[0]
    lam = jnp.linalg.eigvalsh(L)
    log_lam = jnp.log(jnp.where(lam > 0, lam, 0))
    log_ek = log_elementary_symmetric(log_lam, k)[-1, k]
    minor, mask = _masked_minor(L, indices)
    value = _log_det(minor) - log_ek
    return jnp.where(jnp.all(mask) & _distinct(indices, mask), value, -jnp.inf)


def _log_binomial(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def volume_log_prob(X: ArrayLike, indices: ArrayLike) -> Array:
    """``log P(S)`` under size-``k`` volume sampling, ``P(S) propto det(X_S^T X_S)``."""
    X = _checks.check_floating(X, "X", 2, "(N, d)")
    n, d = X.shape
    indices = _indices(indices, n)
    k = indices.shape[0]
    if k < d:
        raise ValueError(f"indices must have length k >= d = {d}, got {k}")
    mask = indices != PAD
    rows = X[jnp.where(mask, indices, 0)]
    value = _log_det(rows.T @ rows) - _log_binomial(n - d, k - d) - _log_det(X.T @ X)
    return jnp.where(jnp.all(mask) & _distinct(indices, mask), value, -jnp.inf)


def volume_rescaled_log_prob(X: ArrayLike, indices: ArrayLike) -> Array:
    """``log P(i_1..i_k)`` of an ordered tuple under volume-rescaled sampling.

    ``(k - d)! / k! * det(sum_j Q_j^T Q_j / q_j) * prod_j q_j`` with
    ``q_i = ||Q_i||^2 / d``; invariant to the basis ``Q`` of ``X``'s columns.
    """
    X = _checks.check_floating(X, "X", 2, "(N, d)")
    n, d = X.shape
    indices = _indices(indices, n)
    k = indices.shape[0]
    if k < d:
        raise ValueError(f"indices must have length k >= d = {d}, got {k}")
    Q, _ = jnp.linalg.qr(X)
    q = jnp.sum(Q * Q, axis=1) / d
    rows, qs = Q[indices], q[indices]
    G = (rows / qs[:, None]).T @ rows
    value = gammaln(k - d + 1.0) - gammaln(k + 1.0) + _log_det(G) + jnp.sum(jnp.log(qs))
    first = jnp.argmax(indices[:, None] == indices[None, :], axis=1) == jnp.arange(k)
    enough = jnp.sum(first) >= d  # fewer than d distinct rows: G is singular
    return jnp.where(jnp.all(indices != PAD) & enough, value, -jnp.inf)
