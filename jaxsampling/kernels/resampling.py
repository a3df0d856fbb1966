"""SMC resampling: ancestor indices from particle weights.

Every scheme has the signature ``scheme(key, weights, num_samples)`` and
returns ``int32[num_samples]`` ancestor indices into the ``M`` particles.
``weights`` are non-negative and need not be normalised. With offspring
counts ``N_i = #{k : ancestor[k] = i}`` and ``w_i`` the normalised weights,
every scheme is unbiased, ``E[N_i] = N w_i``; they differ in the variance of
``N_i`` (measured on a generic weight vector, from largest to smallest):

=============  =============================================  ==============
scheme         offspring counts                               ancestors
=============  =============================================  ==============
multinomial    i.i.d. draws, Var N_i = N w_i (1 - w_i)        i.i.d., unsorted
residual       floor(N w_i) copies + multinomial remainder    sorted + i.i.d.
killing        keep i w.p. w_i / max w, else multinomial      in place
stratified     one uniform per stratum [k, k+1) / N           sorted
systematic     one shared uniform, points (k + U) / N         sorted
ssp            pairwise pivots; floor/ceil of N w_i           sorted
=============  =============================================  ==============

Log-weight entry points (:func:`resample`, :func:`resample_if`,
:func:`normalize`, :func:`ess`, :func:`island`) take log-weights, map NaN to
``-inf`` (a particle of zero weight) and report, never hide, the case where
every log-weight is ``-inf``.

**Float32 at large N.** Points are compared with ``N C_i`` (``C`` the
cumulative weights) held as an int32 whole part plus a fixed-point fraction
summed exactly (``jaxsampling.kernels._counts``): nothing drifts even at
``N = 10**7``, a zero weight never gets an offspring, no uniform is pushed
through ``-log(u)``, the boundary of the last positive-weight particle is
pinned at ``N`` (no mass lost) and no scheme collapses. Each weight is
rounded to a multiple of ``2**-19`` offspring, the only approximation. Every
scheme is O(M + N); only multinomial-type draws bisect, and only among the
boundaries that share the draw's unit interval.

**Bad input.** Wrong rank or dtype raises ``ValueError`` at trace time.
Negative, NaN or infinite weights, or all-zero weights, raise ``ValueError``
when the weights are concrete. Under ``jit``/``vmap`` they cannot be checked
eagerly; the scheme then returns ``-1`` for every ancestor (and the log-weight
entry points report ``valid=False``), never a plausible-looking answer.

**Sharding.** Weights sharded over a mesh axis give the same indices as
unsharded ones (threefry keys are partitionable). On an ``Explicit`` mesh the
schemes all-gather the weights once (the prefix sum needs the whole axis:
one all-gather of M floats) and return ancestors sharded like the weights
when ``num_samples`` divides evenly; on an ``Auto`` mesh the compiler places
the same collectives. :func:`island` needs no collective at all when islands
align with devices: each device resamples its own particles.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxsampling.kernels import resampling
  >>> w = jnp.array([0.1, 0.2, 0.3, 0.4])
  >>> a = resampling.systematic(jax.random.key(0), w, 8)
  >>> a.shape, a.dtype
  ((8,), dtype('int32'))

References:
  Douc, Cappe & Moulines (2005), Comparison of resampling schemes for particle
  filtering. Gerber, Chopin & Whiteley (2019), Negative association, ordering
  and convergence of resampling methods (SSP). Srinivasan (2001),
  Distributions on level-sets with applications to approximation algorithms.
  Chopin & Singh (2015), On particle Gibbs sampling (conditional resampling).
  Verge, Dubarry, Del Moral & Moulines (2015), On parallel implementation of
  sequential Monte Carlo methods: the island particle model.
"""

from __future__ import annotations

import functools
import math
import operator
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsampling import sharding
from jaxsampling.kernels import _counts
from jaxsampling.types import Array, ArrayLike, ArrayTree, PRNGKey

__all__ = [
    "CONDITIONAL_SCHEMES",
    "SCHEMES",
    "ResampleInfo",
    "conditional_multinomial",
    "conditional_systematic",
    "ess",
    "get_scheme",
    "island",
    "killing",
    "multinomial",
    "normalize",
    "resample",
    "resample_if",
    "residual",
    "ssp",
    "stratified",
    "systematic",
]

Scheme = Callable[[PRNGKey, ArrayLike, int], Array]


# ----------------------------------------------------------------------------
# Input checks and the common wrapper.
# ----------------------------------------------------------------------------


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def _check_num_samples(num_samples: Any) -> int:
    try:
        n = operator.index(num_samples)
    except TypeError:
        raise ValueError(
            "num_samples must be a Python int (it fixes the output shape), got "
            f"{type(num_samples).__name__}"
        ) from None
    if n < 1:
        raise ValueError(f"num_samples must be >= 1, got {n}")
    return n


def _check_key(key: Any) -> None:
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"key must be a single typed key, got shape {key.shape}")
        return
    shape = np.shape(key)
    if shape != (2,) or dtype is None or dtype != jnp.uint32:
        raise ValueError(
            "key must be a typed key (jax.random.key) or a uint32[2] legacy key "
            f"(jax.random.PRNGKey), got shape {shape} and dtype {dtype}"
        )


def _check_weights(weights: ArrayLike, name: str = "weights") -> Array:
    """Trace-time shape/dtype checks, and value checks when concrete."""
    weights = jnp.asarray(weights)
    if weights.ndim != 1:
        raise ValueError(
            f"{name} must have shape (num_particles,), got shape {weights.shape}"
        )
    if weights.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one particle")
    if not jnp.issubdtype(weights.dtype, jnp.floating):
        raise ValueError(f"{name} must have a floating dtype, got {weights.dtype}")
    if not _is_tracer(weights):
        values = np.asarray(weights)
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"{name} must be finite and non-negative; {name}[{i}] = {values[i]}"
            )
        if not values.any():
            raise ValueError(f"{name} are all zero: nothing to resample from")
    return weights


def _valid_weights(weights: Array) -> Array:
    """Finite, non-negative, not all zero. NaN poisons the max; +inf tops it.

    ``min >= 0`` rather than ``all(weights >= 0)``: when the weights come
    from ``exp``, XLA folds the comparison into a constant array and spent
    seconds of compile time evaluating its reduction (vmapped filters).
    """
    top = jnp.max(weights)
    return (top > 0) & (top < jnp.inf) & (jnp.min(weights) >= 0)


def _apply(
    impl: Callable[[PRNGKey, Array, int], Array],
    key: PRNGKey,
    weights: ArrayLike,
    num_samples: int,
    *,
    conditional: bool = False,
) -> Array:
    """Checks inputs, handles explicit sharding and flags invalid weights."""
    num_samples = _check_num_samples(num_samples)
    _check_key(key)
    weights = _check_weights(weights)
    if conditional and not _is_tracer(weights) and not float(weights[0]) > 0:
        raise ValueError(
            "conditional resampling keeps particle 0, so weights[0] must be > 0, "
            f"got {float(weights[0])}"
        )
    axis = sharding.explicit_batch_axis(weights)
    weights = sharding.unshard(weights)
    ancestors = _masked(impl, key, weights, num_samples, conditional)
    return sharding.reshard_like(ancestors, axis)


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _masked(
    impl: Callable[[PRNGKey, Array, int], Array],
    key: PRNGKey,
    weights: Array,
    num_samples: int,
    conditional: bool,
) -> Array:
    """``impl``'s ancestors, ``-1`` everywhere for invalid weights.

    Jitted so that a call outside ``jit`` compiles one program instead of
    dispatching (and compiling) each of the scheme's ops; inside ``jit`` it is
    inlined.
    """
    valid = _valid_weights(weights)
    if conditional:
        valid &= weights[0] > 0
    # Invalid weights still run through the scheme (every index it scatters
    # or gathers is clipped into range), and the result is then masked.
    ancestors = impl(key, weights, num_samples)
    return jnp.where(valid, ancestors, -1).astype(jnp.int32)


# ----------------------------------------------------------------------------
# Shared count-space steps.
# ----------------------------------------------------------------------------


def _boundaries(
    weights: Array, scale: Array | int, bound: int | None = None
) -> tuple[Array, Array]:
    """``scale * C_i = J_i + phi_i``, last boundary pinned at ``scale``.

    ``scale`` may be traced (a random number of draws); ``bound`` is then a
    static upper bound for it.
    """
    scaled = _counts.scaled_weights(weights, scale)
    bound = scale if bound is None else bound
    whole, phi = _counts.cumulative_counts(scaled, bound)
    return _counts.close_at(whole, phi, scale, _counts.last_positive(weights))


def _sorted_from_uniforms(
    whole: Array,
    phi: Array,
    uniform_at_boundary: Array,
    num_samples: int,
    min_first: int = 0,
) -> Array:
    """Ancestors for points ``k + U_k`` given ``U`` read at each boundary's unit.

    ``#{k : k + U_k < J_i + phi_i} = J_i + [U_{J_i} < phi_i]``: every unit
    before ``J_i`` holds a point below the boundary, the unit ``J_i`` holds
    one exactly when its uniform is below ``phi_i``.
    """
    counts_before = whole + (uniform_at_boundary < phi).astype(jnp.int32)
    counts_before = jnp.maximum(counts_before, min_first)
    return _counts.ancestors_from_boundaries(counts_before, num_samples)


# ----------------------------------------------------------------------------
# Schemes.
# ----------------------------------------------------------------------------


def _sorted_draws(
    key: PRNGKey, weights: Array, num_draws: Array | int, max_draws: int
) -> Array:
    """The sorted multiset of ``num_draws`` i.i.d. draws from ``weights``.

    Sorted uniform points (exponential spacings) are counted below every
    boundary, ``K_i = #{k : u_k < D C_i}``, and expanded into indices: the
    offspring counts ``K_i - K_{i-1}`` are Multinomial(D, w) exactly.
    ``num_draws`` may be traced; positions ``>= num_draws`` hold M.
    """
    whole, phi = _boundaries(weights, num_draws, max_draws)
    units, offsets = _counts.sorted_points(key, num_draws, max_draws)
    before = _counts.count_below(whole, phi, units, offsets, max_draws)
    return _counts.ancestors_from_boundaries(before, max_draws)


def _multinomial(key: PRNGKey, weights: Array, num_samples: int) -> Array:
    return _sorted_draws(key, weights, num_samples, num_samples)


def multinomial(key: PRNGKey, weights: ArrayLike, num_samples: int) -> Array:
    """Multinomial resampling: ``num_samples`` i.i.d. draws from ``weights``.

    The offspring counts are Multinomial(N, w), ``Var N_i = N w_i (1 - w_i)``;
    the draws are returned sorted (the order statistics of N i.i.d. draws).
    Sorted uniforms come from exponential spacings, held in count space as
    (int32, float32 fraction) so none is lost to rounding, and are counted
    below each boundary ``N C_i``; bisection runs only among the few points
    that share a unit interval. O(M + N).

    Collectives: with weights sharded on an explicit mesh axis, one
    all-gather of the M weights (the prefix sum needs the whole axis); the
    ancestors come back sharded like the weights.

    Args:
      key: a PRNG key.
      weights: float[M] non-negative, unnormalised weights.
      num_samples: N, a Python int.

    Returns:
      int32[N] sorted ancestor indices.

    Raises:
      ValueError: bad shape/dtype; with concrete weights, negative, NaN, inf
        or all-zero weights. Under jit such weights give ``-1`` everywhere.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import resampling
      >>> w = jnp.array([0., 1., 0., 3.])
      >>> resampling.multinomial(jax.random.key(1), w, 6).tolist()
      [1, 1, 1, 3, 3, 3]
    """
    return _apply(_multinomial, key, weights, num_samples)


def _stratified(key: PRNGKey, weights: Array, num_samples: int) -> Array:
    whole, phi = _boundaries(weights, num_samples)
    uniforms = _counts.uniforms(key, num_samples)
    at_boundary = uniforms[jnp.minimum(whole, num_samples - 1)]
    return _sorted_from_uniforms(whole, phi, at_boundary, num_samples)


def stratified(key: PRNGKey, weights: ArrayLike, num_samples: int) -> Array:
    """Stratified resampling: one uniform point in each stratum ``[k, k+1) / N``.

    Points ``u_k = (k + U_k) / N`` with independent ``U_k``; ancestor ``k`` is
    the particle whose cumulative-weight interval contains ``u_k``. Counted
    per particle without any search, ``K_i = J_i + [U_{J_i} < phi_i]`` with
    ``N C_i = J_i + phi_i``, then expanded into sorted indices by one
    scatter-add and one prefix sum. O(M + N).

    Collectives: with weights sharded on an explicit mesh axis, one
    all-gather of the M weights (the prefix sum needs the whole axis); the
    ancestors come back sharded like the weights.

    Args:
      key: a PRNG key.
      weights: float[M] non-negative, unnormalised weights.
      num_samples: N, a Python int.

    Returns:
      int32[N] sorted ancestor indices.

    Raises:
      ValueError: as :func:`multinomial`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import resampling
      >>> resampling.stratified(jax.random.key(0), jnp.ones(4), 4).tolist()
      [0, 1, 2, 3]
    """
    return _apply(_stratified, key, weights, num_samples)


def _systematic(key: PRNGKey, weights: Array, num_samples: int) -> Array:
    whole, phi = _boundaries(weights, num_samples)
    uniform = jax.random.uniform(key, (), dtype=jnp.float32)
    return _sorted_from_uniforms(whole, phi, uniform, num_samples)


def systematic(key: PRNGKey, weights: ArrayLike, num_samples: int) -> Array:
    """Systematic resampling: evenly spaced points with one shared offset.

    Points ``u_k = (k + U) / N`` for a single ``U ~ Uniform[0, 1)``. Particle
    ``i`` gets ``K_i - K_{i-1}`` offspring with ``K_i = ceil(N C_i - U)``,
    always ``floor(N w_i)`` or ``ceil(N w_i)``. Search-free: boundaries,
    one scatter-add, one prefix sum. O(M + N).

    Beware periodic weight patterns: the variance of systematic resampling
    need not shrink with N there; permute the particles first if in doubt.

    Collectives: with weights sharded on an explicit mesh axis, one
    all-gather of the M weights (the prefix sum needs the whole axis); the
    ancestors come back sharded like the weights.

    Args:
      key: a PRNG key.
      weights: float[M] non-negative, unnormalised weights.
      num_samples: N, a Python int.

    Returns:
      int32[N] sorted ancestor indices.

    Raises:
      ValueError: as :func:`multinomial`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import resampling
      >>> resampling.systematic(jax.random.key(0), jnp.array([1., 0., 3.]), 4).tolist()
      [0, 2, 2, 2]
    """
    return _apply(_systematic, key, weights, num_samples)


def _residual(key: PRNGKey, weights: Array, num_samples: int) -> Array:
    scaled = _counts.scaled_weights(weights, num_samples)
    copies = jnp.floor(scaled)
    kept_before = jnp.minimum(
        _counts.cumsum(copies.astype(jnp.int32), num_samples + 1), num_samples
    )
    kept = _counts.ancestors_from_boundaries(kept_before, num_samples)
    num_kept = jnp.clip(kept_before[-1], 0, num_samples)

    remainder = scaled - copies
    remainder = jnp.where(jnp.any(remainder > 0), remainder, weights)
    drawn = _sorted_draws(key, remainder, num_samples - num_kept, num_samples)
    position = jnp.arange(num_samples, dtype=jnp.int32)
    from_drawn = drawn[jnp.clip(position - num_kept, 0, num_samples - 1)]
    return jnp.where(position < num_kept, kept, from_drawn)


def residual(key: PRNGKey, weights: ArrayLike, num_samples: int) -> Array:
    """Residual resampling: deterministic copies plus a multinomial remainder.

    Particle ``i`` first gets ``floor(N w_i)`` copies; the remaining
    ``R = N - sum_i floor(N w_i)`` ancestors are i.i.d. draws with
    probabilities proportional to the fractional parts ``N w_i - floor(N w_i)``.
    ``floor(N w_i)`` is taken from the exact int32 split of ``N w_i``.

    Collectives: with weights sharded on an explicit mesh axis, one
    all-gather of the M weights (the prefix sum needs the whole axis); the
    ancestors come back sharded like the weights.

    Args:
      key: a PRNG key.
      weights: float[M] non-negative, unnormalised weights.
      num_samples: N, a Python int.

    Returns:
      int32[N]: the copies, then the R draws, each part sorted.

    Raises:
      ValueError: as :func:`multinomial`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import resampling
      >>> resampling.residual(jax.random.key(0), jnp.array([2., 1., 1.]), 4).tolist()
      [0, 0, 1, 2]
    """
    return _apply(_residual, key, weights, num_samples)


def _pivotal_extras(key: PRNGKey, fractions: Array) -> Array:
    """Rounds each fraction to 0 or 1 by pairwise pivots up a binary tree.

    Two fractions ``x, y`` with sum ``s`` are resolved so that one becomes an
    integer and the other carries the rest, preserving both expectations:
    if ``s <= 1``, one of them (``x`` w.p. ``x / s``) carries ``s`` and the
    other becomes 0; if ``s > 1``, one (``x`` w.p. ``(1 - y) / (2 - s)``)
    becomes 1 and the other carries ``s - 1``. Pairing runs level by level
    over a balanced binary tree (Srinivasan's order), so it takes
    ``log2 M`` vectorised rounds of halving size: O(M) work.

    Returns:
      int32[M] of 0/1 extra offspring, summing to ``round(sum(fractions))``.
    """
    length = fractions.shape[0]
    width = 1 << max(0, (length - 1).bit_length())
    values = jnp.pad(fractions, (0, width - length))
    carriers = jnp.arange(width, dtype=jnp.int32)
    uniforms = _counts.uniforms(key, max(width - 1, 1))
    sink = jnp.int32(width)
    extras = []
    used = 0
    while values.shape[0] > 1:
        x, y = values[0::2], values[1::2]
        cx, cy = carriers[0::2], carriers[1::2]
        u = uniforms[used : used + x.shape[0]]
        used += x.shape[0]
        total = x + y
        over = total > 1.0
        p_first = jnp.where(
            over,
            (1.0 - y) / jnp.where(over, 2.0 - total, 1.0),
            x / jnp.where(total > 0, total, 1.0),
        )
        first = u < p_first
        # s > 1: the chosen one is rounded up (an extra offspring), the other
        # carries s - 1. s <= 1: the chosen one carries s, the other drops.
        extras.append(jnp.where(over, jnp.where(first, cx, cy), sink))
        carry_first = jnp.where(over, ~first, first)
        carriers = jnp.where(carry_first, cx, cy)
        values = jnp.where(over, total - 1.0, total)
    extras.append(jnp.where(values > 0.5, carriers, sink))
    counts = jnp.zeros(width + 1, jnp.int32).at[jnp.concatenate(extras)].add(1)
    return counts[:length]


def _ssp(key: PRNGKey, weights: Array, num_samples: int) -> Array:
    scaled = _counts.scaled_weights(weights, num_samples)
    copies = jnp.floor(scaled)
    offspring = copies.astype(jnp.int32) + _pivotal_extras(key, scaled - copies)
    before = jnp.clip(_counts.cumsum(offspring, num_samples + 2), 0, num_samples)
    pinned = jnp.arange(before.shape[0]) >= _counts.last_positive(weights)
    before = jnp.where(pinned, num_samples, before)
    return _counts.ancestors_from_boundaries(before, num_samples)


def ssp(key: PRNGKey, weights: ArrayLike, num_samples: int) -> Array:
    """SSP resampling (Srinivasan sampling process; Gerber, Chopin & Whiteley).

    Each particle gets ``floor(N w_i)`` or ``ceil(N w_i)`` offspring; the
    fractional parts ``N w_i - floor(N w_i)`` are rounded to 0 or 1 by
    pairwise pivots that keep every expectation, so ``E[N_i] = N w_i`` and
    the counts are negatively associated. The sequential SSP of GCW pivots
    particles in index order; here the same pivot runs over a balanced
    binary tree of adjacent particles (Srinivasan's 2001 construction), which
    keeps both properties and needs ``log2 M`` vectorised rounds instead of
    ``M`` sequential steps.

    Collectives: with weights sharded on an explicit mesh axis, one
    all-gather of the M weights (the prefix sum needs the whole axis); the
    ancestors come back sharded like the weights.

    Args:
      key: a PRNG key.
      weights: float[M] non-negative, unnormalised weights.
      num_samples: N, a Python int.

    Returns:
      int32[N] sorted ancestor indices.

    Raises:
      ValueError: as :func:`multinomial`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import resampling
      >>> resampling.ssp(jax.random.key(0), jnp.array([2., 1., 1.]), 4).tolist()
      [0, 0, 1, 2]
    """
    return _apply(_ssp, key, weights, num_samples)


def _killing(key: PRNGKey, weights: Array, num_samples: int) -> Array:
    key_keep, key_draw = jax.random.split(key)
    keep = _counts.uniforms(key_keep, num_samples) < weights / jnp.max(weights)
    killed = (~keep).astype(jnp.int32)
    num_killed = jnp.sum(killed)
    replacements = _sorted_draws(key_draw, weights, num_killed, num_samples)
    rank = _counts.cumsum(killed, num_samples) - killed
    return jnp.where(keep, jnp.arange(num_samples, dtype=jnp.int32), replacements[rank])


def killing(key: PRNGKey, weights: ArrayLike, num_samples: int) -> Array:
    """Killing resampling: keep or replace each particle in place.

    Particle ``i`` survives (``ancestor[i] = i``) with probability
    ``w_i / max_j w_j``; the killed slots get, in order, the sorted multiset
    of as many i.i.d. multinomial draws.
    ``E[N_i] = w_i / w_max + (N - 1 / w_max) w_i = N w_i`` for normalised w.
    Needs ``num_samples == M``.

    Collectives: with weights sharded on an explicit mesh axis, one
    all-gather of the M weights (the prefix sum needs the whole axis); the
    ancestors come back sharded like the weights.

    Args:
      key: a PRNG key.
      weights: float[M] non-negative, unnormalised weights.
      num_samples: must equal M.

    Returns:
      int32[M] ancestors; survivors point to themselves.

    Raises:
      ValueError: ``num_samples != M``, or as :func:`multinomial`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import resampling
      >>> resampling.killing(jax.random.key(0), jnp.ones(3), 3).tolist()
      [0, 1, 2]
    """
    num_particles = jnp.shape(weights)[0] if jnp.ndim(weights) == 1 else None
    if num_particles is not None and _check_num_samples(num_samples) != num_particles:
        raise ValueError(
            f"killing keeps particles in place: num_samples ({num_samples}) must "
            f"equal the number of weights ({num_particles})"
        )
    return _apply(_killing, key, weights, num_samples)


def _conditional_multinomial(key: PRNGKey, weights: Array, num_samples: int) -> Array:
    if num_samples == 1:
        return jnp.zeros(1, jnp.int32)
    others = _sorted_draws(key, weights, num_samples - 1, num_samples)
    return jnp.concatenate([jnp.zeros(1, jnp.int32), others[:-1]])


def conditional_multinomial(
    key: PRNGKey, weights: ArrayLike, num_samples: int
) -> Array:
    """Multinomial resampling conditional on particle 0 being its own ancestor.

    For particle Gibbs: ``ancestor[0] = 0`` (the reference trajectory) and
    the other N - 1 ancestors are i.i.d. draws from ``weights``, returned
    sorted (permute them if positions must be exchangeable).

    Collectives: with weights sharded on an explicit mesh axis, one
    all-gather of the M weights (the prefix sum needs the whole axis); the
    ancestors come back sharded like the weights.

    Args:
      key: a PRNG key.
      weights: float[M] non-negative weights with ``weights[0] > 0``.
      num_samples: N, a Python int.

    Returns:
      int32[N] with ``ancestor[0] == 0``.

    Raises:
      ValueError: ``weights[0] == 0`` (concrete), or as :func:`multinomial`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import resampling
      >>> w = jnp.array([1e-3, 1.0])
      >>> int(resampling.conditional_multinomial(jax.random.key(0), w, 4)[0])
      0
    """
    return _apply(_conditional_multinomial, key, weights, num_samples, conditional=True)


def _conditional_systematic(key: PRNGKey, weights: Array, num_samples: int) -> Array:
    whole, phi = _boundaries(weights, num_samples)
    first = _counts.scaled_weights(weights, num_samples)[0]
    copies = jnp.floor(first)
    frac = first - copies
    # Posterior of the shared uniform given one of particle 0's offspring is
    # the reference: density proportional to its offspring count,
    # copies + 1 on [0, frac) and copies on [frac, 1).
    p_low = (copies + 1.0) * frac / jnp.maximum(first, jnp.finfo(jnp.float32).tiny)
    key_side, key_u = jax.random.split(key)
    low = jax.random.uniform(key_side, ()) < p_low
    v = jax.random.uniform(key_u, (), dtype=jnp.float32)
    uniform = jnp.where(low, v * frac, frac + v * (1.0 - frac))
    # If w_0 underflows in float32 its boundary rounds to 0; the reference
    # still keeps its one offspring (the U -> 0 limit of the posterior).
    return _sorted_from_uniforms(whole, phi, uniform, num_samples, min_first=1)


def conditional_systematic(
    key: PRNGKey, weights: ArrayLike, num_samples: int
) -> Array:
    """Systematic resampling conditional on particle 0 being its own ancestor.

    Chopin & Singh (2015): the law of systematic resampling (with the output
    positions randomly permuted) given that position 0 descends from
    particle 0. The shared uniform ``U`` is drawn from its posterior, with
    density proportional to particle 0's offspring count
    ``ceil(N w_0 - U)``; the sorted output then starts with particle 0.
    Returned sorted, the other N - 1 ancestors are the conditional multiset;
    permute positions 1..N-1 if your algorithm needs them exchangeable.

    Collectives: with weights sharded on an explicit mesh axis, one
    all-gather of the M weights (the prefix sum needs the whole axis); the
    ancestors come back sharded like the weights.

    Args:
      key: a PRNG key.
      weights: float[M] non-negative weights with ``weights[0] > 0``.
      num_samples: N, a Python int.

    Returns:
      int32[N] sorted, with ``ancestor[0] == 0``.

    Raises:
      ValueError: ``weights[0] == 0`` (concrete), or as :func:`multinomial`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import resampling
      >>> w = jnp.array([1e-3, 1.0])
      >>> resampling.conditional_systematic(jax.random.key(0), w, 4).tolist()
      [0, 1, 1, 1]
    """
    return _apply(_conditional_systematic, key, weights, num_samples, conditional=True)


SCHEMES: dict[str, Scheme] = {
    "multinomial": multinomial,
    "stratified": stratified,
    "systematic": systematic,
    "residual": residual,
    "ssp": ssp,
    "killing": killing,
}

CONDITIONAL_SCHEMES: dict[str, Scheme] = {
    "multinomial": conditional_multinomial,
    "systematic": conditional_systematic,
}


def get_scheme(scheme: str | Scheme) -> Scheme:
    """A scheme function from its name in :data:`SCHEMES`, or the function itself."""
    if callable(scheme):
        return scheme
    try:
        return SCHEMES[scheme]
    except KeyError:
        raise ValueError(
            f"unknown resampling scheme {scheme!r}; known: {sorted(SCHEMES)}"
        ) from None


# ----------------------------------------------------------------------------
# Log-weight entry points.
# ----------------------------------------------------------------------------


class ResampleInfo(NamedTuple):
    """What :func:`resample` saw in the log-weights.

    Attributes:
      log_mean_weight: float32[], ``log(mean_i exp(lw_i))``; ``-inf`` when
        every log-weight is ``-inf``. The SMC normalising-constant increment.
      ess: float32[], effective sample size of the weights before resampling.
      valid: bool[], False when every log-weight is ``-inf``, one is
        ``+inf``, or the scheme rejected the weights (e.g. a conditional
        scheme whose reference has weight 0); the ancestors are then all
        ``-1``.
    """

    log_mean_weight: Array  # float32[]
    ess: Array  # float32[]
    valid: Array  # bool[]


def _check_log_weights(log_weights: ArrayLike) -> Array:
    log_weights = jnp.asarray(log_weights)
    if log_weights.ndim != 1:
        raise ValueError(
            "log_weights must have shape (num_particles,), got shape "
            f"{log_weights.shape}"
        )
    if log_weights.shape[0] == 0:
        raise ValueError("log_weights must hold at least one particle")
    if not jnp.issubdtype(log_weights.dtype, jnp.floating):
        raise ValueError(
            f"log_weights must have a floating dtype, got {log_weights.dtype}"
        )
    return jnp.where(jnp.isnan(log_weights), -jnp.inf, log_weights)


def _raise_if_degenerate(log_weights: Array) -> None:
    if _is_tracer(log_weights):
        return
    values = np.asarray(log_weights)
    if np.isposinf(values).any():
        i = int(np.argmax(np.isposinf(values)))
        raise ValueError(f"log_weights[{i}] is +inf: the weights cannot be normalised")
    if np.isneginf(values).all():
        raise ValueError("every log-weight is -inf (or NaN): all particles have weight 0")


def _weight_summary(log_weights: Array) -> tuple[Array, Array, Array, Array]:
    """``exp(lw - m)``, its sum, the log mean weight and the ESS.

    ``m = max lw`` (0 when every entry is -inf): subtracting the maximum is
    exact in floating point, unlike subtracting a ``logsumexp`` that must
    itself be rounded.
    """
    top = jnp.max(log_weights)
    shift = jnp.where(jnp.isfinite(top), top, 0.0)
    scaled = jnp.exp(log_weights - shift)
    total = jnp.sum(scaled)
    log_mean_weight = shift + jnp.log(total) - math.log(log_weights.shape[0])
    return scaled, total, log_mean_weight, total**2 / jnp.sum(scaled**2)


def normalize(log_weights: ArrayLike) -> tuple[Array, Array]:
    """Normalised weights and the log mean weight, in a numerically safe way.

    ``w_i = exp(lw_i - logsumexp(lw))`` and ``log_mean_weight =
    logsumexp(lw) - log M``. NaN log-weights count as ``-inf``.

    Args:
      log_weights: float[M] unnormalised log-weights.

    Returns:
      ``(weights, log_mean_weight)``: float[M] summing to 1 and a scalar.
      If every log-weight is ``-inf`` the weights are NaN and
      ``log_mean_weight`` is ``-inf`` (under jit; concrete input raises).

    Raises:
      ValueError: bad shape/dtype; with concrete input, a ``+inf`` entry or
        every entry ``-inf``/NaN.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxsampling.kernels import resampling
      >>> w, lm = resampling.normalize(jnp.log(jnp.array([1., 3.])))
      >>> w.round(4).tolist(), round(float(lm), 4)
      ([0.25, 0.75], 0.6931)
    """
    log_weights = _check_log_weights(log_weights)
    _raise_if_degenerate(log_weights)
    scaled, total, log_mean_weight, _ = _weight_summary(log_weights)
    return scaled / total, log_mean_weight


def ess(log_weights: ArrayLike) -> Array:
    """Effective sample size ``(sum w)^2 / sum w^2`` from log-weights.

    Computed from ``exp(lw - max lw)``, so large offsets lose no precision;
    between 1 and M.
    NaN log-weights count as ``-inf``; all ``-inf`` gives NaN.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxsampling.kernels import resampling
      >>> float(resampling.ess(jnp.zeros(10)))
      10.0
    """
    return _weight_summary(_check_log_weights(log_weights))[3]


def resample(
    key: PRNGKey,
    log_weights: ArrayLike,
    num_samples: int,
    scheme: str | Scheme = "systematic",
) -> tuple[Array, ResampleInfo]:
    """Any scheme, from log-weights.

    Args:
      key: a PRNG key.
      log_weights: float[M] unnormalised log-weights; NaN counts as ``-inf``.
      num_samples: N, a Python int.
      scheme: a name in :data:`SCHEMES` or a scheme function.

    Returns:
      ``(ancestors, info)``: int32[N] and a :class:`ResampleInfo`. When
      ``info.valid`` is False (every log-weight ``-inf``, or a ``+inf``) the
      ancestors are all ``-1``.

    Raises:
      ValueError: bad shape/dtype or scheme name; with concrete input, a
        ``+inf`` entry or every entry ``-inf``/NaN.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import resampling
      >>> lw = jnp.array([0.0, -jnp.inf, jnp.nan])
      >>> a, info = resampling.resample(jax.random.key(0), lw, 3, "stratified")
      >>> a.tolist(), bool(info.valid)
      ([0, 0, 0], True)
    """
    scheme_fn = get_scheme(scheme)
    log_weights = _check_log_weights(log_weights)
    _raise_if_degenerate(log_weights)
    top = jnp.max(log_weights)
    valid = (top > -jnp.inf) & (top < jnp.inf)
    weights, _, log_mean_weight, ess_value = _weight_summary(log_weights)
    ancestors = scheme_fn(key, jnp.where(valid, weights, 1.0), num_samples)
    # A scheme may flag weights it cannot use (a conditional scheme whose
    # reference has weight 0): that too makes the draw invalid.
    valid &= jnp.min(ancestors) >= 0
    ancestors = jnp.where(valid, ancestors, -1)
    info = ResampleInfo(log_mean_weight=log_mean_weight, ess=ess_value, valid=valid)
    return ancestors, info


def resample_if(
    key: PRNGKey,
    log_weights: ArrayLike,
    particles: ArrayTree,
    ess_threshold: float,
    scheme: str | Scheme = "systematic",
) -> tuple[ArrayTree, Array, Array]:
    """Adaptive resampling: resample when ``ESS < ess_threshold * M``.

    Runs inside ``jit`` and ``lax.scan`` (a ``lax.cond``). After resampling
    the log-weights are reset to zero; otherwise particles and log-weights
    are returned unchanged (NaN log-weights mapped to ``-inf``). Use
    ``ess_threshold=float('inf')`` to resample at every call.

    Collectives: those of ``scheme``, plus an all-gather of the particles
    when they are sharded on an explicit mesh (a resampled particle may come
    from any device); the result is sharded like the particles.

    Args:
      key: a PRNG key.
      log_weights: float[M] log-weights.
      particles: a pytree whose leaves have leading axis M.
      ess_threshold: fraction of M; 0.5 is the usual choice.
      scheme: a name in :data:`SCHEMES` or a scheme function with
        ``num_samples == M``.

    Returns:
      ``(particles, log_weights, resampled)`` with ``resampled`` a bool[].
      If every log-weight is ``-inf`` the ESS is NaN and nothing is
      resampled: the ``-inf`` weights are returned for the caller to see.
      If resampling was due but the scheme rejected the weights
      (``ResampleInfo.valid`` False), the particles are kept, the
      log-weights become NaN and ``resampled`` is False.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import resampling
      >>> x = jnp.arange(4.0)
      >>> lw = jnp.log(jnp.array([1.0, 0.0, 0.0, 0.0]))
      >>> x2, lw2, did = resampling.resample_if(jax.random.key(0), lw, x, 0.5)
      >>> x2.tolist(), lw2.tolist(), bool(did)
      ([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], True)
    """
    scheme_fn = get_scheme(scheme)
    log_weights = _check_log_weights(log_weights)
    num_particles = log_weights.shape[0]
    for leaf in jax.tree.leaves(particles):
        if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != num_particles:
            raise ValueError(
                f"particles leaves must have leading axis {num_particles} (the "
                f"number of log-weights), got shape {jnp.shape(leaf)}"
            )
    resampled = ess(log_weights) < ess_threshold * num_particles

    def do_resample(operand):
        particles, log_weights = operand
        ancestors, info = resample(key, log_weights, num_particles, scheme_fn)
        # Never gather with the -1 flag: keep the particles, poison the weights.
        safe = jnp.maximum(ancestors, 0)
        gathered = jax.tree.map(
            lambda x: jnp.where(info.valid, sharding.gather_batch(x, safe), x),
            particles,
        )
        new_log_weights = jnp.where(
            info.valid, jnp.zeros_like(log_weights), jnp.full_like(log_weights, jnp.nan)
        )
        return gathered, new_log_weights, info.valid

    particles, log_weights, done = jax.lax.cond(
        resampled,
        do_resample,
        lambda operand: (*operand, jnp.bool_(False)),
        (particles, log_weights),
    )
    return particles, log_weights, done


def island(
    key: PRNGKey,
    log_weights: ArrayLike,
    num_islands: int,
    scheme: str | Scheme = "systematic",
) -> tuple[Array, Array]:
    """Island resampling: each block of particles resamples within itself.

    The M particles are split into ``num_islands`` contiguous islands of
    ``M / B`` particles. Island ``b`` draws its ``M / B`` ancestors from its
    own particles with ``scheme``, and every particle of island ``b`` then
    carries the island's mean weight ``W_b``, so the output stays properly
    weighted: ``E[sum_k W_{b(k)} f(x_{a_k})] = sum_i w_i f(x_i)``.

    **Trade-off.** Only the islands' weights need a (scalar per island)
    reduction, and when islands are the shards of a mesh axis every device
    resamples locally: no particle moves between devices. The price is
    variance: weight is never moved between islands, so when weights
    cluster by island (one device holds the good particles) the island
    weights stay unequal and the estimator's variance grows with that
    imbalance; for well-mixed weights island and global resampling are
    close. Global schemes need the all-gather of the weights described in
    the module docstring.

    Collectives: none when each island lives on one device (``num_islands``
    a multiple of the mesh size); the log mean weight of each island is a
    per-island (scalar) reduction.

    Args:
      key: a PRNG key.
      log_weights: float[M] log-weights; NaN counts as ``-inf``.
      num_islands: B, a Python int dividing M (e.g. the device count). On
        an explicit mesh whose size does not divide B the islands straddle
        devices and are computed replicated (an all-gather of the weights).
      scheme: a name in :data:`SCHEMES` or a scheme function.

    Returns:
      ``(ancestors, log_weights)``: int32[M] global ancestor indices (island
      ``b`` writes positions ``b M/B .. (b+1) M/B - 1``) and float[M] new
      log-weights, the island's log mean weight. An island whose weights are
      all zero keeps its particles (ancestor = itself) at weight ``-inf``.

    Raises:
      ValueError: bad shape/dtype, ``num_islands`` not dividing M; with
        concrete input, a ``+inf`` log-weight or every log-weight ``-inf``.
        Under jit an island holding a ``+inf`` gets ancestors ``-1`` and NaN
        log-weights.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import resampling
      >>> lw = jnp.log(jnp.array([1., 0., 1., 1.]))
      >>> a, lw2 = resampling.island(jax.random.key(0), lw, 2)
      >>> a.tolist(), jnp.exp(lw2).tolist()
      ([0, 0, 2, 3], [0.5, 0.5, 1.0, 1.0])
    """
    scheme_fn = get_scheme(scheme)
    log_weights = _check_log_weights(log_weights)
    num_islands = _check_num_samples(num_islands)
    num_particles = log_weights.shape[0]
    if num_particles % num_islands:
        raise ValueError(
            f"num_islands ({num_islands}) must divide the number of particles "
            f"({num_particles})"
        )
    _raise_if_degenerate(log_weights)
    size = num_particles // num_islands
    axis = sharding.explicit_batch_axis(log_weights)
    if axis is not None and num_islands % sharding.axis_size(log_weights, axis):
        # Islands straddle devices: compute replicated, reshard at the end.
        log_weights = sharding.unshard(log_weights)
    blocks = log_weights.reshape(num_islands, size)
    # On an explicit mesh the islands inherit the particles' sharding; the
    # keys must be split the same way for vmap.
    keys = sharding.reshard_like(
        jax.random.split(key, num_islands), sharding.explicit_batch_axis(blocks)
    )

    def one_island(key, block_log_weights):
        top = jnp.max(block_log_weights)
        alive = top > -jnp.inf
        weights = jnp.where(alive, jnp.exp(block_log_weights - top), 1.0)
        ancestors = scheme_fn(key, weights, size)
        return jnp.where(alive, ancestors, jnp.arange(size, dtype=jnp.int32))

    local = jax.vmap(one_island)(keys, blocks)
    offsets = (jnp.arange(num_islands, dtype=jnp.int32) * size)[:, None]
    # An island whose scheme flagged its weights (a +inf under jit) keeps the
    # -1 flag and gets NaN log-weights.
    ok = jnp.all(local >= 0, axis=1, keepdims=True)
    ancestors = jnp.where(ok, local + offsets, -1).reshape(num_particles)
    island_log_mean = jax.nn.logsumexp(blocks, axis=1) - math.log(size)
    new_log_weights = jnp.where(ok, island_log_mean[:, None], jnp.nan)
    new_log_weights = jnp.broadcast_to(new_log_weights, blocks.shape)
    return (
        sharding.reshard_like(ancestors, axis),
        sharding.reshard_like(new_log_weights.reshape(num_particles), axis),
    )

