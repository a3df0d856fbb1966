"""Chain rule by rejection: projection-DPP draws whose cost does not grow with N.

The exact chain rule (:mod:`.chain_rule`) updates the residual norm of all
``N`` items after every pick: ``2 N r s`` flops a draw. This sampler never
touches all items. For the projection DPP of ``W = V[:, E]`` (``s = |E|``
orthonormal eigenvectors kept by the draw), the next item after ``t`` picks
has law ``||P_t w_i||^2 / (s - t)``. Propose ``i`` from the first pick's law

    q_i = ||w_i||^2 / s = (1 / s) sum_{j in E} V_ij^2,

a mixture of the eigenvectors' own laws ``V_ij^2`` (pick ``j in E``
uniformly, then ``i`` by binary search in column ``j``'s running sums, built
once: ``O(N r)``), and accept with probability ``||P_t w_i||^2 / ||w_i||^2 <= 1``.
The accepted item has the chain-rule law exactly (Gautier, Bardenet & Valko
2019 use the same proposal for continuous projection DPPs). The acceptance
rate is ``(s - t) / s``, so a draw needs about ``s H_s`` proposals; each
round tests ``block`` proposals per draw at once (the first accepted one is
kept, which is exact) and costs ``O(block s^2 + log N)``. Draws advance
independently; the loop stops when the slowest draw of the batch is done.

Cost per draw: about ``(s + s H_s / block) * 2 block s^2`` flops, independent
of ``N`` after the ``O(N r)`` running sums (the ``log N`` of the binary
search aside). It beats the matrix-product chain rule once ``N`` exceeds a
few times ``s H_s``; :func:`~.ensemble.sample` chooses by that estimate.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxsampling.kernels.dpp.chain_rule import PAD
from jaxsampling.types import Array

__all__ = [
    "BLOCK",
    "METHODS",
    "chain_rule_rejection",
    "column_sums",
    "expected_rounds",
    "prefers_rejection",
]

BLOCK = 8
"""Proposals tested per draw and round."""


METHODS = ("auto", "chain_rule", "rejection")
"""Samplers for the projection phase: ``auto`` picks by :func:`prefers_rejection`."""


def prefers_rejection(n: int, r: int, size: int, block: int = BLOCK) -> bool:
    """Whether rejection should beat the matrix-product chain rule for ``N = n``.

    Cost model calibrated on a 2-core CPU (float64, batches of 256 to 1000):
    the chain rule runs ``2 N w s`` flops at about 20 GFLOP/s, where ``w``,
    the columns a group of draws keeps (:func:`~.chain_rule.chain_rule_bucketed`),
    is taken as ``min(r, 3 s)`` (measured: 142 for a k-DPP with ``s = 50``,
    185 to 236 for an L-ensemble with ``s`` about 90); a rejection round costs
    about ``(2 block + 4) s^2`` flops at an effective 1 GFLOP/s (small batched
    products and per-op overhead). Measured crossover for ``r = s = 50``: ``N``
    about 12,000 (the ``crossover`` cases of benchmarks/results/dpp.json).
    """
    width = min(r, 3 * size)
    chain = 2.0 * n * width * size / 20e9
    rounds = expected_rounds(size, block)
    return chain > rounds * (2 * block + 4) * size * size / 1e9


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


def column_sums(V: Array) -> Array:
    """``(r, N)`` running sums of ``V_ij^2`` down each column: the proposal tables."""
    return jnp.cumsum(V * V, axis=0).T


def expected_rounds(size: int, block: int = BLOCK) -> float:
    """Expected rounds for one draw of ``size`` items: ``sum_t 1 / (1 - (t / s)^block)``."""
    return sum(1.0 / (1.0 - (t / size) ** block) for t in range(size))


def _search(sums: Array, cols: Array, target: Array, n: int) -> Array:
    """Smallest ``i`` with ``sums[col, i] > target``: ``ceil(log2 N) + 1`` gathers."""
    lo = jnp.zeros(cols.shape, jnp.int32)
    hi = jnp.full(cols.shape, n - 1, jnp.int32)

    def halve(_, bounds):
        lo, hi = bounds
        mid = (lo + hi) // 2
        right = sums[cols, mid] <= target
        return jnp.where(right, mid + 1, lo), jnp.where(right, hi, mid)

    lo, _ = lax.fori_loop(0, max(1, math.ceil(math.log2(n))) + 1, halve, (lo, hi))
    return jnp.minimum(lo, n - 1)


def chain_rule_rejection(
    keys: Array,
    V: Array,
    sets: Array,
    sizes: Array,
    max_size: int,
    *,
    sums: Array | None = None,
    block: int = BLOCK,
) -> Array:
    """Projection-DPP draws of ``V[:, sets[b, :sizes[b]]]`` by proposal and rejection.

    Args:
      keys: ``(B,)`` typed keys.
      V: ``(N, r)`` orthonormal columns.
      sets: ``int32[B, max_size]`` the columns each draw keeps (first ``sizes[b]``
        entries; the rest are ignored).
      sizes: ``int32[B]``, each ``<= max_size``.
      max_size: static length of the output.
      sums: :func:`column_sums` of ``V`` if already computed.
      block: static number of proposals per draw and round.

    Returns:
      ``int32[B, max_size]``: the items in random order, then ``PAD``; the
      same law as :func:`~.chain_rule.chain_rule`.
    """
    n, _ = V.shape
    b = keys.shape[0]
    dtype = V.dtype
    sums = column_sums(V) if sums is None else sums
    coords = jnp.arange(max_size)
    valid = (coords[None, :] < sizes[:, None]).astype(dtype)
    safe_sets = jnp.where(valid > 0, sets, 0)
    rows = jnp.arange(b)
    tiny = 1 - jnp.finfo(dtype).eps

    def cond(carry):
        return jnp.any(carry[0] < sizes)

    def body(carry):
        t, rnd, directions, items = carry
        u = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, rnd), (block, 3), dtype))(
            keys
        )
        pos = jnp.minimum((u[..., 0] * sizes[:, None]).astype(jnp.int32), sizes[:, None] - 1)
        cols = jnp.take_along_axis(safe_sets, jnp.maximum(pos, 0), axis=1)
        total = sums[cols, n - 1]
        cand = _search(sums, cols, jnp.minimum(u[..., 1] * total, total * tiny), n)
        w = V[cand[:, :, None], safe_sets[:, None, :]] * valid[:, None, :]
        norms = jnp.sum(w * w, axis=-1)
        proj = jnp.einsum("bcm,bsm->bcs", w, directions)
        resid = norms - jnp.sum(proj * proj, axis=-1)
        accept = u[..., 2] * norms < resid
        first = jnp.argmax(accept, axis=1)
        active = (t < sizes) & jnp.any(accept, axis=1)
        v = w[rows, first] - jnp.einsum("bs,bsm->bm", proj[rows, first], directions)
        v = v - jnp.einsum("bsm,bs->bm", directions, jnp.einsum("bsm,bm->bs", directions, v))
        v = v / jnp.linalg.norm(v, axis=1, keepdims=True)
        slot = jnp.minimum(t, max_size - 1)
        directions = directions.at[rows, slot].set(
            jnp.where(active[:, None], v, directions[rows, slot])
        )
        items = items.at[rows, slot].set(jnp.where(active, cand[rows, first], items[rows, slot]))
        return t + active, rnd + 1, directions, items

    init = (
        jnp.zeros(b, jnp.int32),
        jnp.int32(0),
        jnp.zeros((b, max_size, max_size), dtype),
        jnp.full((b, max_size), PAD, jnp.int32),
    )
    _, _, _, items = lax.while_loop(cond, body, init)
    return items
