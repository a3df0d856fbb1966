"""Row sampling and l_p coresets: ``S A`` with ``||S A x||_p ~ ||A x||_p`` for all ``x``.

Given importance probabilities ``q`` (``sum q = 1``), :func:`sample_rows` draws

* **independent Bernoulli rows** (default): row ``i`` is kept with probability
  ``pi_i = min(1, c q_i)``, ``c`` calibrated so that ``sum_i pi_i = m`` (the
  expected size), and reweighted by ``pi_i^(-1/p)``;
* **m i.i.d. rows with replacement** from ``q``, reweighted by ``(m q_i)^(-1/p)``.

Both make ``||S A x||_p^p`` an unbiased estimate of ``||A x||_p^p`` for every
``x``. Sampling without replacement never draws a row twice, and in a
reference study its distortion was up to 4x smaller at equal ``m``.

The output has a static size for ``jit``: ``capacity`` slots (default
``m + ceil(6 sqrt(m)) + 8``, beyond which the Bernoulli count falls with
probability below ``1e-8``) holding the kept rows in increasing order, then
padding (index 0, weight 0, ``mask`` False), so ``weights[:, None] *
A[indices]`` is the coreset with zero rows appended. A draw with more than
``capacity`` rows is flagged by ``overflow`` (the extra rows are missing from
``indices``; ``count`` is the true size). The Bernoulli form needs the
calibration ``c``: bisection in ``log c`` (60 steps, each a sum over the rows,
an all-reduce when the rows are sharded), then one exact step.

:func:`sampling_probabilities` builds ``q`` for the methods of Woodruff &
Yasuda (2023), and :func:`coreset` samples and reweights ``A`` (and ``b``).

Example:
  >>> import jax
  >>> from jaxsampling.kernels import leverage
  >>> A = jax.random.t(jax.random.key(0), 1.5, (10_000, 5))
  >>> cs = leverage.coreset(jax.random.key(1), A, m=200, p=1.0, method="lewis")
  >>> cs.rows.shape, bool(cs.sample.overflow)
  ((293, 5), False)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsampling import sharding
from jaxsampling.kernels.leverage import _checks, lewis, scores, sensitivity
from jaxsampling.types import Array, ArrayLike, PRNGKey

__all__ = [
    "SAMPLING_METHODS",
    "Coreset",
    "RowSample",
    "coreset",
    "default_capacity",
    "inclusion_probabilities",
    "lp_distortion",
    "sample_rows",
    "sampling_probabilities",
    "subspace_distortion",
]

SAMPLING_METHODS = (
    "uniform",
    "leverage",
    "root_leverage",
    "lewis",
    "sensitivity",
    "lewis_plus_leverage",
)


class RowSample(NamedTuple):
    """A fixed-size row sample.

    Attributes:
      indices: ``int32[capacity]`` sampled rows (increasing for Bernoulli
        sampling, in draw order with replacement); 0 in padding slots.
      weights: ``float[capacity]`` ``pi_i^(-1/p)`` or ``(m q_i)^(-1/p)``; 0 in
        padding slots.
      mask: ``bool[capacity]`` True on sampled slots.
      count: ``int32[]`` rows sampled (may exceed ``capacity``: see ``overflow``).
      overflow: ``bool[]`` more rows were sampled than ``capacity`` holds.
    """

    indices: Array
    weights: Array
    mask: Array
    count: Array
    overflow: Array


class Coreset(NamedTuple):
    """Reweighted rows of ``A`` (and ``b``).

    Attributes:
      rows: ``float[capacity, d]`` ``weights[:, None] * A[indices]`` (zero padding).
      targets: ``float[capacity]`` ``weights * b[indices]``, or None without ``b``.
      sample: the :class:`RowSample`.
      probabilities: ``float[n]`` the importance probabilities ``q``.
    """

    rows: Array
    targets: Array | None
    sample: RowSample
    probabilities: Array


def default_capacity(m: int) -> int:
    """Static slots for a Bernoulli sample of expected size ``m``: ``m + ceil(6 sqrt(m)) + 8``."""
    return m + math.ceil(6 * math.sqrt(m)) + 8


def _check_probabilities(probabilities: ArrayLike) -> Array:
    q = jnp.asarray(probabilities)
    if q.ndim != 1:
        raise ValueError(f"probabilities must have shape (n,), got shape {q.shape}")
    if not jnp.issubdtype(q.dtype, jnp.floating):
        raise ValueError(f"probabilities must have a floating dtype, got {q.dtype}")
    if not _checks.is_tracer(q):
        values = np.asarray(q)
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"probabilities must be finite and non-negative; probabilities[{i}] = {values[i]}"
            )
        if not values.any():
            raise ValueError("probabilities are all zero")
    return q


def inclusion_probabilities(probabilities: ArrayLike, m: int) -> Array:
    """``pi_i = min(1, c q_i)`` with ``c`` such that ``sum_i pi_i = m``.

    Args:
      probabilities: ``float[n]`` non-negative, not necessarily normalised.
      m: expected sample size, at most the number of positive entries.

    Returns:
      ``float[n]`` inclusion probabilities summing to ``m``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxsampling.kernels import leverage
      >>> pi = leverage.inclusion_probabilities(jnp.array([0.7, 0.1, 0.1, 0.1]), 2)
      >>> [round(v, 4) for v in pi.tolist()]
      [1.0, 0.3333, 0.3333, 0.3333]
    """
    q = _check_probabilities(probabilities)
    m = _checks.check_int(m, "m")
    if m > q.shape[0]:
        raise ValueError(f"m = {m} exceeds the {q.shape[0]} rows (sampling without replacement)")
    if not _checks.is_tracer(q) and m > int(np.count_nonzero(np.asarray(q))):
        raise ValueError(
            f"m = {m} exceeds the {int(np.count_nonzero(np.asarray(q)))} rows of positive "
            "probability (sampling without replacement)"
        )
    return _inclusion(q / jnp.sum(q), m)


def _inclusion(q: Array, m: int) -> Array:
    positive = q > 0
    smallest = jnp.min(jnp.where(positive, q, jnp.inf))
    lo = jnp.log(jnp.asarray(m, q.dtype))
    hi = -jnp.log(smallest) + 1.0

    def expected(log_c):
        return jnp.sum(jnp.minimum(1.0, jnp.exp(log_c) * q))

    def bisect(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        too_small = expected(mid) < m
        return jnp.where(too_small, mid, lo), jnp.where(too_small, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 60, bisect, (lo, hi))
    saturated = jnp.exp(hi) * q >= 1.0
    rest = jnp.sum(jnp.where(saturated, 0.0, q))
    c = (m - jnp.sum(saturated)) / jnp.where(rest > 0, rest, 1.0)
    return jnp.where(saturated, 1.0, jnp.minimum(1.0, c * q))


def sample_rows(
    key: PRNGKey,
    probabilities: ArrayLike,
    m: int,
    p: float,
    *,
    replacement: bool = False,
    capacity: int | None = None,
) -> RowSample:
    """Samples rows with importance ``probabilities`` and the l_p reweighting.

    Args:
      key: PRNG key.
      probabilities: ``float[n]`` non-negative importance ``q`` (normalised here).
      m: expected sample size (Bernoulli) or number of draws (with replacement).
      p: the norm exponent of the reweighting ``pi^(-1/p)``, ``>= 1``.
      replacement: False for independent Bernoulli rows, True for ``m``
        i.i.d. draws.
      capacity: static output size for Bernoulli sampling (default
        :func:`default_capacity`); ignored with replacement (``m`` slots).

    Returns:
      A :class:`RowSample`.

    Raises:
      ValueError: wrong shapes or dtypes, ``p < 1``, ``m`` or ``capacity`` not
        a positive int, ``m > n`` (or more than the rows of positive
        probability, when concrete) without replacement, negative or NaN
        probabilities (concrete). Under ``jit`` NaN probabilities give NaN
        weights.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import leverage
      >>> s = leverage.sample_rows(jax.random.key(0), jnp.ones(100), 10, p=2.0)
      >>> int(s.count) == int(s.mask.sum()), s.indices.shape
      (True, (37,))
    """
    _checks.check_key(key)
    q = _check_probabilities(probabilities)
    m = _checks.check_int(m, "m")
    p = _checks.check_p(p)
    q = q / jnp.sum(q)
    n = q.shape[0]
    if replacement:
        q = sharding.unshard(q)  # an all-gather when the rows are sharded
        indices = jax.random.choice(key, n, (m,), p=q).astype(jnp.int32)
        weights = (m * q[indices]) ** (-1.0 / p)
        return RowSample(
            indices, weights, jnp.ones(m, bool), jnp.int32(m), jnp.bool_(False)
        )
    pi = inclusion_probabilities(q, m)
    capacity = default_capacity(m) if capacity is None else _checks.check_int(capacity, "capacity")
    keep = jax.random.uniform(key, (n,), q.dtype) < pi
    keep = sharding.unshard(keep)
    count = jnp.sum(keep, dtype=jnp.int32)
    (indices,) = jnp.nonzero(keep, size=capacity, fill_value=0)
    indices = indices.astype(jnp.int32)
    mask = jnp.arange(capacity) < count
    # NaN probabilities (possible only under jit) keep no row: make every weight
    # NaN rather than return a plausible-looking empty sample.
    invalid = jnp.any(jnp.isnan(pi))
    weights = sharding.unshard(pi)[indices] ** (-1.0 / p)
    weights = jnp.where(mask | invalid, weights, 0.0)
    return RowSample(indices, weights, mask, count, count > capacity)


def sampling_probabilities(
    A: ArrayLike, p: float, method: str, *, lewis_tol: float | None = None
) -> Array:
    """Importance probabilities ``q`` (summing to 1) for an l_p coreset of ``A``.

    ========================  ===================================================
    method                    ``q_i`` proportional to
    ========================  ===================================================
    ``uniform``               1
    ``leverage``              ``tau_i`` (l_2 leverage scores)
    ``root_leverage``         ``sqrt(tau_i)``
    ``lewis``                 ``w_i``, the l_p Lewis weights
    ``sensitivity``           the l_p sensitivity upper bounds
    ``lewis_plus_leverage``   ``w_i / d + tau_i / d`` (an equal mixture)
    ========================  ===================================================

    Args:
      A: ``float[n, d]`` of full column rank; rows may be sharded.
      p: the norm, ``>= 1``.
      method: one of :data:`SAMPLING_METHODS`.
      lewis_tol: Lewis-weight tolerance (default: by dtype, see
        :func:`~jaxsampling.kernels.leverage.lewis_weights`).

    Returns:
      ``float[n]``, sharded like the rows of ``A``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxsampling.kernels import leverage
      >>> A = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
      >>> q = leverage.sampling_probabilities(A, 2.0, "leverage")
      >>> [round(v, 4) for v in q.tolist()]
      [0.5, 0.25, 0.25]
    """
    A = _checks.check_matrix(A)
    p = _checks.check_p(p)
    if method not in SAMPLING_METHODS:
        raise ValueError(f"method must be one of {SAMPLING_METHODS}, got {method!r}")
    if method == "uniform":
        scores_ = jnp.ones(A.shape[0], A.dtype)
    elif method in ("leverage", "root_leverage"):
        scores_ = scores._scores(A, "auto")
        if method == "root_leverage":
            scores_ = jnp.sqrt(scores_)
    elif method == "lewis":
        scores_, _ = lewis.lewis_weights(A, p, tol=lewis_tol)
    elif method == "sensitivity":
        scores_ = sensitivity.sensitivity_upper_bounds(A, p, tol=lewis_tol)
    else:
        w, _ = lewis.lewis_weights(A, p, tol=lewis_tol)
        tau = scores._scores(A, "auto")
        scores_ = w / jnp.sum(w) + tau / jnp.sum(tau)
    return scores_ / jnp.sum(scores_)


def coreset(
    key: PRNGKey,
    A: ArrayLike,
    b: ArrayLike | None = None,
    *,
    m: int,
    p: float,
    method: str = "lewis",
    replacement: bool = False,
    capacity: int | None = None,
) -> Coreset:
    """An l_p coreset: ``m`` (expected) reweighted rows of ``A`` (and ``b``).

    With ``b`` the probabilities come from the augmented matrix ``[A, b]``, so
    ``||S (A x - b)||_p ~ ||A x - b||_p`` for all ``x``, and
    ``lp_regression(cs.rows, cs.targets, p)`` approximates
    ``min_x ||A x - b||_p``.

    Args:
      key: PRNG key.
      A: ``float[n, d]``.
      b: optional ``float[n]`` targets.
      m: expected coreset size.
      p: the norm, ``>= 1``.
      method: one of :data:`SAMPLING_METHODS`.
      replacement: as :func:`sample_rows`.
      capacity: as :func:`sample_rows`.

    Returns:
      A :class:`Coreset`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import leverage
      >>> A = jax.random.normal(jax.random.key(0), (5000, 3))
      >>> b = A @ jnp.array([1.0, -2.0, 0.5]) + jax.random.laplace(jax.random.key(1), (5000,))
      >>> cs = leverage.coreset(jax.random.key(2), A, b, m=300, p=1.0)
      >>> x, _ = leverage.lp_regression(cs.rows, cs.targets, p=1.0)
      >>> bool(jnp.allclose(x, jnp.array([1.0, -2.0, 0.5]), atol=0.3))
      True
    """
    A = _checks.check_matrix(A)
    scored = A
    if b is not None:
        b = _checks.check_vector(b, A.shape[0], "b", dtype=A.dtype)
        scored = jnp.concatenate([A, b[:, None]], axis=1)
    q = sampling_probabilities(scored, p, method)
    sample = sample_rows(key, q, m, p, replacement=replacement, capacity=capacity)
    rows = sample.weights[:, None] * sharding.unshard(A)[sample.indices]
    targets = None if b is None else sample.weights * sharding.unshard(b)[sample.indices]
    return Coreset(rows, targets, sample, q)


def subspace_distortion(A: ArrayLike, rows: ArrayLike) -> Array:
    """Exact l_2 distortion ``max_x | ||S A x||_2 / ||A x||_2 - 1 |`` of a coreset.

    The ratios ``||S A x|| / ||A x||`` range over the square roots of the
    eigenvalues of ``M^T (S A)^T (S A) M`` with ``A M`` orthonormal.

    Args:
      A: ``float[n, d]`` of full column rank.
      rows: ``float[k, d]`` the reweighted rows ``S A`` (padding rows zero).

    Returns:
      ``float[]`` the distortion ``eps``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxsampling.kernels import leverage
      >>> A = jnp.eye(3)
      >>> float(leverage.subspace_distortion(A, 2.0 * A))
      1.0
    """
    A = _checks.check_matrix(A)
    rows = _checks.check_matrix(rows, "rows", tall=False)
    M, _ = scores.gram_whitener(A)
    SAM = rows @ M
    eig = jnp.linalg.eigvalsh(SAM.T @ SAM)
    root = jnp.sqrt(jnp.clip(eig, 0.0))
    return jnp.maximum(jnp.abs(root[-1] - 1.0), jnp.abs(1.0 - root[0]))


def lp_distortion(A: ArrayLike, rows: ArrayLike, p: float, directions: ArrayLike) -> Array:
    """``max_j | ||S A x_j||_p / ||A x_j||_p - 1 |`` over given directions.

    A lower bound on the l_p distortion (exact only as the directions cover
    the worst case); see ``jaxsampling.train.lp_coreset`` for directions
    optimised against a coreset.

    Args:
      A: ``float[n, d]``.
      rows: ``float[k, d]`` the reweighted rows ``S A``.
      p: the norm, ``>= 1``.
      directions: ``float[d, J]`` the directions ``x_j`` as columns.

    Returns:
      ``float[]``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxsampling.kernels import leverage
      >>> float(leverage.lp_distortion(jnp.eye(2), 2.0 * jnp.eye(2), 1.0, jnp.eye(2)))
      1.0
    """
    A = _checks.check_matrix(A, tall=False)
    p = _checks.check_p(p)
    full = jnp.sum(jnp.abs(A @ directions) ** p, axis=0) ** (1.0 / p)
    sub = jnp.sum(jnp.abs(rows @ directions) ** p, axis=0) ** (1.0 / p)
    return jnp.max(jnp.abs(sub / full - 1.0))
