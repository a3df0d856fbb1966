"""The rejection chain rule: same law as the matrix-product chain rule.

* the binary search over running sums never lands on a zero-weight item and
  finds the right one on hand-made sums;
* projection, L-ensemble and k-DPP draws with ``method="rejection"`` match the
  exact subset laws (numpy determinants) by chi-square, fixed keys;
* the cost model switches to rejection only for large ``N``; bad methods raise.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsampling import testing
from jaxsampling.kernels import dpp
from jaxsampling.kernels.dpp import rejection
from tests.kernels.dpp import common

NUM_DRAWS = 50_000

sample_projection = jax.jit(
    dpp.sample_projection, static_argnames=("num_draws", "method")
)
sample = jax.jit(dpp.sample, static_argnames=("max_size", "num_draws", "method"))
sample_k = jax.jit(dpp.sample_k, static_argnames=("k", "num_draws", "method"))


def test_search_skips_zero_weights():
    weights = np.array([[0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 1.0, 0.0]])
    sums = jnp.asarray(np.cumsum(weights, axis=1), jnp.float32)
    targets = jnp.asarray([[0.0, 0.5, 0.999, 1.0, 2.5, 2.999, 3.0, 3.5, 3.9999]], jnp.float32)
    cols = jnp.zeros_like(targets, jnp.int32)
    found = np.asarray(rejection._search(sums, cols, targets, 8))
    np.testing.assert_array_equal(found, [[1, 1, 1, 4, 4, 4, 6, 6, 6]])


def test_expected_rounds_matches_the_geometric_law():
    # One proposal per round: a draw of s items needs sum_t s / (s - t) rounds.
    s = 7
    assert rejection.expected_rounds(s, block=1) == pytest.approx(
        sum(s / (s - t) for t in range(s))
    )
    assert rejection.expected_rounds(s, block=8) < rejection.expected_rounds(s, block=1)


def test_cost_model_prefers_rejection_only_for_large_n():
    assert not rejection.prefers_rejection(1_000, 50, 50)
    assert rejection.prefers_rejection(1_000_000, 50, 50)
    with pytest.raises(ValueError, match="method"):
        dpp.sample_projection(jax.random.key(0), common.basis(6, 3), method="tree")


def _subset_counts(sets, n, k):
    combos = list(itertools.combinations(range(n), k))
    index = {c: i for i, c in enumerate(combos)}
    counts = np.zeros(len(combos), np.int64)
    for row in np.sort(np.asarray(sets), axis=1):
        counts[index[tuple(row)]] += 1
    return combos, counts


@pytest.mark.parametrize("n,k", [(6, 3), (20, 2)])
def test_projection_subset_law(n, k):
    V = common.basis(n, k)
    S = sample_projection(jax.random.key(11), jnp.asarray(V, jnp.float32),
                          num_draws=NUM_DRAWS, method="rejection")
    common.assert_valid_draws(S, n)
    combos, counts = _subset_counts(S, n, k)
    K = V @ V.T
    probs = np.array([np.linalg.det(K[np.ix_(c, c)]) for c in combos])
    testing.assert_chi_square(counts, probs / probs.sum())


def test_ensemble_subset_law():
    L = common.likelihood5()
    draw = sample(jax.random.key(12), common.spectrum("likelihood5"),
                  max_size=4, num_draws=NUM_DRAWS, method="rejection")
    common.assert_valid_draws(draw.indices, 5, draw.size)
    subsets = [c for m in range(6) for c in itertools.combinations(range(5), m)]
    index = {c: i for i, c in enumerate(subsets)}
    counts = np.zeros(len(subsets), np.int64)
    for row in np.asarray(draw.indices):
        counts[index[tuple(sorted(row[row >= 0]))]] += 1
    norm = np.linalg.det(np.eye(5) + L)
    probs = np.array([np.linalg.det(L[np.ix_(c, c)]) if c else 1.0 for c in subsets]) / norm
    testing.assert_chi_square(counts, np.clip(probs, 0, None))


def test_k_dpp_subset_law():
    L = common.likelihood6()
    S = sample_k(jax.random.key(13), common.spectrum("likelihood6"), k=3,
                 num_draws=NUM_DRAWS, method="rejection")
    common.assert_valid_draws(S, 6)
    combos, counts = _subset_counts(S, 6, 3)
    probs = np.array([np.linalg.det(L[np.ix_(c, c)]) for c in combos])
    testing.assert_chi_square(counts, probs / probs.sum())


def test_batched_rejection_equals_vmapped_single_draws():
    V = jnp.asarray(common.basis(20, 3), jnp.float32)
    keys = jax.random.split(jax.random.key(3), 8)
    batched = sample_projection(keys, V, method="rejection")
    single = jax.vmap(lambda key: dpp.sample_projection(key, V, method="rejection"))(keys)
    np.testing.assert_array_equal(np.asarray(batched), np.asarray(single))
