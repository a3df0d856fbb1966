"""Exact leverage scores of a tall matrix without forming Q.

The leverage score of row ``i`` of ``A`` (``n x d``, ``n >> d``) is the
diagonal of the hat matrix,

    tau_i = a_i^T (A^T A)^+ a_i = ||U_i||^2,    sum_i tau_i = rank(A),

with ``U`` any orthonormal basis of the column space. ``0 <= tau_i <= 1``.

**Cholesky-QR path** (the default). With the column-equilibrated Gram
matrix ``G = D^-1 A^T A D^-1 = L L^T`` (one ``n d^2`` GEMM; an all-reduce of
``d x d`` numbers when the rows of ``A`` are sharded), an explicit inverse
``M = D^-1 L^-T`` (``O(d^3)``) and one more GEMM:

    tau_i = ||a_i M||^2.

No triangular solve runs over the ``n`` rows. Its relative error is about
``eps kappa(A)^2``, so :func:`leverage_scores` estimates
``kappa_F(G) = ||L||_F^2 ||L^-1||_F^2 >= kappa_2(G)`` and picks, at run time
(``lax.switch``):

==========  =====================================  ==========================
branch      when                                   cost over the n rows
==========  =====================================  ==========================
cholqr      ``eps kappa_F(G) <= sqrt(eps)``        2 GEMMs
cholqr2     ``eps kappa_F(G) <= 1e-2``             4 GEMMs (a second CholQR
                                                   pass on ``Q1 = A M1``)
svd         otherwise (or Cholesky failed)         Householder QR of ``A``,
                                                   SVD of ``R``; rank-revealing
==========  =====================================  ==========================

Only the ``svd`` branch copes with a rank-deficient ``A``: it keeps the
singular values above ``s_max sqrt(n) d eps`` so the scores sum to the
numerical rank (numpy's ``matrix_rank`` rule, ``s_max max(n, d) eps``, drops
real directions of tall float32 matrices). Under ``vmap`` ``lax.switch``
becomes a select and every branch runs.

**Sharding.** Rows of ``A`` sharded over a mesh axis give the same scores as
unsharded rows, sharded the same way: the Cholesky-QR branches need only the
all-reduce of the Gram matrix. The ``svd`` branch all-gathers ``A`` (Householder
QR is not split across devices); it runs only for ill-conditioned input.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxsampling.kernels import leverage
  >>> A = jax.random.normal(jax.random.key(0), (1000, 5))
  >>> tau = leverage.leverage_scores(A)
  >>> round(float(tau.sum()), 3)
  5.0

References:
  Fukaya, Kannan, Nakatsukasa, Yamamoto & Yanagisawa (2020), Shifted Cholesky
  QR for computing the QR factorization of ill-conditioned matrices.
  Drineas, Magdon-Ismail, Mahoney & Woodruff (2012), Fast approximation of
  matrix coherence and statistical leverage.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from jaxsampling import sharding
from jaxsampling.kernels.leverage import _checks
from jaxsampling.types import Array, ArrayLike

__all__ = [
    "METHODS",
    "gram_whitener",
    "leverage_scores",
    "root_leverage_scores",
]

METHODS = ("auto", "cholqr", "cholqr2", "svd")


def gram_whitener(X: Array) -> tuple[Array, Array]:
    """``M`` with ``X M`` orthonormal, from the Gram matrix, and ``kappa_F(G)``.

    ``G = D^-1 X^T X D^-1 = L L^T`` with ``D`` the column norms; returns
    ``M = D^-1 L^-T`` (upper triangular up to the column scaling) and the
    Frobenius condition estimate ``||L||_F^2 ||L^-1||_F^2`` of ``G`` (NaN if
    the Cholesky factorisation failed).

    Args:
      X: ``float[n, d]``.

    Returns:
      ``(M float[d, d], kappa float[])``.
    """
    if sharding.explicit_batch_axis(X) is None:
        gram = X.T @ X
    else:  # rows sharded on an explicit mesh: the all-reduce, replicated result
        gram = jnp.matmul(X.T, X, out_sharding=P())
    scale = jnp.sqrt(jnp.diagonal(gram))
    scale = jnp.where(scale > 0, scale, 1.0)
    gram = gram / scale[:, None] / scale[None, :]
    chol = jnp.linalg.cholesky(gram)
    eye = jnp.eye(gram.shape[0], dtype=gram.dtype)
    chol_inv = jax.scipy.linalg.solve_triangular(chol, eye, lower=True)
    kappa = jnp.sum(chol**2) * jnp.sum(chol_inv**2)
    return chol_inv.T / scale[:, None], kappa


def _row_norms_squared(X: Array, M: Array) -> Array:
    return jnp.sum(jnp.square(X @ M), axis=1)


def _cholqr(X: Array, M: Array) -> Array:
    return _row_norms_squared(X, M)


def _cholqr2(X: Array, M: Array) -> Array:
    Q1 = X @ M
    M2, _ = gram_whitener(Q1)
    return _row_norms_squared(Q1, M2)


def _svd(X: Array) -> Array:
    X = sharding.unshard(X)
    Q, R = jnp.linalg.qr(X)
    U, s, _ = jnp.linalg.svd(R)
    tol = _rank_tolerance(s[0], *X.shape, X.dtype)
    basis = (Q @ U) * (s > tol)[None, :]
    return jnp.sum(jnp.square(basis), axis=1)


def _rank_tolerance(s_max, n: int, d: int, dtype):
    """Singular values below ``s_max sqrt(n) d eps`` count as zero.

    numpy's ``matrix_rank`` cut-off ``s_max max(n, d) eps`` is 2.4% of
    ``s_max`` for a 200,000-row float32 matrix and dropped real directions;
    Householder QR's backward error grows like ``sqrt(n) d eps`` in practice.
    """
    return s_max * (n**0.5) * d * jnp.finfo(dtype).eps


def _branch(kappa: Array, dtype) -> Array:
    eps = jnp.finfo(dtype).eps
    fast = jnp.isfinite(kappa) & (eps * kappa <= jnp.sqrt(eps))
    refine = jnp.isfinite(kappa) & (eps * kappa <= 1e-2)
    return jnp.where(fast, 0, jnp.where(refine, 1, 2))


def _scores(X: Array, method: str) -> Array:
    axis = sharding.explicit_batch_axis(X)
    if method == "svd":
        return sharding.reshard_like(_svd(X), axis)
    M, kappa = gram_whitener(X)
    if method == "cholqr":
        return _cholqr(X, M)
    if method == "cholqr2":
        return _cholqr2(X, M)
    branches = (
        lambda: _cholqr(X, M),
        lambda: _cholqr2(X, M),
        lambda: sharding.reshard_like(_svd(X), axis),
    )
    return jax.lax.switch(_branch(kappa, X.dtype), branches)


def leverage_scores(A: ArrayLike, *, method: str = "auto") -> Array:
    """Exact leverage scores ``tau_i = a_i^T (A^T A)^+ a_i`` of a tall matrix.

    Args:
      A: ``float[n, d]`` with ``n >= d``; rows may be sharded over a mesh.
      method: ``"auto"`` (Cholesky-QR, refined or replaced by the
        rank-revealing QR + SVD path when ``A`` is ill-conditioned; see the
        module docstring), ``"cholqr"``, ``"cholqr2"`` (always that branch;
        they assume full column rank) or ``"svd"`` (always rank-revealing).

    Returns:
      ``float[n]``: scores in ``[0, 1]`` summing to ``rank(A)``, sharded like
      the rows of ``A``.

    Raises:
      ValueError: wrong shape or dtype, ``n < d``, an unknown ``method``, or
        (concrete ``A``) non-finite entries. Under ``jit`` non-finite rows
        give NaN scores.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxsampling.kernels import leverage
      >>> A = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
      >>> [round(v, 4) for v in leverage.leverage_scores(A).tolist()]
      [1.0, 0.5, 0.5]
    """
    A = _checks.check_matrix(A)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return _scores(A, method)


def root_leverage_scores(A: ArrayLike, *, method: str = "auto") -> Array:
    """``sqrt(tau_i)``: the root-leverage scores, an l_1 importance proxy.

    ``|a_i x| <= sqrt(tau_i) ||A x||_2 <= sqrt(tau_i) ||A x||_1``, so
    ``sqrt(tau_i)`` bounds the l_1 sensitivity of row ``i``; their sum is at
    most ``sqrt(n d)``. Arguments as :func:`leverage_scores`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxsampling.kernels import leverage
      >>> A = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
      >>> [round(v, 4) for v in leverage.root_leverage_scores(A).tolist()]
      [1.0, 0.7071, 0.7071]
    """
    return jnp.sqrt(leverage_scores(A, method=method))
