"""Tests for jaxsampling.kernels.dpp.chain_rule (the batched chain-rule sampler).

The inverse CDF ``pick`` against numpy's ``searchsorted`` on exact binary
weights, its law by chi-square over 100,000 uniforms, and that it never
returns a zero-weight item, even at the float boundaries of its running sums;
the two-level ``_pick_blocked`` over several blocks (zero blocks, zero items,
the zero padding of the last block) the same way; ``chain_rule`` on a
per-draw subset of the columns of ``V`` (two column subsets and empty draws
in one batch) against the projection-DPP laws by chi-square; and the bucketed
sampler equal to the plain one on the narrow branch.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsampling import testing
from jaxsampling.kernels import dpp
from jaxsampling.kernels.dpp import chain_rule
from tests.kernels.dpp import common, reference

_pick = jax.jit(chain_rule.pick)
_pick_blocked = jax.jit(chain_rule._pick_blocked)
_chain_rule = jax.jit(chain_rule.chain_rule, static_argnames="max_size")
_bucketed = jax.jit(chain_rule.chain_rule_bucketed, static_argnames="max_size")
_cumsum = jax.jit(lambda w: jnp.cumsum(w, axis=1))

BELOW_ONE = np.nextafter(np.float32(1), np.float32(0))
"""The largest float32 uniform."""


def test_pad_is_minus_one():
    assert dpp.PAD == chain_rule.PAD == -1


@pytest.mark.parametrize("n", [1, 8, 9, 64, 65, 100, 10_000, 1_000_003])
def test_block_size_covers_n_in_two_levels(n):
    g = chain_rule._block_size(n)
    blocks = -(-n // g)
    assert g >= 8 and g & (g - 1) == 0  # a power of two
    assert math.isqrt(n) <= g < 2 * max(8, math.isqrt(n))  # about sqrt(n) items a block
    assert blocks <= g + 2  # and about sqrt(n) blocks


# ----------------------------------------------------------------------------
# pick: one-level inverse CDF.
# ----------------------------------------------------------------------------


def test_pick_exact_on_binary_weights():
    # Running sums 0, 1, 1, 1, 3, 3, 4, 4 are exact: item i is picked iff
    # c[i-1] <= 4 u < c[i], numpy's searchsorted(side="right").
    w = np.array([0, 1, 0, 0, 2, 0, 1, 0], np.float32)
    u = np.append(np.arange(64, dtype=np.float32) / 64, BELOW_ONE)
    idx = np.asarray(_pick(jnp.asarray(u), jnp.tile(w, (u.size, 1))))
    expected = np.searchsorted(np.cumsum(w), u.astype(np.float64) * 4, side="right")
    np.testing.assert_array_equal(idx, expected)
    assert idx[0] == 1 and idx[-1] == 6  # u = 0 and u -> 1 skip the zero ends
    assert np.all(w[idx] > 0)


def test_pick_law():
    rng = np.random.default_rng(0)
    w = rng.exponential(size=24).astype(np.float32)
    w[rng.permutation(24)[:6]] = 0.0
    w[0] = w[-1] = 0.0
    u = jax.random.uniform(jax.random.key(0), (50_000,))
    idx = np.asarray(_pick(u, jnp.tile(w, (u.size, 1))))
    testing.assert_chi_square(np.bincount(idx, minlength=w.size), w / w.sum())


def _boundary_uniforms(w):
    """Every ``c_i / c_N`` of the kernel's own running sums, and their float neighbours."""
    c = np.asarray(_cumsum(w[None]))[0]
    ratio = (c / c[-1]).astype(np.float32)
    u = np.concatenate(
        [ratio, np.nextafter(ratio, np.float32(1)), np.nextafter(ratio, np.float32(0))]
    )
    return np.unique(np.append(u[(u >= 0) & (u < 1)], [0.0, BELOW_ONE]).astype(np.float32))


def _spiky_weights(n, seed):
    """float32 weights over 16 orders of magnitude, half of them zero."""
    rng = np.random.default_rng(seed)
    w = np.exp(rng.normal(0.0, 4.0, n)).astype(np.float32)
    w[rng.random(n) < 0.5] = 0.0
    w[-1] = 0.0
    return w


# n = 1000: XLA's CPU cumsum is not monotone on float32 rows of a few hundred
# entries; pick must still skip zero weights.
@pytest.mark.parametrize("n", [64, 1000])
def test_pick_never_returns_a_zero_weight_item_at_the_boundaries(n):
    w = _spiky_weights(n, seed=n)
    u = _boundary_uniforms(w)
    idx = np.asarray(_pick(jnp.asarray(u), jnp.tile(w, (u.size, 1))))
    bad = np.flatnonzero(w[idx] == 0)
    assert bad.size == 0, f"u = {u[bad[:3]]} picked zero-weight items {idx[bad[:3]]}"


# ----------------------------------------------------------------------------
# _pick_blocked: a block, then an item; N = 100 is 7 blocks of 16.
# ----------------------------------------------------------------------------

N_BLOCKED = 100


@functools.lru_cache(maxsize=None)
def _blocked_weights():
    """float32[7, 16]: zeros in blocks 0 and 3, scattered zeros, zero padding (100..111)."""
    g = chain_rule._block_size(N_BLOCKED)
    blocks = -(-N_BLOCKED // g)
    assert (g, blocks) == (16, 7)
    rng = np.random.default_rng(1)
    w = rng.exponential(size=blocks * g).astype(np.float32)
    w[rng.random(w.size) < 0.3] = 0.0
    w[0:16] = 0.0  # the first block
    w[48:64] = 0.0  # a middle block
    w[N_BLOCKED:] = 0.0  # the padding
    return w.reshape(blocks, g)


def test_pick_blocked_law():
    w = _blocked_weights()
    u = jax.random.uniform(jax.random.key(1), (common.NUM_DRAWS, 2))
    block, within = _pick_blocked(u, jnp.broadcast_to(w, (common.NUM_DRAWS, *w.shape)))
    idx = np.asarray(block) * w.shape[1] + np.asarray(within)
    flat = w.reshape(-1)
    testing.assert_chi_square(np.bincount(idx, minlength=flat.size), flat / flat.sum())


def test_pick_blocked_never_returns_a_zero_weight_item():
    w = _blocked_weights()
    flat = w.reshape(-1)
    grid = np.append(np.linspace(0, 1, 101, dtype=np.float32)[:-1], [BELOW_ONE])
    # Every pair of a block uniform and an item uniform, including both extremes.
    u = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    block, within = _pick_blocked(jnp.asarray(u), jnp.broadcast_to(w, (u.shape[0], *w.shape)))
    idx = np.asarray(block) * w.shape[1] + np.asarray(within)
    assert np.all(flat[idx] > 0)
    positive = np.flatnonzero(flat > 0)
    assert idx[0] == positive[0]  # u = (0, 0)
    assert idx[-1] == positive[-1] < N_BLOCKED  # u -> (1, 1), before the padding


# ----------------------------------------------------------------------------
# chain_rule on per-draw column subsets.
# ----------------------------------------------------------------------------

N_CHAIN, R_CHAIN = 10, 4  # 10 items: two blocks of 8, the second half padding
SUBSET_A, SUBSET_B = (0, 2, 3), (1,)


@functools.lru_cache(maxsize=None)
def _subset_draws():
    """60,000 draws: 40,000 of V[:, A], 15,000 of V[:, B], 5,000 empty."""
    V = common.basis(N_CHAIN, R_CHAIN, seed=7)
    counts = (40_000, 15_000, 5_000)
    select = np.zeros((sum(counts), R_CHAIN), bool)
    select[: counts[0], list(SUBSET_A)] = True
    select[counts[0] : counts[0] + counts[1], list(SUBSET_B)] = True
    sizes = select.sum(axis=1).astype(np.int32)
    sets = chain_rule.selected_columns(select, 3)
    keys = jax.random.split(jax.random.key(2), select.shape[0])
    items = _chain_rule(keys, jnp.asarray(V, jnp.float32), sets, sizes, max_size=3)
    return V, np.asarray(items), sizes, counts


def test_chain_rule_layout():
    _, items, sizes, _ = _subset_draws()
    assert items.shape == (sizes.size, 3)
    common.assert_valid_draws(items, N_CHAIN, sizes)


def test_chain_rule_laws_of_column_subsets():
    V, items, _, counts = _subset_draws()
    a, b = counts[0], counts[0] + counts[1]
    law_a = reference.projection_law(V[:, list(SUBSET_A)])
    codes_a = reference.set_codes(items[:a])
    testing.assert_chi_square(reference.histogram(codes_a, 2**N_CHAIN), law_a)
    law_b = V[:, SUBSET_B[0]] ** 2
    testing.assert_chi_square(np.bincount(items[a:b, 0], minlength=N_CHAIN), law_b)
    assert np.all(items[b:] == dpp.PAD)


def test_selected_columns():
    select = np.array(
        [[True, False, True, True], [False, False, False, False], [False, True, False, False]]
    )
    sets = np.asarray(chain_rule.selected_columns(jnp.asarray(select), 3))
    assert sets.dtype == np.int32
    np.testing.assert_array_equal(sets[0], [0, 2, 3])
    assert sets[2, 0] == 1  # the entries after a row's size are ignored by the samplers


@pytest.mark.slow  # test_transforms checks the same through vmap on 40 items
def test_bucketed_equals_plain_chain_rule():
    # 16 columns, max_size 8: several widths. 128 draws run as two groups of
    # CHUNK = 64 after sorting by size; every other draw keeps only trailing
    # columns. Then 64 such draws alone: one group whose union, the trailing
    # 8 columns, is compacted onto the narrowest branch. No draw may change.
    assert chain_rule.CHUNK == 64
    V = jnp.asarray(common.basis(16, 16, seed=8), jnp.float32)
    widths = chain_rule.bucket_widths(16, 8)
    assert len(widths) > 1 and widths[0] == 8 and widths[-1] == 16
    rng = np.random.default_rng(3)
    select = rng.random((128, 16)) < 0.45
    select &= np.cumsum(select, axis=1) <= 8  # at most max_size columns each
    select[::2, :8] = False
    select[::2, 8] = True
    sizes = select.sum(axis=1).astype(np.int32)
    assert select.any(axis=0).all()
    assert (select[::2].any(axis=0) == (np.arange(16) >= 8)).all()
    sets = chain_rule.selected_columns(jnp.asarray(select), 8)
    keys = jax.random.split(jax.random.key(3), 128)
    expected = _chain_rule(keys, V, sets, sizes, max_size=8)
    np.testing.assert_array_equal(_bucketed(keys, V, sets, sizes, max_size=8), expected)
    common.assert_valid_draws(expected, 16, sizes)
    # The trailing-column draws alone: one group, compacted to the 8 columns.
    half = jnp.asarray(np.asarray(sets)[::2]), sizes[::2], keys[::2]
    narrow = _bucketed(half[2][:64], V, half[0][:64], half[1][:64], max_size=8)
    np.testing.assert_array_equal(narrow, np.asarray(expected)[::2][:64])
