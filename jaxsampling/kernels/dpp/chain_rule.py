"""The batched chain-rule sampler shared by every exact DPP draw.

A projection DPP with kernel ``K = W W^T`` (``W`` an ``N x s`` matrix with
orthonormal columns) is sampled item by item (Hough et al. 2006): after
``t`` items, item ``i`` comes next with probability

    P(i | i_1..i_t) = ||P_t w_i||^2 / (s - t),

where ``w_i`` is row ``i`` of ``W`` and ``P_t`` projects onto the orthogonal
complement of ``w_{i_1}, ..., w_{i_t}`` in ``R^s``. The ordered sequence has
probability ``det(K_S) / s!``, symmetric in the order, so the items come out
in uniformly random order.

Every DPP of this package reduces to this step with ``W = V[:, selected]``:
``V`` is ``N x r`` with orthonormal columns (the kernel's eigenvectors) and
each draw keeps its own subset of the ``r`` columns (all of them for a
projection DPP; a Bernoulli or k-subset for an L-ensemble or k-DPP). The
batched step is written as matrix products over ``B`` draws at once:

* the squared residual norms ``n[b, i] = ||P_t w_i||^2`` start as
  ``mask @ (V * V)^T`` (one ``B x r x N`` product);
* each step orthonormalises the picked rows against the draw's previous
  directions ``u_1..u_t`` (Gram-Schmidt in the draw's ``s`` kept
  coordinates, ``4 s t`` flops a draw)
  and lowers every norm by ``(V u_{t+1})_i^2``: one ``B x r x N`` product.

So a draw of size ``s`` costs ``2 N r s + 4 r s^2`` flops at matrix-product
speed, against DPPy's one draw at a time. The loop runs for the largest size
in the batch; draws that are done are masked.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from jaxsampling.types import Array

__all__ = [
    "CHUNK",
    "GS_BLOCK",
    "PAD",
    "bucket_widths",
    "chain_rule",
    "chain_rule_bucketed",
    "in_groups",
    "pick",
    "projection_group",
    "selected_columns",
]

PAD = -1
"""Index that pads a draw shorter than its static ``max_size``."""


def pick(u: Array, weights: Array) -> Array:
    """Index ``i`` with probability ``weights[b, i] / sum_j weights[b, j]``, per row ``b``.

    Inverse CDF on the running sums: item ``i`` is picked iff
    ``c_{i-1} <= u * c_N < c_i``. The first such item of positive weight is
    taken, so an item of weight zero is never picked even where round-off
    makes XLA's CPU prefix sums non-monotone (seen on float32 rows of a few
    hundred entries).

    Args:
      u: ``(B,)`` uniforms in ``[0, 1)``.
      weights: ``(B, N)`` non-negative weights, each row with a positive sum.

    Returns:
      ``int32[B]`` indices.
    """
    c = jnp.cumsum(weights, axis=1)
    total = c[:, -1:]
    target = jnp.minimum(u[:, None] * total, total * (1 - jnp.finfo(weights.dtype).eps))
    hit = (c > target) & (weights > 0)
    idx = jnp.where(jnp.any(hit, axis=1), jnp.argmax(hit, axis=1), jnp.argmax(weights, axis=1))
    return idx.astype(jnp.int32)


def _pick_blocked(u: Array, norms: Array) -> tuple[Array, Array]:
    """:func:`pick` on ``(B, blocks, G)`` weights in two levels: a block, then an item.

    ``P(block j) = S_j / S`` from the block sums, ``P(i | j) = n_i / S_j``; the
    running sums cover ``N / G + G`` entries instead of ``N`` (a prefix sum over
    the long axis is the slowest op of the step on CPU).
    """
    block = pick(u[:, 0], norms.sum(axis=2))
    within = jnp.take_along_axis(norms, block[:, None, None], axis=1)[:, 0]
    return block, pick(u[:, 1], within)


def _block_size(n: int) -> int:
    return max(8, 1 << max(0, (math.isqrt(n) - 1).bit_length()))


def selected_columns(select: Array, max_size: int) -> Array:
    """``int32[B, max_size]``: the indices of each row's ``True`` entries first, in order."""
    order = jnp.argsort(~select, axis=1, stable=True)[:, :max_size]
    return order.astype(jnp.int32)


GS_BLOCK = 8
"""Directions per block of the Gram-Schmidt step (a block is reused from cache)."""


def _orthogonalize(v: Array, directions: Array, t: Array) -> Array:
    """``v`` minus its projection on the first ``t`` rows of ``directions``.

    Block-wise modified Gram-Schmidt over ``(t + GS_BLOCK - 1) // GS_BLOCK``
    blocks: only the directions stored so far are read, each block once from
    memory (the batch of directions, ``max_size^2`` numbers a draw, is the
    largest operand of the step after ``V``).

    Args:
      v: ``(B, m)`` vectors.
      directions: ``(B, T, m)``; rows ``>= t`` are zero.
      t: number of stored directions.
    """

    def block(j, v):
        d = lax.dynamic_slice_in_dim(directions, j * GS_BLOCK, GS_BLOCK, axis=1)
        return v - jnp.einsum("bj,bjm->bm", jnp.einsum("bjm,bm->bj", d, v), d)

    return lax.fori_loop(0, (t + GS_BLOCK - 1) // GS_BLOCK, block, v)


def chain_rule(keys: Array, V: Array, sets: Array, sizes: Array, max_size: int) -> Array:
    """Projection-DPP draws of ``W_b = V[:, sets[b, :sizes[b]]]``, ``B`` draws at once.

    Gram-Schmidt runs in each draw's own ``max_size`` coordinates (the columns
    it keeps), so the stored directions take ``B max_size^2`` numbers however
    many columns ``V`` has; the norm update maps them back to ``V``'s columns.

    Args:
      keys: ``(B,)`` typed keys, one per draw.
      V: ``(N, r)`` matrix with orthonormal columns.
      sets: ``int32[B, max_size]`` the columns of ``V`` that draw ``b`` keeps
        (its first ``sizes[b]`` entries, distinct; the rest are ignored).
      sizes: ``int32[B]`` number of kept columns of each draw (``<= max_size``;
        a draw with size 0 returns no items).
      max_size: static length of the output.

    Returns:
      ``int32[B, max_size]``: draw ``b``'s ``sizes[b]`` items in random order,
      then ``PAD``.
    """
    n, r = V.shape
    b = keys.shape[0]
    dtype = V.dtype
    g = _block_size(n)
    blocks = -(-n // g)
    Vp = jnp.pad(V, ((0, blocks * g - n), (0, 0)))
    valid = (jnp.arange(max_size)[None, :] < sizes[:, None]).astype(dtype)
    sets = jnp.where(valid > 0, sets, 0)
    rows = jnp.arange(b)

    def to_columns(w):
        return jnp.zeros((b, r), dtype).at[rows[:, None], sets].add(w * valid)

    norms = (to_columns(valid) @ (Vp * Vp).T).reshape(b, blocks, g)
    directions = jnp.zeros((b, -(-max_size // GS_BLOCK) * GS_BLOCK, max_size), dtype)
    items = jnp.full((b, max_size), PAD, jnp.int32)
    steps = jnp.minimum(jnp.max(sizes), max_size)

    def cond(carry):
        return carry[0] < steps

    def body(carry):
        t, norms, directions, items = carry
        u = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, t), (2,), dtype))(keys)
        block, within = _pick_blocked(u, norms)
        idx = block * g + within
        active = t < sizes
        v = jnp.take_along_axis(Vp[idx], sets, axis=1) * valid
        v = _orthogonalize(v, directions, t)
        norm = jnp.linalg.norm(v, axis=1, keepdims=True)
        w = jnp.where(active[:, None] & (norm > 0), v / jnp.where(norm > 0, norm, 1), 0)
        directions = lax.dynamic_update_index_in_dim(directions, w, t, axis=1)
        proj = (to_columns(w) @ Vp.T).reshape(b, blocks, g)
        norms = jnp.maximum(norms - proj * proj, 0).at[rows, block, within].set(0)
        items = lax.dynamic_update_index_in_dim(items, jnp.where(active, idx, PAD), t, axis=1)
        return t + 1, norms, directions, items

    _, _, _, items = lax.while_loop(cond, body, (jnp.int32(0), norms, directions, items))
    return items


CHUNK = 64
"""Draws per group of the bucketed sampler: a small group keeps fewer distinct columns."""


GROWTH = 1.25
"""Ratio of consecutive static widths of the bucketed sampler (more widths: more compiles)."""


def bucket_widths(r: int, max_size: int) -> tuple[int, ...]:
    """Static column counts the bucketed sampler can restrict ``V`` to: ``r / GROWTH^j``."""
    widths = {r}
    w = r
    while True:
        w = math.ceil(w / GROWTH)
        if w < max(max_size, 8) or w >= r:
            break
        widths.add(w)
    return tuple(sorted(widths))


def _compacted(keys: Array, V: Array, sets: Array, sizes: Array, max_size: int) -> Array:
    r = V.shape[1]
    widths = bucket_widths(r, max_size)
    if len(widths) == 1:
        return chain_rule(keys, V, sets, sizes, max_size)
    valid = jnp.arange(max_size)[None, :] < sizes[:, None]
    used = jnp.zeros(r, bool).at[jnp.where(valid, sets, r)].set(True, mode="drop")
    columns = jnp.argsort(~used, stable=True).astype(jnp.int32)  # the used ones first, in order
    position = (jnp.cumsum(used) - 1).astype(jnp.int32)
    sets = jnp.where(valid, position[sets], 0)
    branch = jnp.sum(jnp.asarray(widths) < jnp.sum(used))

    def run(w):
        return lambda: chain_rule(keys, V[:, columns[:w]], sets, sizes, max_size)

    return lax.switch(branch, [run(w) for w in widths])


def chain_rule_bucketed(
    keys: Array, V: Array, sets: Array, sizes: Array, max_size: int
) -> Array:
    """:func:`chain_rule` on only the columns of ``V`` that each group of draws keeps.

    An L-ensemble or k-DPP draw keeps ``s`` of the ``r`` eigenvectors, and
    draws differ in which. The draws are sorted by size (a group runs for its
    largest) and run in groups of :data:`CHUNK` (``lax.map``); each group
    gathers the union ``U`` of the columns it keeps (in their order) and runs
    on ``V[:, U]`` padded to the smallest static width in
    :func:`bucket_widths` that holds ``|U|`` (``lax.switch``: one branch
    runs). The law is unchanged; the cost falls from about ``2 N r s`` to
    ``2 N |U| s`` flops a draw (for the N = 2000 RBF kernel of the benchmark
    in float64: ``r = 952``, ``s ~ 89``, ``|U| ~ 185`` for 64 draws).
    """
    order = jnp.argsort(sizes, stable=True)  # a group runs for its largest size
    items = in_groups(
        lambda k, s, z: _compacted(k, V, s, z, max_size),
        keys[order], sets[order], sizes[order], CHUNK,
    )
    return jnp.zeros_like(items).at[order].set(items)


def in_groups(
    run: Callable[[Array, Array, Array], Array],
    keys: Array,
    sets: Array,
    sizes: Array,
    group: int,
) -> Array:
    """``run(keys, sets, sizes)`` on consecutive groups of ``group`` draws (``lax.map``).

    A group's working set (its residual norms and directions) stays in cache,
    where one batch of a thousand draws would not; the last group is padded
    with empty draws.
    """
    b = keys.shape[0]
    if b <= group:
        return run(keys, sets, sizes)
    groups = -(-b // group)
    pad = groups * group - b
    keys = jnp.concatenate([keys, keys[:pad]]) if pad else keys
    sets = jnp.pad(sets, ((0, pad), (0, 0)))
    sizes = jnp.pad(sizes, (0, pad))
    grouped = [x.reshape(groups, group, *x.shape[1:]) for x in (keys, sets, sizes)]
    items = lax.map(lambda g: run(*g), grouped)
    return items.reshape(groups * group, -1)[:b]


def projection_group(k: int) -> int:
    """Draws per group for projection DPPs of rank ``k`` (measured on a 2-core CPU:
    128 for ``k = 50``, 256 for ``k = 200``, against one batch of 1000)."""
    return 128 if k < 128 else 256
