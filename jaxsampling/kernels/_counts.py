"""Exact-in-float32 cumulative counts: the arithmetic behind the resamplers.

Resampling compares ``num_samples`` points with the scaled cumulative weights
``N C_i = N (w_0 + ... + w_i) / W``. In float32 that number cannot be stored
with sub-offspring precision once ``N`` approaches ``2**24`` (one ulp of
``10**7`` is 1), and a flat float32 running sum drifts further. We therefore
keep ``N C_i`` as an int32 part plus a float32 fraction:

  ``N C_i = J_i + phi_i``,  ``J_i`` an integer, ``0 <= phi_i < 1``.

Each scaled weight ``a_i = N w_i / W`` is split into ``floor(a_i)`` and its
fraction rounded to a multiple of ``2**-19`` (fixed point). From there every
sum is exact integer arithmetic: within rows of 16 by a 16x16 matmul of
integer-valued float32 (exact below ``2**24``), then recursively over the row
totals, carrying whole parts with integer shifts. Boundaries are therefore
monotone, a zero weight never moves its boundary (so it never gets an
offspring), nothing drifts at ``M = 10**7``, and the only approximation is the
``2**-20``-offspring rounding of each weight. These blocked prefix sums are
also 5-10x faster than XLA's ``cumsum`` (a ``reduce_window``) on CPU.

All functions here are shape-static and jit/vmap friendly; they assume valid
(finite, non-negative, not all zero) weights.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp

Array = jax.Array


BLOCK = 16
# Integer-valued float32 sums are exact below 2**24 whatever the order.
_EXACT_INT_IN_FLOAT32 = 2**24


def _rows(x: Array) -> Array:
    """``x`` zero-padded to a multiple of :data:`BLOCK` and reshaped to rows."""
    length = x.shape[0]
    padded = -(-length // BLOCK) * BLOCK
    return jnp.pad(x, (0, padded - length)).reshape(-1, BLOCK)


def _row_prefix(rows: Array) -> Array:
    """Prefix sums along rows of :data:`BLOCK` entries.

    float32: one small matmul with an upper-triangular matrix of ones (full
    float32 precision requested, so no TF32/bf16 passes on accelerators).
    int32: an unrolled running sum.
    """
    if jnp.issubdtype(rows.dtype, jnp.floating):
        ones = jnp.triu(jnp.ones((BLOCK, BLOCK), rows.dtype))
        return jnp.dot(rows, ones, precision=jax.lax.Precision.HIGHEST)
    columns = [rows[:, 0]]
    for j in range(1, rows.shape[1]):
        columns.append(columns[-1] + rows[:, j])
    return jnp.stack(columns, axis=1)


def _prefix(x: Array) -> Array:
    """Inclusive prefix sum: rows of 16, then recursively the row totals."""
    length = x.shape[0]
    local = _row_prefix(_rows(x))
    if local.shape[0] == 1:
        return local.reshape(-1)[:length]
    totals = local[:, -1]
    offsets = _prefix(totals) - totals
    return (local + offsets[:, None]).reshape(-1)[:length]


def cumsum(x: Array, total_bound: int | None = None) -> Array:
    """Inclusive prefix sum of a 1-D array, blockwise and recursive.

    XLA lowers ``jnp.cumsum`` to a ``reduce_window`` that is 5-10x slower on
    CPU; prefix sums inside rows of 16 (a 16x16 matmul), then recursively
    over the row totals, cost a few passes.

    Args:
      x: 1-D float32 or int32 array (integers non-negative).
      total_bound: for integers, a static bound on ``sum(x)``. Below ``2**24``
        the integers are summed exactly in float32 (the fast matmul path).

    Returns:
      The prefix sums, same dtype as ``x``; exact for integers.
    """
    if jnp.issubdtype(x.dtype, jnp.integer):
        if total_bound is not None and total_bound < _EXACT_INT_IN_FLOAT32:
            return _prefix(x.astype(jnp.float32)).astype(x.dtype)
    return _prefix(x)


def uniforms(key: jax.Array, num: int) -> Array:
    """``num`` float32 uniforms on [0, 1).

    Drawn at an even length and sliced: threefry on CPU is ~5x slower for
    odd lengths.
    """
    return jax.random.uniform(key, (num + num % 2,), dtype=jnp.float32)[:num]


def scaled_weights(weights: Array, scale: Array | int) -> Array:
    """``scale * w_i / sum(w)`` in float32, normalising by the maximum first.

    Dividing by the maximum weight first keeps the sum in ``[1, M]`` so that
    neither tiny nor huge weights overflow or underflow.
    """
    w = weights.astype(jnp.float32)
    w = w / jnp.max(w)
    return w * (jnp.asarray(scale, jnp.float32) / jnp.sum(w))


# Fractions are carried in fixed point with this many bits: a row of 16
# fractions sums to at most 2**23 and, with its offset, stays below 2**24, so
# every step is exact in float32 (the fast matmul path).
FRACTION_BITS = 19
_ONE = float(1 << FRACTION_BITS)


def cumulative_counts(scaled: Array, total: int) -> tuple[Array, Array]:
    """Exact prefix sums of ``scaled`` as ``(J, phi)``.

    Each scaled weight is split into its whole part and its fraction rounded
    to a multiple of ``2**-19``; from there every sum is exact integer
    arithmetic (integer-valued float32 below ``2**24``, int32 above). The
    boundaries are therefore monotone and a zero weight repeats its
    predecessor's boundary bit for bit, so it can never get an offspring.
    The only approximation is that rounding: at most ``2**-20`` offspring per
    particle.

    Args:
      scaled: float32[M] non-negative scaled weights summing to about
        ``total`` (see :func:`scaled_weights`).
      total: a static bound on the sum (it selects the exact summation path).

    Returns:
      ``J`` int32[M] and ``phi`` float32[M] in [0, 1), a multiple of
      ``2**-19``, with ``J_i + phi_i`` the prefix sum of the rounded weights.
    """
    whole = jnp.floor(scaled)
    fraction = jnp.round((scaled - whole) * _ONE)
    exact_in_float = total + 1 < _EXACT_INT_IN_FLOAT32
    whole = whole if exact_in_float else whole.astype(jnp.int32)
    whole_sum, fraction_sum = _fixed_point_prefix(whole, fraction)
    return whole_sum.astype(jnp.int32), fraction_sum * (1.0 / _ONE)


def _fixed_point_prefix(whole: Array, fraction: Array) -> tuple[Array, Array]:
    """Prefix sums of ``whole + fraction / 2**19``, exactly.

    ``fraction`` holds integers in ``[0, 2**19]`` as float32. Rows of 16 are
    summed by matmul (exact: at most ``2**23``), their totals recursively;
    at every level the whole part of a fraction total is carried into
    ``whole`` (float32 below ``2**24``, else int32). Every float32 value is an
    integer below ``2**24``, so every operation is exact.

    Returns:
      whole parts (``whole``'s dtype) and float32 fractions in ``[0, 2**19)``.
    """
    length = whole.shape[0]
    local_whole = _row_prefix(_rows(whole))
    local_fraction = _row_prefix(_rows(fraction))
    if local_whole.shape[0] > 1:
        fraction_total = local_fraction[:, -1]
        carried = jnp.floor(fraction_total * (1.0 / _ONE))
        whole_total = local_whole[:, -1] + carried.astype(whole.dtype)
        fraction_total = fraction_total - carried * _ONE
        whole_before, fraction_before = _fixed_point_prefix(whole_total, fraction_total)
        local_whole = local_whole + (whole_before - whole_total)[:, None]
        local_fraction = local_fraction + (fraction_before - fraction_total)[:, None]
    carried = jnp.floor(local_fraction * (1.0 / _ONE))
    whole_out = local_whole + carried.astype(whole.dtype)
    fraction_out = local_fraction - carried * _ONE
    return whole_out.reshape(-1)[:length], fraction_out.reshape(-1)[:length]


def last_positive(weights: Array) -> Array:
    """Index of the last particle with positive weight (int32 scalar)."""
    length = weights.shape[0]
    return (length - 1 - jnp.argmax(weights[::-1] > 0)).astype(jnp.int32)


def close_at(
    whole: Array, phi: Array, total: Array | int, last: Array | int
) -> tuple[Array, Array]:
    """Pins the boundaries from particle ``last`` on at ``total``; clips the rest.

    The float32 rounding of the normalising constant can leave the final
    boundary a fraction of an offspring (at most ``total * 2**-23``) away from
    ``total``. Pinning at the last particle with positive weight (see
    :func:`last_positive`) means no mass is lost, the difference goes to that
    particle, and the zero-weight particles after it get nothing.
    """
    pinned = jnp.arange(whole.shape[0]) >= last
    whole = jnp.where(pinned, total, jnp.clip(whole, 0, total))
    phi = jnp.where(whole >= total, 0.0, phi)
    return whole, phi


def ancestors_from_boundaries(boundaries: Array, num_samples: int) -> Array:
    """Sorted ancestor indices from integer cumulative offspring counts.

    Args:
      boundaries: int32[M] non-decreasing, ``K_i`` = number of offspring of
        particles ``0..i``, with values in ``[0, num_samples]``.
      num_samples: N, the number of ancestors to return.

    Returns:
      int32[N] with ``ancestor[k] = #{i : K_i <= k}``: particle ``i`` appears
      ``K_i - K_{i-1}`` times. Positions at or beyond ``K_{M-1}`` get ``M``.
      O(M + N): one scatter-add and one prefix sum, no search.
    """
    boundaries = jnp.clip(boundaries, 0, num_samples)
    markers = jnp.zeros(num_samples + 1, jnp.int32).at[boundaries].add(
        1, mode="promise_in_bounds"
    )
    return cumsum(markers, total_bound=boundaries.shape[0])[:num_samples]


def sorted_points(
    key: jax.Array, num_points: Array | int, max_points: int
) -> tuple[Array, Array]:
    """``num_points`` sorted i.i.d. uniform points on ``[0, num_points)``.

    Exponential spacings: with ``E_1 .. E_{D+1}`` i.i.d. Exp(1) and partial
    sums ``S_k``, ``(D S_1 / S_{D+1}, ..., D S_D / S_{D+1})`` are the order
    statistics of D uniforms on [0, D). ``S_k`` is kept as (whole, fraction)
    and rescaled by adding ``S_k (D / S_{D+1} - 1)``, a number of order
    ``sqrt(D)``, so each point is exact to ~1e-4 even at ``D = 10**7``.
    Exp(1) draws are ``-log1p(-u)``: a float32 ``u = 0`` gives 0, never inf.

    Args:
      key: a PRNG key.
      num_points: D, a (possibly traced) int with ``1 <= D <= max_points``.
      max_points: static size of the outputs.

    Returns:
      ``(units, offsets)``: int32[max_points] and float32[max_points]; point
      ``k < D`` is ``units[k] + offsets[k]``, sorted; entries ``k >= D`` have
      ``units = max_points`` (past every boundary) and offset 0.
    """
    spacings = -jnp.log1p(-uniforms(key, max_points + 1))
    index = jnp.arange(max_points + 1)
    spacings = jnp.where(index <= num_points, spacings, 0.0)
    # Sums of Exp(1) stay below 2 * (max_points + 1) with overwhelming odds.
    whole, frac = cumulative_counts(spacings, 2 * (max_points + 1))
    total = whole[num_points].astype(jnp.float32) + frac[num_points]
    gap = (num_points - whole[num_points]).astype(jnp.float32) - frac[num_points]
    # total is 0 only if every spacing is 0 (every uniform exactly 0).
    ratio = jnp.where(total > 0, gap / jnp.maximum(total, 1e-30), 0.0)
    correction = (whole[:-1].astype(jnp.float32) + frac[:-1]) * ratio
    shifted = frac[:-1] + correction
    carried = jnp.floor(shifted)
    units = whole[:-1] + carried.astype(jnp.int32)
    offsets = shifted - carried
    live = index[:-1] < num_points
    # Rounding may put the last point at D itself: keep it just below.
    past_end = units >= num_points
    offsets = jnp.where(past_end, jnp.float32(1.0 - 2.0**-24), offsets)
    units = jnp.where(past_end, num_points - 1, units)
    units = jnp.where(live, jnp.clip(units, 0, max_points), max_points)
    return units.astype(jnp.int32), jnp.where(live, offsets, 0.0)


def count_below(
    whole: Array, phi: Array, units: Array, offsets: Array, max_units: int
) -> Array:
    """``K_i = #{points below boundary i}`` for sorted points and boundaries.

    ``K_i = P_{J_i} + #{k in unit J_i : offset_k < phi_i}`` with ``P_j`` the
    number of points in units below ``j`` (one histogram, one prefix sum).
    Inside a unit the offsets are sorted and few (Poisson(1)-like counts), so
    bisection takes ``ceil(log2(1 + max points per unit))`` vectorised
    rounds, about 4 whatever the weights.

    Args:
      whole, phi: boundaries, with ``whole`` in ``[0, max_units]``.
      units, offsets: sorted points from :func:`sorted_points`.
      max_units: static bound on ``units`` and ``whole``.

    Returns:
      int32[M] non-decreasing counts.
    """
    histogram = jnp.zeros(max_units + 1, jnp.int32).at[units].add(
        1, mode="promise_in_bounds", indices_are_sorted=True
    )
    start = jnp.concatenate(
        [jnp.zeros(1, jnp.int32), cumsum(histogram, total_bound=units.shape[0])]
    )
    # Materialise what the loop reads, so XLA does not recompute it per round.
    whole, phi, offsets, start = jax.lax.optimization_barrier(
        (whole, phi, offsets, start)
    )
    whole = jnp.clip(whole, 0, max_units)
    lo = start[whole]
    hi = start[whole + 1]
    crowd = jnp.max(histogram[:max_units])
    rounds = jnp.ceil(jnp.log2(crowd.astype(jnp.float32) + 1.0)).astype(jnp.int32)
    last = offsets.shape[0] - 1

    def bisect(_, state):
        lo, hi = state
        active = lo < hi
        mid = lo + (hi - lo) // 2
        probe = offsets.at[jnp.minimum(mid, last)].get(mode="promise_in_bounds")
        less = probe < phi
        return jnp.where(active & less, mid + 1, lo), jnp.where(active & ~less, mid, hi)

    lo, _ = jax.lax.fori_loop(0, rounds, bisect, (lo, hi))
    return lo
