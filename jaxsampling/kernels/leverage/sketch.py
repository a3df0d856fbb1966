"""Sketched (approximate) leverage scores, Drineas et al. (2012).

Two random maps replace the exact ``O(n d^2)`` computation:

1. A subspace embedding ``Pi_1`` (``s x n``) with ``s << n``: ``Pi_1 A = Q R``
   by Householder QR of the small sketch. If ``Pi_1`` distorts norms in the
   column space of ``A`` by at most ``1 +- eps_1``, then ``A R^-1`` has
   singular values in ``[1 - eps_1, 1 + eps_1]`` and
   ``||a_i R^-1||^2`` is within a factor ``(1 +- eps_1)^-2`` of ``tau_i``.
2. A Johnson-Lindenstrauss map ``Pi_2`` (``d x k`` Gaussian, ``k << d``):
   ``tau_i ~ ||a_i (R^-1 Pi_2)||^2``, an ``n d k`` GEMM instead of ``n d^2``,
   and ``||.||^2`` is preserved within ``1 +- eps_2`` for all ``n`` rows
   once ``k = O(log(n) / eps_2^2)``.

Sketches: ``"countsketch"`` (each row added with a random sign to one of ``s``
buckets; ``O(nnz(A))``, needs ``s = O(d^2 / eps^2)`` in theory, far fewer on
incoherent matrices), ``"srht"`` (random signs, a fast Walsh-Hadamard
transform over the zero-padded rows, ``s`` sampled rows; ``O(n d log n)``,
``s = O(d log n / eps^2)``) and ``"gaussian"`` (``O(n d s)``, for checks).

**The error parameter.** ``eps`` sets the defaults ``s = ceil(4 d / eps^2)``
and ``k = ceil(4 log(n) / eps^2)`` (the JL map is skipped when ``k >= d``):
the constants at which the maximum relative error over the rows was about
``eps`` on the benchmark matrices. The guarantee of Drineas et al. holds with
larger, unspecified constants. Sketching pays only when ``d`` is large (or
``A`` sparse): for dense ``A`` with ``d = 50`` the exact Cholesky-QR path of
:func:`~jaxsampling.kernels.leverage.leverage_scores` is as fast.

Example:
  >>> import jax
  >>> from jaxsampling.kernels import leverage
  >>> A = jax.random.normal(jax.random.key(0), (4096, 8))
  >>> tau = leverage.approximate_leverage_scores(jax.random.key(1), A)
  >>> tau.shape
  (4096,)

References:
  Drineas, Magdon-Ismail, Mahoney & Woodruff (2012), Fast approximation of
  matrix coherence and statistical leverage. Clarkson & Woodruff (2013),
  Low rank approximation and regression in input sparsity time. Tropp (2011),
  Improved analysis of the subsampled randomized Hadamard transform.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxsampling.kernels.leverage import _checks
from jaxsampling.types import Array, ArrayLike, PRNGKey

__all__ = [
    "SKETCHES",
    "approximate_leverage_scores",
    "countsketch",
    "gaussian_sketch",
    "srht",
]

SKETCHES = ("countsketch", "srht", "gaussian")


def countsketch(key: PRNGKey, A: Array, sketch_size: int) -> Array:
    """``Pi A`` for a CountSketch ``Pi``: row ``i`` goes to bucket ``h(i)`` with sign ``s(i)``.

    Args:
      key: PRNG key.
      A: ``float[n, d]``.
      sketch_size: number of buckets ``s``.

    Returns:
      ``float[s, d]``.
    """
    bucket_key, sign_key = jax.random.split(key)
    n = A.shape[0]
    buckets = jax.random.randint(bucket_key, (n,), 0, sketch_size)
    signs = jax.random.rademacher(sign_key, (n,), dtype=A.dtype)
    return jax.ops.segment_sum(signs[:, None] * A, buckets, num_segments=sketch_size)


def _walsh_hadamard(X: Array) -> Array:
    """Unnormalised fast Walsh-Hadamard transform along axis 0 (length 2^L)."""
    n, d = X.shape
    h = 1
    while h < n:
        X = X.reshape(n // (2 * h), 2, h, d)
        X = jnp.stack([X[:, 0] + X[:, 1], X[:, 0] - X[:, 1]], axis=1)
        h *= 2
    return X.reshape(n, d)


def srht(key: PRNGKey, A: Array, sketch_size: int) -> Array:
    """``Pi A`` for a subsampled randomized Hadamard transform.

    ``Pi = sqrt(N / s) S H D / sqrt(N)`` with ``N`` the next power of two
    (rows zero-padded), ``D`` random signs, ``H`` the Walsh-Hadamard matrix and
    ``S`` ``s`` rows sampled without replacement.

    Args:
      key: PRNG key.
      A: ``float[n, d]``.
      sketch_size: sampled rows ``s`` (at most the padded length).

    Returns:
      ``float[s, d]``.
    """
    sign_key, row_key = jax.random.split(key)
    n, d = A.shape
    size = 1 << max(0, (n - 1).bit_length())
    signs = jax.random.rademacher(sign_key, (n,), dtype=A.dtype)
    X = jnp.zeros((size, d), A.dtype).at[:n].set(signs[:, None] * A)
    rows = jax.random.choice(row_key, size, (min(sketch_size, size),), replace=False)
    return _walsh_hadamard(X)[rows] / math.sqrt(sketch_size)


def gaussian_sketch(key: PRNGKey, A: Array, sketch_size: int) -> Array:
    """``Pi A`` with ``Pi`` i.i.d. ``N(0, 1 / s)``: ``float[s, d]``."""
    pi = jax.random.normal(key, (sketch_size, A.shape[0]), A.dtype)
    return pi @ A / math.sqrt(sketch_size)


_SKETCH_FNS = {"countsketch": countsketch, "srht": srht, "gaussian": gaussian_sketch}


def approximate_leverage_scores(
    key: PRNGKey,
    A: ArrayLike,
    *,
    sketch: str = "countsketch",
    eps: float = 0.5,
    sketch_size: int | None = None,
    jl_dim: int | None = None,
) -> Array:
    """Leverage scores of ``A`` from a sketch of its rows and a JL projection.

    ``tau_i ~ ||a_i R^-1 Pi_2||^2`` with ``Pi_1 A = Q R`` (see the module
    docstring for the error analysis).

    Args:
      key: PRNG key.
      A: ``float[n, d]``, full column rank, ``n >= d``.
      sketch: ``"countsketch"``, ``"srht"`` or ``"gaussian"``.
      eps: target relative error; sets the default sizes.
      sketch_size: rows ``s`` of the sketch (default ``ceil(4 d / eps^2)``,
        at least ``d``).
      jl_dim: columns ``k`` of the JL map (default ``ceil(4 log(n) / eps^2)``);
        no JL map when ``k >= d``.

    Returns:
      ``float[n]`` approximate scores (not clipped to ``[0, 1]``).

    Raises:
      ValueError: wrong shape or dtype, an unknown ``sketch``, sizes that are
        not positive ints, ``sketch_size < d``, ``eps <= 0``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import leverage
      >>> A = jax.random.normal(jax.random.key(0), (4096, 8))
      >>> approx = leverage.approximate_leverage_scores(jax.random.key(1), A, eps=0.25)
      >>> exact = leverage.leverage_scores(A)
      >>> bool(jnp.max(jnp.abs(approx / exact - 1)) < 1.0)
      True
    """
    _checks.check_key(key)
    A = _checks.check_matrix(A)
    if sketch not in SKETCHES:
        raise ValueError(f"sketch must be one of {SKETCHES}, got {sketch!r}")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    n, d = A.shape
    if sketch_size is None:
        sketch_size = min(n, max(d, math.ceil(4 * d / eps**2)))
    sketch_size = _checks.check_int(sketch_size, "sketch_size", minimum=d)
    if jl_dim is None:
        jl_dim = math.ceil(4 * math.log(n) / eps**2)
    jl_dim = _checks.check_int(jl_dim, "jl_dim")
    sketch_key, jl_key = jax.random.split(key)
    sketched = _SKETCH_FNS[sketch](sketch_key, A, sketch_size)
    R = jnp.linalg.qr(sketched, mode="r")
    eye = jnp.eye(d, dtype=A.dtype)
    R_inv = jax.scipy.linalg.solve_triangular(R, eye, lower=False)
    if jl_dim < d:
        projection = jax.random.normal(jl_key, (d, jl_dim), A.dtype) / math.sqrt(jl_dim)
        R_inv = R_inv @ projection
    return jnp.sum(jnp.square(A @ R_inv), axis=1)
