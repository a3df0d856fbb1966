"""Sketched (approximate) leverage scores, Drineas et al. (2012).

Three steps replace the exact ``O(n d^2)`` computation:

1. A subspace embedding ``Pi_1`` (``s x n``, ``d <= s << n``) and a whitener
   ``W`` with ``(Pi_1 A) W`` orthonormal: Cholesky-QR of the ``s x d`` sketch
   (the Gram matrix ``2 s d^2`` flops, an explicit inverse of its Cholesky
   factor), or Householder QR when the sketch is too ill-conditioned for
   Cholesky (the test of ``leverage_scores``'s ``cholqr`` branch). If
   ``Pi_1`` distorts norms in the column space of ``A`` by at most
   ``1 +- eps_1``, ``||a_i W||^2`` is within a factor ``(1 +- eps_1)^-2`` of
   ``tau_i``.
2. A Johnson-Lindenstrauss map ``P = sqrt(d / k) Q``, ``Q`` a Haar-random
   ``d x k`` matrix with orthonormal columns (``k < d``):
   ``tau_i ~ ||a_i (W P)||^2``, an ``n d k`` GEMM instead of ``n d^2``.
   For every row ``||x P||^2 / ||x||^2 ~ (d / k) Beta(k / 2, (d - k) / 2)``:
   mean 1, variance ``(2 / k)(1 - k / d) d / (d + 2)``, below the ``2 / k``
   of a Gaussian map (at ``k = 185, d = 500`` the ``1 - 1e-5`` quantile is
   1.36 against 1.51).
3. A bias correction: the scores are multiplied by ``c = (s - d - 1) / s``.
   For a Gaussian ``Pi_1``, ``E[(A^T Pi_1^T Pi_1 A)^-1] = (A^T A)^-1 / c``
   (the inverse-Wishart mean), so uncorrected scores run ``1 / c`` high on
   average; the measured mean ratio of the sparse sketch is the same (1.066
   against ``1 / c = 1.067`` at ``s = 8000``, ``d = 500``).

Sketches:

* ``"sparse"`` (the default): an OSNAP sparse sign embedding (block
  construction): ``zeta = NNZ_PER_ROW = 4`` independent CountSketches of
  ``s / 4`` rows each, stacked, entries ``+-1/2``. ``O(zeta nnz(A))``; the
  rows of ``A`` are read once, in order, and added to their buckets in place
  by an unrolled loop (no ``n x d`` temporary, no XLA scatter).
* ``"countsketch"``: one non-zero per row of ``A`` (``zeta = 1``,
  ``jax.ops.segment_sum``). On heavy-tailed ``A`` two rows of leverage near
  1 that share a bucket leave the sketch nearly rank-deficient in their span:
  errors far above ``eps`` (in the benchmark, 100,000 x d Student-t(1.5) at
  ``eps = 0.5``: max relative error 2.1 at ``d = 200`` and 7.0 at
  ``d = 500``). With ``zeta`` blocks a collision spoils one block in ``zeta``
  (error about ``1 / (1 - zeta^-2) - 1`` for two rows of leverage 1: 7% at
  ``zeta = 4``).
* ``"srht"``: random signs, a fast Walsh-Hadamard transform over the
  zero-padded rows, ``s`` sampled rows; ``O(n d log n)``. Accurate, but on a
  CPU slower than the exact scores at every ``d <= 500`` of the benchmark.
* ``"gaussian"``: ``O(n d s)``, for checks.

**Precision.** For float64 ``A`` and ``eps >= MIXED_PRECISION_EPS`` (1e-3),
the sparse sketch is accumulated and the final ``n x k`` product computed in
float32; the Gram matrix of the sketch, its Cholesky factor, ``W`` and ``P``
stay in float64. The float32 rounding (relative ``~1e-7 cond(A)``) is far
below ``eps``; the float32 product ran about a third faster (``n = 100,000``,
``d = 500``, ``k = 254``).

**The error parameter.** ``eps`` sets the defaults
``k = ceil(5.5 log(n) / eps^2)`` (``JL_CONSTANT``; no JL map when
``k >= d``) and ``s = ceil(2 d / eps^2) + k`` (``SKETCH_CONSTANT``), at most
``n``: the ``d`` term for the subspace embedding, the ``log(n)`` term because
each row's estimate from a sketch with ``s - d`` spare rows concentrates like
a ``chi^2_(s-d)`` (Gaussian sketch), uniformly over ``n`` rows. Measured on
i.i.d. Student-t(1.5) matrices (heavy-tailed: hundreds of rows of leverage
above 0.5) with ``n = 100,000``, at ``eps = 0.5``: maximum relative error
over the rows 0.32-0.34 at ``d = 500`` (``s = 4254``, ``k = 254``) and
0.17-0.36 at ``d = 50, 100, 200`` (no JL map), 4 keys each: the defaults err
below ``eps``. The guarantee of Drineas et al. holds with larger, unspecified
constants.

**Cost.** Sketching pays only when ``d`` is large (or ``A`` sparse). In the
``leverage`` benchmark (2-core CPU, float64, ``n = 100,000``, ``eps = 0.5``)
the exact Cholesky-QR path of
:func:`~jaxsampling.kernels.leverage.leverage_scores` took 0.96, 1.47, 1.60
and 3.86 times as long as the default sparse path at ``d = 50, 100, 200,
500`` (2.01 s against 0.52 s at ``d = 500``): for dense ``A`` with
``d = 50`` sketching does not pay.

**Sharding.** A row-sharded ``A`` (explicit mesh) is all-gathered (the
sketch loops over all rows); the scores come back sharded like ``A``'s rows.

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
  Low rank approximation and regression in input sparsity time. Nelson &
  Nguyen (2013), OSNAP: faster numerical linear algebra algorithms via
  sparser subspace embeddings. Tropp (2011), Improved analysis of the
  subsampled randomized Hadamard transform.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxsampling import sharding
from jaxsampling.kernels.leverage import _checks, scores
from jaxsampling.types import Array, ArrayLike, PRNGKey

__all__ = [
    "SKETCHES",
    "approximate_leverage_scores",
    "countsketch",
    "default_sizes",
    "gaussian_sketch",
    "sparse_sketch",
    "srht",
]

SKETCHES = ("countsketch", "srht", "gaussian", "sparse")
#: Non-zeros per column of the ``"sparse"`` sketch (rows of ``A`` it lands in).
NNZ_PER_ROW = 4
#: Default sizes (:func:`default_sizes`): ``k = ceil(JL_CONSTANT log(n) / eps^2)``,
#: ``s = ceil(SKETCH_CONSTANT d / eps^2) + k`` (module docstring).
SKETCH_CONSTANT = 2.0
JL_CONSTANT = 5.5
#: Rows of ``A`` added to the sparse sketch per loop step (the step is unrolled).
ROWS_PER_STEP = 8
#: Smallest ``eps`` at which float64 input is sketched and projected in float32.
MIXED_PRECISION_EPS = 1e-3


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


def sparse_sketch(
    key: PRNGKey, A: Array, sketch_size: int, *, nnz_per_row: int = NNZ_PER_ROW
) -> Array:
    """``Pi A`` for an OSNAP sparse sign embedding (block construction).

    The ``s`` rows of ``Pi`` form ``zeta = nnz_per_row`` blocks (sizes differ
    by at most one); each block is an independent CountSketch: row ``i`` of
    ``A`` is added, with sign ``+-1 / sqrt(zeta)``, to one uniformly random row
    of every block. Two rows of large leverage that share a bucket spoil one
    block in ``zeta`` instead of the whole embedding, which is what breaks the
    plain CountSketch on heavy-tailed ``A``. Cost ``O(zeta nnz(A))``: the rows
    of ``A`` are read once, in order, ``ROWS_PER_STEP`` per step of a loop,
    and each is added to its ``zeta`` buckets in place (no ``n x d``
    temporary and no XLA scatter, several times slower on CPU).

    Args:
      key: PRNG key.
      A: ``float[n, d]``.
      sketch_size: rows ``s`` of the sketch.
      nnz_per_row: ``zeta``, the blocks (at most ``s``).

    Returns:
      ``float[s, d]``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels.leverage import sketch
      >>> A = jax.random.normal(jax.random.key(0), (1000, 3))
      >>> SA = sketch.sparse_sketch(jax.random.key(1), A, 300)
      >>> SA.shape, bool(jnp.allclose(jnp.sum(SA**2), jnp.sum(A**2), rtol=0.1))
      ((300, 3), True)

    References:
      Nelson & Nguyen (2013), OSNAP: faster numerical linear algebra
      algorithms via sparser subspace embeddings. Cohen (2016), Nearly tight
      oblivious subspace embeddings by trace inequalities.
    """
    return _sparse_sketch(key, A, sketch_size, nnz_per_row, A.dtype).astype(A.dtype)


def _sparse_sketch(
    key: PRNGKey, A: Array, sketch_size: int, nnz_per_row: int, dtype
) -> Array:
    """:func:`sparse_sketch`, accumulated in ``dtype``."""
    n, d = A.shape
    zeta = max(1, min(nnz_per_row, sketch_size))
    size, extra = divmod(sketch_size, zeta)
    sizes = [size + (z < extra) for z in range(zeta)]
    offsets = [sum(sizes[:z]) for z in range(zeta)]
    hash_key, sign_key = jax.random.split(key)
    buckets = jax.random.randint(hash_key, (n, zeta), 0, jnp.asarray(sizes))
    buckets = (buckets + jnp.asarray(offsets)).astype(jnp.int32)
    signs = jax.random.rademacher(sign_key, (n, zeta), dtype=dtype) / math.sqrt(zeta)
    rows = min(n, ROWS_PER_STEP)

    def body(i, out):
        # The last step starts at n - rows; rows done before it get sign 0.
        start = jnp.minimum(i * rows, n - rows)
        block = lax.dynamic_slice_in_dim(A, start, rows).astype(dtype)
        where = lax.dynamic_slice_in_dim(buckets, start, rows)
        sign = lax.dynamic_slice_in_dim(signs, start, rows)
        fresh = start + jnp.arange(rows) >= i * rows
        sign = jnp.where(fresh[:, None], sign, jnp.zeros((), dtype))
        for t in range(rows):
            for z in range(zeta):
                j = where[t, z]
                row = lax.dynamic_index_in_dim(out, j, keepdims=False)
                row = row + sign[t, z] * block[t]
                out = lax.dynamic_update_index_in_dim(out, row, j, 0)
        return out

    init = jnp.zeros((sketch_size, d), dtype)
    return lax.fori_loop(0, -(-n // rows), body, init)


def gaussian_sketch(key: PRNGKey, A: Array, sketch_size: int) -> Array:
    """``Pi A`` with ``Pi`` i.i.d. ``N(0, 1 / s)``: ``float[s, d]``."""
    pi = jax.random.normal(key, (sketch_size, A.shape[0]), A.dtype)
    return pi @ A / math.sqrt(sketch_size)


_SKETCH_FNS = {
    "countsketch": countsketch,
    "srht": srht,
    "gaussian": gaussian_sketch,
    "sparse": sparse_sketch,
}


def _whitener(sketched: Array) -> Array:
    """``W`` with ``sketched @ W`` orthonormal: Cholesky-QR of the Gram matrix.

    The Gram matrix of the small sketch is one GEMM (``2 s d^2`` flops, about
    as many as Householder QR, but at GEMM speed): 0.10 s against 0.18 s for
    QR and a triangular inverse on a 4254 x 500 sketch (2-core CPU, float64).
    When the sketch is too ill-conditioned for Cholesky (the test of
    :func:`~jaxsampling.kernels.leverage.leverage_scores`'s ``cholqr`` branch)
    Householder QR and a triangular inverse take over.
    """
    M, kappa = scores.gram_whitener(sketched)
    eps = jnp.finfo(sketched.dtype).eps
    ok = jnp.isfinite(kappa) & (eps * kappa <= math.sqrt(eps))

    def householder():
        R = jnp.linalg.qr(sketched, mode="r")
        eye = jnp.eye(R.shape[0], dtype=R.dtype)
        return jax.scipy.linalg.solve_triangular(R, eye, lower=False)

    return lax.cond(ok, lambda: M, householder)


def _orthogonal_projection(key: PRNGKey, d: int, k: int, dtype) -> Array:
    """``sqrt(d / k) Q`` with ``Q`` (``d x k``) Haar-distributed orthonormal columns."""
    Q, _ = jnp.linalg.qr(jax.random.normal(key, (d, k), dtype))
    return Q * math.sqrt(d / k)


def _row_norms_squared(A: Array, W: Array, dtype) -> Array:
    """``||a_i W||^2`` for every row, the product in ``dtype``."""
    product = A.astype(dtype) @ W.astype(dtype)
    return jnp.sum(jnp.square(product), axis=1).astype(A.dtype)


def _work_dtype(dtype, eps: float):
    """The dtype of the sparse sketch and the final product (module docstring)."""
    if dtype == jnp.float64 and eps >= MIXED_PRECISION_EPS:
        return jnp.float32
    return dtype


def default_sizes(n: int, d: int, eps: float) -> tuple[int, int]:
    """The default ``(sketch_size, jl_dim)`` of :func:`approximate_leverage_scores`.

    With ``K = ceil(JL_CONSTANT log(n) / eps^2)``: ``k = min(d, K)``
    (``k = d``: no JL map) and ``s = ceil(SKETCH_CONSTANT d / eps^2) + K``
    clipped to ``[d, n]`` (module docstring).

    Example:
      >>> from jaxsampling.kernels.leverage import sketch
      >>> sketch.default_sizes(100_000, 500, 0.5)
      (4254, 254)
    """
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    jl_dim = math.ceil(JL_CONSTANT * math.log(n) / eps**2)
    sketch_size = min(n, math.ceil(SKETCH_CONSTANT * d / eps**2) + jl_dim)
    return max(d, sketch_size), min(jl_dim, d)


def approximate_leverage_scores(
    key: PRNGKey,
    A: ArrayLike,
    *,
    sketch: str = "sparse",
    eps: float = 0.5,
    sketch_size: int | None = None,
    jl_dim: int | None = None,
) -> Array:
    """Leverage scores of ``A`` from a sketch of its rows and a JL projection.

    ``tau_i ~ c ||a_i W P||^2`` with ``(Pi_1 A) W`` orthonormal, ``P`` the JL
    map and ``c = (s - d - 1) / s`` (see the module docstring; for float64
    ``A`` and ``eps >= 1e-3`` the sparse sketch and the final product run in
    float32).

    Args:
      key: PRNG key.
      A: ``float[n, d]``, full column rank, ``n >= d``.
      sketch: ``"sparse"`` (the default), ``"countsketch"``, ``"srht"`` or
        ``"gaussian"``.
      eps: target maximum relative error over the rows; sets the default
        sizes (:func:`default_sizes`; measured errors in the module
        docstring) and, below 1e-3, keeps float64 input in float64.
      sketch_size: rows ``s`` of the sketch, at least ``d`` (default
        ``ceil(SKETCH_CONSTANT d / eps^2) + ceil(JL_CONSTANT log(n) / eps^2)``,
        at most ``n``).
      jl_dim: columns ``k`` of the JL map (default
        ``ceil(JL_CONSTANT log(n) / eps^2)``); no JL map when ``k >= d``.

    Returns:
      ``float[n]`` approximate scores in ``A``'s dtype (not clipped to
      ``[0, 1]``), sharded like the rows of ``A``.

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
    default_s, default_k = default_sizes(n, d, eps)
    sketch_size = default_s if sketch_size is None else sketch_size
    sketch_size = _checks.check_int(sketch_size, "sketch_size", minimum=d)
    jl_dim = _checks.check_int(default_k if jl_dim is None else jl_dim, "jl_dim")
    axis = sharding.explicit_batch_axis(A)
    A = sharding.unshard(A)
    work = _work_dtype(A.dtype, eps)
    sketch_key, jl_key = jax.random.split(key)
    if sketch == "sparse":
        sketched = _sparse_sketch(sketch_key, A, sketch_size, NNZ_PER_ROW, work)
        sketched = sketched.astype(A.dtype)
    else:
        sketched = _SKETCH_FNS[sketch](sketch_key, A, sketch_size)
    W = _whitener(sketched)
    if jl_dim < d:
        W = W @ _orthogonal_projection(jl_key, d, jl_dim, A.dtype)
    rows = sketched.shape[0]
    correction = (rows - d - 1) / rows if rows > d + 1 else 1.0
    return sharding.reshard_like(correction * _row_norms_squared(A, W, work), axis)
