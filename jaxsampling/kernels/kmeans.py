r"""k-means++ seeding (D^2 sampling) and Lloyd's k-means, jitted.

**k-means++** (Arthur and Vassilvitskii, 2007) picks the first centre with
probability proportional to the point weights :math:`w_i` and each next one
with probability

.. math::

    P(i) = \frac{w_i D(x_i)^2}{\sum_j w_j D(x_j)^2},

where :math:`D(x)` is the distance from :math:`x` to the nearest centre
chosen so far (points already chosen have :math:`D = 0` and are never picked
again). Its expected cost is within :math:`8(\ln k + 2)` of the optimum
(Arthur and Vassilvitskii's bound, for this one-candidate rule; the greedy
variant, ``num_candidates > 1``, usually does better in practice).

**Lloyd's algorithm** then alternates assignment to the nearest centre and
moving each centre to the weighted mean of its points, for ``num_iters``
rounds or until no assignment changes. A cluster that loses every point
keeps its centre.

Lloyd's distances are computed as :math:`|x|^2 - 2 x \cdot c + |c|^2` (one
matrix product per round, clamped at 0) after centring the points; the
seeding uses direct differences, so duplicates are exactly at distance 0.
Rows of ``x`` sharded on an explicit mesh are gathered (the seeding needs
them all); :func:`kmeans`'s assignments come back sharded like ``x``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxsampling.kernels import kmeans
    >>> x = jnp.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    >>> result = kmeans.kmeans(jax.random.key(0), x, 2)
    >>> [round(c, 2) for c in sorted(result.centers[:, 0].tolist())]
    [0.05, 5.05]
    >>> bool(result.assignments[0] == result.assignments[1])
    True
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsampling import sharding
from jaxsampling.kernels import _args
from jaxsampling.types import Array, ArrayLike, PRNGKey

__all__ = ["KMeansResult", "assign", "kmeans", "kmeans_plusplus"]


class KMeansResult(NamedTuple):
    """The output of :func:`kmeans`.

    Attributes:
        centers: float[k, d].
        assignments: int32[n], each point's nearest centre.
        inertia: the weighted sum of squared distances to the assigned centres.
        iterations: int32, Lloyd rounds run (stops early at a fixed point).
        seeds: int32[k], the k-means++ seed indices.
    """

    centers: Array
    assignments: Array
    inertia: Array
    iterations: Array
    seeds: Array


def _check_points(x: ArrayLike, k: int, weights: ArrayLike | None) -> tuple[Array, Array]:
    x = jnp.asarray(x)
    if x.ndim != 2 or not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must be a float [n, d] array, got {x.dtype}{list(x.shape)}")
    n = x.shape[0]
    k = _args.check_int(k, "k")
    if k > n:
        raise ValueError(f"k = {k} exceeds the number of points n = {n}")
    if weights is None:
        weights = jnp.ones(n, x.dtype)
    weights = jnp.asarray(weights, x.dtype)
    if weights.shape != (n,):
        raise ValueError(f"weights must have shape ({n},), got {weights.shape}")
    # Value checks on concrete inputs, in numpy (jnp ops would be traced when
    # the call sits inside a jit that closes over concrete arrays).
    if not _args.is_tracer(weights):
        w = np.asarray(weights)
        if not (np.all(np.isfinite(w)) and np.all(w >= 0)):
            raise ValueError("weights must be finite and >= 0")
        if int(np.sum(w > 0)) < k:
            raise ValueError(f"fewer than k = {k} points have positive weight")
    if not _args.is_tracer(x) and not np.all(np.isfinite(np.asarray(x))):
        raise ValueError("x must be finite")
    return sharding.unshard(x), sharding.unshard(weights)


def _sq_distances(x: Array, centers: Array) -> Array:
    """float[n, k] squared distances, by one matrix product."""
    # HIGHEST: bf16 (TPU) or TF32 (GPU) products would flip close assignments.
    cross = jnp.matmul(x, centers.T, precision=jax.lax.Precision.HIGHEST)
    d2 = (
        jnp.sum(x * x, axis=1)[:, None]
        - 2.0 * cross
        + jnp.sum(centers * centers, axis=1)[None, :]
    )
    return jnp.maximum(d2, 0.0)


def assign(x: ArrayLike, centers: ArrayLike) -> tuple[Array, Array]:
    """Nearest centre of every point.

    Args:
        x: float[n, d] points.
        centers: float[k, d].

    Returns:
        ``(assignments int32[n], squared distances float[n])``.
    """
    x, centers = jnp.asarray(x), jnp.asarray(centers)
    shift = jnp.mean(x, axis=0)
    return _assign(x - shift, centers - shift)


def _assign(x: Array, centers: Array) -> tuple[Array, Array]:
    d2 = _sq_distances(x, centers)
    labels = jnp.argmin(d2, axis=1).astype(jnp.int32)
    return labels, jnp.take_along_axis(d2, labels[:, None], axis=1)[:, 0]


@functools.partial(jax.jit, static_argnums=(2, 4))
def _plusplus(key: PRNGKey, x: Array, k: int, weights: Array, candidates: int = 1) -> Array:
    n = x.shape[0]
    keys = jax.random.split(key, k)
    first = jax.random.categorical(keys[0], jnp.log(weights)).astype(jnp.int32)

    def distances_to(i):
        # Direct differences (no |x|^2 - 2 x.c + |c|^2 cancellation): duplicates get 0.
        return jnp.sum((x - x[i]) ** 2, axis=1).at[i].set(0.0)

    d2 = distances_to(first)

    def body(i, carry):
        seeds, d2 = carry
        logits = jnp.log(weights * d2)
        # All mass on chosen points (duplicates of every remaining point):
        # fall back to the weights over points not yet chosen.
        chosen = jnp.zeros(n, bool).at[seeds].max(jnp.arange(k) < i)  # max: unset seeds are 0
        fallback = jnp.where(chosen, -jnp.inf, jnp.log(weights))
        logits = jnp.where(jnp.any(jnp.isfinite(logits)), logits, fallback)
        if candidates == 1:
            pick = jax.random.categorical(keys[i], logits).astype(jnp.int32)
            return seeds.at[i].set(pick), jnp.minimum(d2, distances_to(pick))
        # Greedy: the candidate that lowers the potential sum_j w_j D_j^2 most.
        picks = jax.random.categorical(keys[i], logits, shape=(candidates,)).astype(jnp.int32)
        new = jnp.minimum(d2[None], jax.vmap(distances_to)(picks))
        best = jnp.argmin(jnp.sum(weights * new, axis=1))
        return seeds.at[i].set(picks[best]), new[best]

    seeds = jnp.zeros(k, jnp.int32).at[0].set(first)
    seeds, _ = jax.lax.fori_loop(1, k, body, (seeds, d2))
    valid = (
        jnp.all(jnp.isfinite(x))
        & jnp.all(jnp.isfinite(weights) & (weights >= 0))
        & (jnp.sum(weights > 0) >= k)
    )
    return jnp.where(valid, seeds, -1)


def kmeans_plusplus(
    key: PRNGKey,
    x: ArrayLike,
    k: int,
    weights: ArrayLike | None = None,
    *,
    num_candidates: int = 1,
) -> Array:
    r"""k-means++ seeds: ``k`` distinct point indices drawn by D^2 sampling.

    Args:
        key: a PRNG key.
        x: float[n, d] points.
        k: static number of seeds, ``1 <= k <= n``.
        weights: float[n] point weights (default 1), ``>= 0``.
        num_candidates: static; 1 is the D^2 rule above. With ``L > 1`` each
            seed after the first is the best of ``L`` i.i.d. D^2 candidates (the
            one leaving the smallest potential ``sum_j w_j D_j^2``): the greedy
            variant scikit-learn uses with ``L = 2 + floor(ln k)``.

    Returns:
        int32[k]: the seeds in the order drawn.

    Raises:
        ValueError: bad shapes or dtypes, ``k`` outside ``[1, n]``; with
            concrete inputs, non-finite ``x``, negative or non-finite weights,
            or fewer than ``k`` points of positive weight. Under ``jit`` such
            inputs give seeds ``-1`` (and :func:`kmeans` NaN centres).
    """
    _args.check_key(key)
    x, weights = _check_points(x, k, weights)
    num_candidates = _args.check_int(num_candidates, "num_candidates")
    return _plusplus(key, x, int(k), weights, num_candidates)


@functools.partial(jax.jit, static_argnums=(2, 3, 5))
def _lloyd(
    key: PRNGKey, x: Array, k: int, num_iters: int, weights: Array, candidates: int
) -> KMeansResult:
    seeds = _plusplus(key, x, k, weights, candidates)
    # Distances by matrix products lose precision far from the origin: centre first.
    shift = jnp.mean(x, axis=0)
    x = x - shift
    centers = jnp.where(seeds[:, None] >= 0, x[jnp.maximum(seeds, 0)], jnp.nan)
    labels, _ = _assign(x, centers)

    def move(centers, labels):
        onehot = jax.nn.one_hot(labels, k, dtype=x.dtype) * weights[:, None]
        mass = onehot.sum(axis=0)
        sums = jnp.matmul(onehot.T, x, precision=jax.lax.Precision.HIGHEST)
        return jnp.where(mass[:, None] > 0, sums / jnp.maximum(mass, 1e-30)[:, None], centers)

    def cond(carry):
        i, _, _, changed = carry
        return (i < num_iters) & changed

    def body(carry):
        i, centers, labels, _ = carry
        centers = move(centers, labels)
        new_labels, _ = _assign(x, centers)
        return i + 1, centers, new_labels, jnp.any(new_labels != labels)

    iterations, centers, labels, _ = jax.lax.while_loop(
        cond, body, (jnp.int32(0), centers, labels, jnp.bool_(True))
    )
    centers = jnp.where(seeds[:, None] >= 0, centers, jnp.nan)  # invalid input: NaN
    labels, d2 = _assign(x, centers)
    return KMeansResult(centers + shift, labels, jnp.sum(weights * d2), iterations, seeds)


def kmeans(
    key: PRNGKey,
    x: ArrayLike,
    k: int,
    *,
    num_iters: int = 100,
    weights: ArrayLike | None = None,
    num_candidates: int = 1,
) -> KMeansResult:
    """Weighted k-means: k-means++ seeds, then Lloyd rounds to a fixed point.

    Args:
        key: a PRNG key (for the seeding).
        x: float[n, d] points.
        k: static number of clusters, ``1 <= k <= n``.
        num_iters: the most Lloyd rounds (static).
        weights: float[n] point weights (default 1), ``>= 0``.
        num_candidates: D^2 candidates per seed (see :func:`kmeans_plusplus`);
            ``2 + floor(ln k)`` (greedy) usually finds a better optimum.

    Returns:
        A :class:`KMeansResult`.

    Raises:
        ValueError: as :func:`kmeans_plusplus`, or ``num_iters < 0``.
    """
    _args.check_key(key)
    axis = sharding.explicit_batch_axis(jnp.asarray(x))
    x, weights = _check_points(x, k, weights)
    num_iters = _args.check_int(num_iters, "num_iters", minimum=0)
    num_candidates = _args.check_int(num_candidates, "num_candidates")
    result = _lloyd(key, x, int(k), num_iters, weights, num_candidates)
    return result._replace(assignments=sharding.reshard_like(result.assignments, axis))
