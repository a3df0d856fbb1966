"""Tests for jaxsampling.kernels.dpp.projection (projection-DPP draws).

100,000 draws from fixed keys: every draw is ``k`` distinct in-range items;
single and pair inclusion counts against ``K_ii`` and ``K_ii K_jj - K_ij^2``
(Binomial, 5 sigma); the law over all ``k``-subsets against ``det(K_S)``
(chi-square) for N = 6 (one block of the two-level inverse CDF) and N = 10
(two blocks); the law of the ordered tuple against ``det(K_S) / k!`` and
each item's position against the uniform (so the order is uniformly random);
the same law in float64.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsampling import testing
from jaxsampling.kernels.dpp import chain_rule
from tests.kernels.dpp import common, reference

K = 3


@functools.lru_cache(maxsize=None)
def _draws(n, seed=0, dtype=jnp.float32):
    V = common.basis(n, K, seed)
    S = common.sample_projection(
        jax.random.key(10 + n), jnp.asarray(V, dtype), num_draws=common.NUM_DRAWS
    )
    return V, np.asarray(S)


def test_block_counts_of_the_cases():
    assert -(-6 // chain_rule._block_size(6)) == 1
    assert -(-10 // chain_rule._block_size(10)) == 2


@pytest.mark.parametrize("n", [6, 10])
def test_every_draw_is_k_distinct_items(n):
    _, S = _draws(n)
    assert S.shape == (common.NUM_DRAWS, K)
    common.assert_valid_draws(S, n, np.full(common.NUM_DRAWS, K))


def test_single_and_pair_inclusions():
    V, S = _draws(10)
    Kmat = V @ V.T
    member = np.zeros((S.shape[0], 10), bool)
    np.put_along_axis(member, S, True, axis=1)
    testing.assert_binomial_count(member.sum(axis=0), S.shape[0], np.diag(Kmat))
    pairs = member.T.astype(np.int64) @ member.astype(np.int64)
    expected = np.outer(np.diag(Kmat), np.diag(Kmat)) - Kmat**2
    iu = np.triu_indices(10, 1)
    testing.assert_binomial_count(pairs[iu], S.shape[0], expected[iu])


@pytest.mark.parametrize("n", [6, 10])
def test_subset_law(n):
    V, S = _draws(n)
    codes = reference.set_codes(S)
    testing.assert_chi_square(reference.histogram(codes, 2**n), reference.projection_law(V))


def test_ordered_law_and_uniform_positions():
    V, S = _draws(6)
    codes = reference.tuple_codes(S, 6)
    testing.assert_chi_square(reference.histogram(codes, 6**K), reference.projection_tuple_law(V))
    # Item i sits at position j with probability K_ii / k.
    at = np.stack([np.bincount(S[:, j], minlength=6) for j in range(K)], axis=1)
    kii = np.sum(V * V, axis=1)
    testing.assert_binomial_count(at, S.shape[0], kii[:, None] / K * np.ones((1, K)))


@pytest.mark.slow
def test_subset_law_float64(x64):
    V, S = _draws(6, seed=1, dtype=jnp.float64)
    common.assert_valid_draws(S, 6, np.full(S.shape[0], K))
    codes = reference.set_codes(S)
    testing.assert_chi_square(reference.histogram(codes, 2**6), reference.projection_law(V))


@pytest.mark.slow
def test_inclusions_on_many_blocks():
    # N = 300: 19 blocks of 16; k = 12.
    n, k, draws = 300, 12, 50_000
    V = common.basis(n, k, seed=2)
    S = np.asarray(
        common.sample_projection(jax.random.key(3), jnp.asarray(V, jnp.float32), num_draws=draws)
    )
    common.assert_valid_draws(S, n, np.full(draws, k))
    member = np.zeros((draws, n), bool)
    np.put_along_axis(member, S, True, axis=1)
    Kmat = V @ V.T
    testing.assert_binomial_count(member.sum(axis=0), draws, np.diag(Kmat))
    pairs = member[:, :40].T.astype(np.int64) @ member[:, :40].astype(np.int64)
    expected = np.outer(np.diag(Kmat), np.diag(Kmat))[:40, :40] - Kmat[:40, :40] ** 2
    iu = np.triu_indices(40, 1)
    testing.assert_binomial_count(pairs[iu], draws, expected[iu])
