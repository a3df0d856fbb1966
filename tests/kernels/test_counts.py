"""Tests for the count-space arithmetic behind the resamplers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxsampling.kernels import _counts


@pytest.mark.parametrize("length", [1, 15, 16, 17, 1000, 65_537])
def test_cumsum_integers_exact_on_both_paths(length):
    x = np.random.default_rng(length).integers(0, 50, length).astype(np.int32)
    expected = np.cumsum(x)
    fast = jax.jit(lambda x: _counts.cumsum(x, total_bound=50 * length))(x)
    exact_int = jax.jit(lambda x: _counts.cumsum(x))(x)
    np.testing.assert_array_equal(fast, expected)
    np.testing.assert_array_equal(exact_int, expected)


def test_cumsum_integers_above_float32_range_take_the_int_path():
    x = np.full(1000, 40_000, np.int32)  # total 4e7 > 2**24
    out = _counts.cumsum(jnp.asarray(x), total_bound=int(4e7))
    np.testing.assert_array_equal(out, np.cumsum(x))


def test_cumulative_counts_exact_at_ten_million_scale():
    num = 2_000_003
    w = np.random.default_rng(0).gamma(0.3, size=num).astype(np.float32)
    w[::7] = 0.0
    scale = 10**7
    scaled = _counts.scaled_weights(jnp.asarray(w), scale)
    whole, phi = jax.jit(_counts.cumulative_counts, static_argnums=1)(scaled, scale)
    whole, phi = np.asarray(whole, np.int64), np.asarray(phi, np.float64)
    assert np.all((phi >= 0) & (phi < 1))
    # Exactly the prefix sums of the weights rounded to 2**-19 (fixed point).
    a = np.asarray(scaled, np.float64)
    units = np.floor(a) * 2**19 + np.round((a - np.floor(a)) * 2**19)
    expected = np.cumsum(units.astype(np.int64))
    np.testing.assert_array_equal(whole * 2**19 + np.round(phi * 2**19), expected)
    # Zero weights repeat their predecessor's boundary exactly.
    zero = np.flatnonzero(w[1:] == 0) + 1
    np.testing.assert_array_equal(whole[zero], whole[zero - 1])
    np.testing.assert_array_equal(phi[zero], phi[zero - 1])
    # The rounding stays far below one offspring, where a flat float32
    # running sum is off by whole offspring at this scale.
    reference = np.cumsum(a)
    assert np.max(np.abs(whole + phi - reference)) < 1e-2
    flat = np.cumsum(np.asarray(scaled), dtype=np.float32)
    assert np.max(np.abs(flat - reference)) > 0.1


def test_sorted_points_are_sorted_uniform_order_statistics():
    num = 20_000
    units, offsets = jax.jit(_counts.sorted_points, static_argnums=(1, 2))(
        jax.random.key(0), num, num
    )
    points = np.asarray(units, np.float64) + np.asarray(offsets, np.float64)
    assert np.all(np.diff(points) >= 0)
    assert points.min() >= 0 and points.max() < num
    # The sorted sample of N uniforms on [0, N): a KS test of the values.
    assert stats.kstest(points / num, "uniform").pvalue > 1e-6


def test_sorted_points_with_fewer_live_points():
    units, offsets = _counts.sorted_points(jax.random.key(1), jnp.int32(5), 12)
    units = np.asarray(units)
    assert np.all(units[5:] == 12) and np.all(units[:5] < 5)
    assert np.all(np.diff(units[:5] + np.asarray(offsets)[:5]) >= 0)


def _brute_count(whole, phi, units, offsets):
    b = np.asarray(whole, np.float64) + np.asarray(phi, np.float64)
    p = np.asarray(units, np.float64) + np.asarray(offsets, np.float64)
    return np.array([(p < x).sum() for x in b])


def test_count_below_matches_brute_force_including_crowded_units():
    rng = np.random.default_rng(3)
    # 30 points crowd unit 2 (five bisection rounds), a few
    # elsewhere; boundaries fall in crowded, sparse and empty units.
    offsets_crowded = np.sort(rng.random(30))
    units = np.array([0, 0, 1] + [2] * 30 + [4, 6], np.int32)
    offsets = np.concatenate([[0.2, 0.7, 0.5], offsets_crowded, [0.1, 0.9]])
    whole = np.array([0, 0, 1, 2, 2, 2, 2, 3, 5, 6, 7], np.int32)
    phi = np.array([0.1, 0.8, 0.5, 0.0, 0.33, 0.9, 0.999, 0.5, 0.5, 0.95, 0.0])
    phi = phi.astype(np.float32)
    got = _counts.count_below(
        jnp.asarray(whole), jnp.asarray(phi), jnp.asarray(units),
        jnp.asarray(offsets, jnp.float32), 8,
    )
    np.testing.assert_array_equal(got, _brute_count(whole, phi, units, offsets))


def test_ancestors_from_boundaries():
    before = jnp.array([2, 2, 5, 6], jnp.int32)
    np.testing.assert_array_equal(
        _counts.ancestors_from_boundaries(before, 6), [0, 0, 2, 2, 2, 3]
    )
