"""Tests for jaxsampling.kernels.resampling.

Exact laws on cases small enough to enumerate (chi-square), unbiasedness and
variance ordering with 5-sigma tolerances from the standard error (fixed
keys), float32 edge cases, jit/vmap/sharding invariants and bad input.
"""

import itertools
from collections import Counter

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P
from scipy import stats

from jaxsampling import sharding, testing
from jaxsampling.kernels import resampling

SCHEMES = sorted(resampling.SCHEMES)
NUM_REPS = 20_000
# A generic weight vector (no structure) used by the statistical tests.
W7 = np.array([0.05, 0.31, 0.02, 0.17, 0.11, 0.26, 0.08], np.float32)


def _batched(scheme, weights, num_samples, num_reps=NUM_REPS, seed=0):
    """num_reps independent draws of one scheme, as a numpy int array."""
    fn = resampling.get_scheme(scheme)
    keys = jax.random.split(jax.random.key(seed), num_reps)
    draw = jax.jit(jax.vmap(lambda k: fn(k, weights, num_samples)))
    return np.asarray(draw(keys))


def _counts(ancestors, num_particles):
    """Offspring counts per particle for every row of ancestors."""
    rows = np.arange(ancestors.shape[0])[:, None]
    counts = np.zeros((ancestors.shape[0], num_particles), np.int64)
    np.add.at(counts, (np.broadcast_to(rows, ancestors.shape), ancestors), 1)
    return counts


def _num_samples(scheme, num_particles, default):
    return num_particles if scheme == "killing" else default


def _assert_law(observed_outcomes, law):
    """Chi-square of observed hashable outcomes against {outcome: prob}."""
    outcomes = list(law)
    index = {o: i for i, o in enumerate(outcomes)}
    seen = Counter(observed_outcomes)
    unexpected = [o for o in seen if o not in index]
    assert not unexpected, f"outcomes with probability 0 observed: {unexpected[:3]}"
    observed = np.zeros(len(outcomes))
    for outcome, count in seen.items():
        observed[index[outcome]] = count
    testing.assert_chi_square(observed, [law[o] for o in outcomes])


# ----------------------------------------------------------------------------
# Exact laws, by enumeration.
# ----------------------------------------------------------------------------

W3 = np.array([0.15, 0.5, 0.35], np.float32)


def _count_vectors(num_particles, total):
    for c in itertools.product(range(total + 1), repeat=num_particles):
        if sum(c) == total:
            yield c


def _multinomial_law(weights, total):
    w = np.asarray(weights, np.float64) / np.sum(weights)
    return {
        c: stats.multinomial.pmf(c, total, w) for c in _count_vectors(len(w), total)
    }


def _systematic_law(weights, num_samples, posterior_weight=None):
    """{count vector: prob} by integrating over the shared uniform U."""
    w = np.asarray(weights, np.float64) / np.sum(weights)
    scaled_cdf = num_samples * np.cumsum(w)
    breaks = np.unique(np.concatenate([[0.0, 1.0], np.mod(scaled_cdf, 1.0)]))
    law = Counter()
    for lo, hi in zip(breaks[:-1], breaks[1:]):
        u = 0.5 * (lo + hi)
        before = np.clip(np.ceil(scaled_cdf - u), 0, num_samples)
        counts = tuple(int(c) for c in np.diff(np.concatenate([[0], before])))
        weight = 1.0 if posterior_weight is None else posterior_weight(counts)
        law[counts] += (hi - lo) * weight
    total = sum(law.values())
    return {c: p / total for c, p in law.items() if p > 0}


def _stratified_law(weights, num_samples):
    """{ancestor tuple: prob}; strata are independent."""
    w = np.asarray(weights, np.float64) / np.sum(weights)
    edges = num_samples * np.concatenate([[0.0], np.cumsum(w)])
    per_stratum = []
    for k in range(num_samples):
        overlap = np.clip(np.minimum(edges[1:], k + 1) - np.maximum(edges[:-1], k), 0, 1)
        per_stratum.append(overlap)
    law = {}
    for anc in itertools.product(range(len(w)), repeat=num_samples):
        p = np.prod([per_stratum[k][a] for k, a in enumerate(anc)])
        if p > 0:
            law[anc] = p
    return law


def _residual_law(weights, num_samples):
    w = np.asarray(weights, np.float64) / np.sum(weights)
    copies = np.floor(num_samples * w).astype(int)
    rest = num_samples - copies.sum()
    frac = num_samples * w - copies
    law = _multinomial_law(frac, rest)
    return {tuple(np.add(c, copies)): p for c, p in law.items() if p > 0}


def _killing_law(weights):
    """{count vector: prob}: slot i keeps itself w.p. w_i / max w, else draws."""
    w = np.asarray(weights, np.float64) / np.sum(weights)
    keep = w / w.max()
    law = Counter()
    for anc in itertools.product(range(len(w)), repeat=len(w)):
        p = 1.0
        for i, a in enumerate(anc):
            p *= (1 - keep[i]) * w[a] + (keep[i] if a == i else 0.0)
        law[tuple(np.bincount(anc, minlength=len(w)))] += p
    return {c: p for c, p in law.items() if p > 0}


def test_multinomial_exact_law():
    anc = _batched("multinomial", W3, 4)
    _assert_law(map(tuple, _counts(anc, 3)), _multinomial_law(W3, 4))


def test_systematic_exact_law():
    anc = _batched("systematic", W3, 4)
    _assert_law(map(tuple, _counts(anc, 3)), _systematic_law(W3, 4))


def test_stratified_exact_law():
    anc = _batched("stratified", W3, 3)
    _assert_law(map(tuple, anc), _stratified_law(W3, 3))


def test_residual_exact_law():
    anc = _batched("residual", W3, 4)
    _assert_law(map(tuple, _counts(anc, 3)), _residual_law(W3, 4))


def test_killing_exact_law():
    anc = _batched("killing", W3, 3)
    keep = W3 / W3.max()
    # The heaviest particle always survives in place.
    assert np.all(anc[:, np.argmax(keep)] == np.argmax(keep))
    _assert_law(map(tuple, _counts(anc, 3)), _killing_law(W3))


def test_ssp_exact_law_two_particles():
    # With two particles the fractions sum to 0 or 1: the law is forced.
    w = np.array([0.3, 0.7], np.float32)
    anc = _batched("ssp", w, 5)
    _assert_law(map(tuple, _counts(anc, 2)), {(1, 4): 0.5, (2, 3): 0.5})


def test_conditional_systematic_exact_law():
    # Conditional on particle 0 having an offspring at position 0, the count
    # vector law is the systematic law reweighted by particle 0's count.
    anc = _batched(resampling.conditional_systematic, W3, 4)
    assert np.all(anc[:, 0] == 0)
    law = _systematic_law(W3, 4, posterior_weight=lambda c: c[0])
    _assert_law(map(tuple, _counts(anc, 3)), law)


def test_conditional_multinomial_law():
    anc = _batched(resampling.conditional_multinomial, W3, 4)
    assert np.all(anc[:, 0] == 0)
    _assert_law(map(tuple, _counts(anc[:, 1:], 3)), _multinomial_law(W3, 3))


# ----------------------------------------------------------------------------
# Unbiasedness, conservation, floor/ceil, variance ordering.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
def test_unbiased_and_conserving(scheme):
    num_samples = _num_samples(scheme, len(W7), 10)
    counts = _counts(_batched(scheme, W7, num_samples), len(W7))
    assert np.all(counts.sum(axis=1) == num_samples)
    expected = num_samples * W7.astype(np.float64) / W7.sum()
    testing.assert_mean_close(counts, expected)


@pytest.mark.parametrize("scheme", ["systematic", "ssp"])
def test_counts_within_floor_and_ceil(scheme):
    counts = _counts(_batched(scheme, W7, 10), len(W7))
    expected = 10 * W7.astype(np.float64) / W7.sum()
    assert np.all(counts >= np.floor(expected))
    assert np.all(counts <= np.ceil(expected))


def test_variance_ordering():
    rng = np.random.default_rng(1)
    w = rng.gamma(1.0, size=50).astype(np.float32)
    counts = {
        s: _counts(_batched(s, w, 50, num_reps=4000, seed=i), 50)
        for i, s in enumerate(SCHEMES)
    }
    testing.assert_variance_less(counts["residual"], counts["multinomial"], strict=True)
    testing.assert_variance_less(counts["stratified"], counts["residual"], strict=True)
    testing.assert_variance_less(counts["systematic"], counts["stratified"])
    testing.assert_variance_less(counts["ssp"], counts["residual"], strict=True)


# ----------------------------------------------------------------------------
# Float32 at large N.
# ----------------------------------------------------------------------------


def _long_tailed(num, seed=0):
    u = np.random.default_rng(seed).random(num)
    return ((1.0 - u) ** (-1.0 / 1.1)).astype(np.float32)  # Pareto, alpha 1.1


@pytest.mark.parametrize("value", [0.0, np.nextafter(np.float32(1), np.float32(0))])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_extreme_uniforms(scheme, value, monkeypatch):
    """A float32 uniform of exactly 0 (or 1 - ulp) at either end of every draw."""
    real_uniform = jax.random.uniform

    def pinned_ends(key, shape=(), dtype=jnp.float32, *args, **kwargs):
        u = real_uniform(key, shape, dtype, *args, **kwargs)
        return u if u.ndim == 0 else u.at[0].set(value).at[-1].set(value)

    monkeypatch.setattr(jax.random, "uniform", pinned_ends)
    w = _long_tailed(1000)
    w[::5] = 0.0
    anc = np.asarray(resampling.get_scheme(scheme)(jax.random.key(0), w, 1000))
    assert anc.min() >= 0 and anc.max() < len(w)
    assert np.all(w[anc] > 0), "a zero-weight particle got an offspring"
    counts = np.bincount(anc, minlength=len(w))
    assert counts.sum() == 1000
    if scheme in ("systematic", "ssp"):
        expected = 1000 * w.astype(np.float64) / w.sum()
        assert np.all(counts >= np.floor(expected - 1e-4))
        assert np.all(counts <= np.ceil(expected + 1e-4))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_uniform_zero_still_valid(scheme, monkeypatch):
    """A degenerate generator (all zeros) still yields valid ancestors."""
    monkeypatch.setattr(
        jax.random, "uniform", lambda key, shape=(), dtype=jnp.float32, *a, **k: jnp.zeros(shape, dtype)
    )
    w = np.array([1.0, 0.0, 2.0, 3.0, 0.0], np.float32)
    anc = np.asarray(resampling.get_scheme(scheme)(jax.random.key(0), w, 5))
    assert anc.min() >= 0 and anc.max() < 5 and np.all(w[anc] > 0)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_no_collapse_at_one_million(scheme):
    num = 10**6
    w = _long_tailed(num)
    anc = np.asarray(jax.jit(resampling.get_scheme(scheme), static_argnums=2)(
        jax.random.key(3), w, num
    ))
    assert anc.min() >= 0 and anc.max() < num
    counts = np.bincount(anc, minlength=num)
    assert counts.sum() == num
    expected = num * w.astype(np.float64) / w.astype(np.float64).sum()
    if scheme in ("systematic", "ssp"):
        assert np.all(counts >= np.floor(expected - 1e-4))
        assert np.all(counts <= np.ceil(expected + 1e-4))
    else:
        # Pearson chi-square (cells with expected count >= 5, the rest pooled)
        # against Multinomial(N, w): exact for multinomial, conservative for
        # the others, whose counts vary less. A collapse fails it by miles.
        testing.assert_chi_square(counts, expected / num)


def test_systematic_exact_boundaries_at_ten_million():
    """No float32 drift: counts stay within floor/ceil of N w_i at N = 10**7."""
    num = 10**7
    w = np.random.default_rng(5).random(num).astype(np.float32)
    anc = jax.jit(resampling.systematic, static_argnums=2)(jax.random.key(0), w, num)
    counts = np.bincount(np.asarray(anc), minlength=num)
    expected = num * w.astype(np.float64) / w.astype(np.float64).sum()
    assert counts.sum() == num
    # 1e-3 allows for the float32 rounding of each scaled weight, nothing more.
    assert np.all(counts >= np.floor(expected - 1e-3))
    assert np.all(counts <= np.ceil(expected + 1e-3))


# ----------------------------------------------------------------------------
# Log-weight entry points.
# ----------------------------------------------------------------------------


def test_normalize_and_ess():
    lw = jnp.log(jnp.array([1.0, 3.0, 0.0, 4.0]))
    w, log_mean = resampling.normalize(lw)
    np.testing.assert_allclose(w, [0.125, 0.375, 0.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(log_mean, np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(resampling.ess(lw), 64.0 / 26.0, rtol=1e-6)
    np.testing.assert_allclose(resampling.ess(jnp.zeros(5)), 5.0, rtol=1e-6)
    # Large offsets do not overflow (these shifted values are exact in float32).
    small = jnp.array([0.0, 1.0, -jnp.inf, 2.0])
    w1, log_mean1 = resampling.normalize(small)
    w2, log_mean2 = resampling.normalize(small + 1000.0)
    np.testing.assert_allclose(w2, w1, rtol=1e-6)
    np.testing.assert_allclose(log_mean2, log_mean1 + 1000.0, rtol=1e-6)


def test_nan_log_weight_is_zero_weight():
    lw = jnp.array([0.0, jnp.nan, 0.0, jnp.nan])
    w, _ = resampling.normalize(lw)
    np.testing.assert_allclose(w, [0.5, 0.0, 0.5, 0.0])
    anc, info = resampling.resample(jax.random.key(0), lw, 1000, "multinomial")
    assert set(np.asarray(anc).tolist()) == {0, 2}
    assert bool(info.valid)


def test_all_minus_inf_reported():
    lw = jnp.full(4, -jnp.inf)
    with pytest.raises(ValueError, match="-inf"):
        resampling.resample(jax.random.key(0), lw, 4)
    with pytest.raises(ValueError, match="-inf"):
        resampling.normalize(lw)
    anc, info = jax.jit(resampling.resample, static_argnums=(2, 3))(
        jax.random.key(0), lw, 4, "systematic"
    )
    assert not bool(info.valid)
    assert np.all(np.asarray(anc) == -1)
    assert float(info.log_mean_weight) == -np.inf
    w, log_mean = jax.jit(resampling.normalize)(lw)
    assert np.all(np.isnan(w)) and float(log_mean) == -np.inf


@pytest.mark.parametrize("scheme", SCHEMES)
def test_resample_matches_scheme(scheme):
    w = jnp.asarray(W7)
    key = jax.random.key(4)
    anc, info = resampling.resample(key, jnp.log(w) - 7.0, len(W7), scheme)
    direct = resampling.get_scheme(scheme)(key, w / w.max(), len(W7))
    np.testing.assert_array_equal(anc, direct)
    np.testing.assert_allclose(info.ess, 1.0 / np.sum((W7 / W7.sum()) ** 2), rtol=1e-5)


def test_resample_if_thresholds():
    particles = {"x": jnp.arange(4.0), "y": jnp.arange(8.0).reshape(4, 2)}
    even = jnp.zeros(4)
    skewed = jnp.log(jnp.array([1.0, 0.0, 0.0, 0.0]))
    step = jax.jit(resampling.resample_if, static_argnums=(4,))
    out, lw, did = step(jax.random.key(0), even, particles, 0.5, "systematic")
    assert not bool(did)
    chex.assert_trees_all_equal(out, particles)
    np.testing.assert_array_equal(lw, even)
    out, lw, did = step(jax.random.key(0), skewed, particles, 0.5, "systematic")
    assert bool(did)
    np.testing.assert_array_equal(lw, jnp.zeros(4))
    np.testing.assert_array_equal(out["x"], [0.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(out["y"], np.tile([0.0, 1.0], (4, 1)))
    _, _, did = step(jax.random.key(0), even, particles, float("inf"), "systematic")
    assert bool(did)


def test_resample_if_in_scan():
    def body(carry, key):
        x, lw = carry
        x, lw, did = resampling.resample_if(key, lw - x**2, x, 0.5, "ssp")
        return (x, lw), did

    x0 = jnp.linspace(-3.0, 3.0, 64)
    keys = jax.random.split(jax.random.key(0), 5)
    (x, lw), did = jax.jit(lambda c, k: jax.lax.scan(body, c, k))((x0, jnp.zeros(64)), keys)
    assert did.shape == (5,) and bool(did[0])
    assert jnp.all(jnp.isfinite(lw))


# ----------------------------------------------------------------------------
# Island resampling.
# ----------------------------------------------------------------------------


def _island_estimates(log_weights, num_islands, num_reps, seed):
    """Weighted estimates of E_w[f] with f(i) = sin(i), over many keys."""
    f = jnp.sin(jnp.arange(log_weights.shape[0], dtype=jnp.float32))
    keys = jax.random.split(jax.random.key(seed), num_reps)

    def island_estimate(key):
        anc, lw = resampling.island(key, log_weights, num_islands)
        w = jnp.exp(lw - jax.nn.logsumexp(lw))
        return jnp.sum(w * f[anc])

    def global_estimate(key):
        anc = resampling.systematic(key, jnp.exp(log_weights), log_weights.shape[0])
        return jnp.mean(f[anc])

    run = lambda g: np.asarray(jax.jit(jax.vmap(g))(keys))
    truth = float(jnp.sum(jax.nn.softmax(log_weights) * f))
    return run(island_estimate), run(global_estimate), truth


def test_island_is_unbiased():
    lw = jnp.asarray(np.log(np.random.default_rng(2).gamma(0.5, size=64)), jnp.float32)
    islands, _, truth = _island_estimates(lw, 8, 20_000, seed=0)
    testing.assert_mean_close(islands, truth)


def test_island_variance_trade_off():
    rng = np.random.default_rng(3)
    # Well mixed: islands see similar weights; island resampling costs little.
    mixed = jnp.asarray(np.log(rng.gamma(2.0, size=64)), jnp.float32)
    islands, global_, truth = _island_estimates(mixed, 8, 4000, seed=1)
    testing.assert_mean_close(islands, truth)
    # Clustered: the weight sits in two islands; islands cannot move it.
    clustered = np.log(rng.gamma(2.0, size=64)).astype(np.float32)
    clustered[8:24] += 4.0
    islands_c, global_c, _ = _island_estimates(jnp.asarray(clustered), 8, 4000, seed=1)
    testing.assert_variance_less(global_c, islands_c, strict=True)


def test_island_dead_island_keeps_particles():
    lw = jnp.array([0.0, 1.0, -jnp.inf, -jnp.inf])
    anc, new_lw = resampling.island(jax.random.key(0), lw, 2)
    np.testing.assert_array_equal(np.asarray(anc)[2:], [2, 3])
    assert np.all(np.isneginf(np.asarray(new_lw)[2:]))


# ----------------------------------------------------------------------------
# jit, vmap, sharding, retracing.
# ----------------------------------------------------------------------------

ALL_FUNCTIONS = SCHEMES + ["conditional_multinomial", "conditional_systematic"]


def _fn(name):
    return getattr(resampling, name)


@pytest.mark.parametrize("name", ALL_FUNCTIONS)
def test_jit_and_vmap_match_eager(name):
    fn = _fn(name)
    w = jnp.asarray(np.random.default_rng(0).random((3, 16)), jnp.float32)
    keys = jax.random.split(jax.random.key(0), 3)
    eager = np.stack([np.asarray(fn(k, row, 16)) for k, row in zip(keys, w)])
    jitted = np.stack([
        np.asarray(jax.jit(fn, static_argnums=2)(k, row, 16)) for k, row in zip(keys, w)
    ])
    vmapped = np.asarray(jax.jit(jax.vmap(fn, in_axes=(0, 0, None)), static_argnums=2)(keys, w, 16))
    np.testing.assert_array_equal(jitted, eager)
    np.testing.assert_array_equal(vmapped, eager)


def test_legacy_uint32_keys_work():
    legacy = jax.random.PRNGKey(0)
    typed = jax.random.wrap_key_data(legacy)
    w = jnp.asarray(W7)
    for name in ALL_FUNCTIONS:
        np.testing.assert_array_equal(_fn(name)(legacy, w, 7), _fn(name)(typed, w, 7))


@pytest.mark.multidevice
@pytest.mark.parametrize("name", ALL_FUNCTIONS)
def test_sharded_explicit_mesh_equals_unsharded(name):
    fn = jax.jit(_fn(name), static_argnums=2)
    w = jnp.asarray(np.random.default_rng(0).random(64), jnp.float32)
    key = jax.random.key(7)
    expected = np.asarray(fn(key, w, 64))
    mesh = sharding.batch_mesh()
    with jax.set_mesh(mesh):
        sharded = sharding.shard_batch(w, mesh)
        out = fn(key, sharded, 64)
        assert jax.typeof(out).sharding.spec == P(sharding.BATCH_AXIS)
    np.testing.assert_array_equal(np.asarray(out), expected)


@pytest.mark.multidevice
@pytest.mark.parametrize("name", ALL_FUNCTIONS)
def test_sharded_auto_mesh_equals_unsharded(name):
    w = jnp.asarray(np.random.default_rng(0).random(64), jnp.float32)
    key = jax.random.key(7)
    expected = np.asarray(jax.jit(_fn(name), static_argnums=2)(key, w, 64))
    mesh = sharding.batch_mesh(axis_type=AxisType.Auto)
    spec = NamedSharding(mesh, P(sharding.BATCH_AXIS))
    fn = jax.jit(
        lambda k, w: _fn(name)(k, w, 64),
        in_shardings=(None, spec),
        out_shardings=spec,
    )
    out = fn(key, jax.device_put(w, spec))
    assert out.sharding.spec == P(sharding.BATCH_AXIS)
    np.testing.assert_array_equal(np.asarray(out), expected)


@pytest.mark.multidevice
def test_island_sharded_stays_local_and_equal():
    lw = jnp.asarray(np.log(np.random.default_rng(0).random(64)), jnp.float32)
    key = jax.random.key(1)
    fn = jax.jit(resampling.island, static_argnums=(2, 3))
    expected_anc, expected_lw = fn(key, lw, 8, "systematic")
    mesh = sharding.batch_mesh()
    with jax.set_mesh(mesh):
        anc, new_lw = fn(key, sharding.shard_batch(lw, mesh), 8, "systematic")
        assert jax.typeof(anc).sharding.spec == P(sharding.BATCH_AXIS)
        hlo = fn.lower(key, sharding.shard_batch(lw, mesh), 8, "systematic").compile().as_text()
    np.testing.assert_array_equal(anc, expected_anc)
    np.testing.assert_allclose(new_lw, expected_lw, rtol=1e-6)
    for collective in ("all-gather", "all-to-all", "collective-permute"):
        assert collective not in hlo, collective


@pytest.mark.multidevice
def test_resample_if_sharded_particles():
    mesh = sharding.batch_mesh()
    x = jnp.linspace(-1.0, 1.0, 64)
    lw = -10.0 * x**2
    step = jax.jit(resampling.resample_if, static_argnums=(4,))
    expected = step(jax.random.key(0), lw, x, 0.5, "stratified")
    with jax.set_mesh(mesh):
        out = step(jax.random.key(0), *sharding.shard_batch((lw, x), mesh), 0.5, "stratified")
        assert jax.typeof(out[0]).sharding.spec == P(sharding.BATCH_AXIS)
    chex.assert_trees_all_close(out, expected)


@pytest.mark.parametrize("name", ALL_FUNCTIONS)
def test_no_retrace_on_second_call(name):
    fn = jax.jit(chex.assert_max_traces(_fn(name), n=1), static_argnums=2)
    w = np.random.default_rng(0).random(8).astype(np.float32)
    fn(jax.random.key(0), w, 8)  # numpy input
    fn(jax.random.key(1), jnp.asarray(w) + 1.0, 8)  # jax input, new values
    chex.clear_trace_counter()


def test_log_weight_entry_points_do_not_retrace():
    resample = jax.jit(chex.assert_max_traces(resampling.resample, n=1), static_argnums=(2, 3))
    step = jax.jit(chex.assert_max_traces(resampling.resample_if, n=1), static_argnums=(4,))
    island = jax.jit(chex.assert_max_traces(resampling.island, n=1), static_argnums=(2, 3))
    lw = np.log(np.random.default_rng(0).random(8)).astype(np.float32)
    # New values of every traced argument (the threshold stays a Python float:
    # jit keys its cache on weak types, so 0.5 vs np.float32(0.5) retraces
    # anywhere); a kernel that read a value at trace time would retrace here.
    for i, threshold in enumerate([0.5, 0.7, 0.9]):
        key = jax.random.key(i)
        resample(key, lw + i, 8, "ssp")
        step(key, lw - i, jnp.arange(8.0), threshold, "systematic")
        island(key, jnp.asarray(lw) * (i + 1), 4, "stratified")
    chex.clear_trace_counter()


# ----------------------------------------------------------------------------
# Bad input.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_FUNCTIONS)
def test_bad_shapes_and_dtypes(name):
    fn = _fn(name)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="weights must have shape"):
        fn(key, jnp.ones((2, 3)), 3)
    with pytest.raises(ValueError, match="floating"):
        fn(key, jnp.ones(3, jnp.int32), 3)
    with pytest.raises(ValueError, match="num_samples"):
        fn(key, jnp.ones(3), 0)
    with pytest.raises(ValueError, match="key"):
        fn(jnp.zeros(3, jnp.uint32), jnp.ones(3), 3)
    # Shape errors are raised at trace time too.
    with pytest.raises(ValueError, match="weights must have shape"):
        jax.jit(fn, static_argnums=2)(key, jnp.ones((2, 3)), 3)


@pytest.mark.parametrize("name", ALL_FUNCTIONS)
@pytest.mark.parametrize(
    "bad, match",
    [(-0.5, "non-negative"), (np.nan, "finite"), (np.inf, "finite")],
)
def test_bad_values_raise_when_concrete_and_flag_under_jit(name, bad, match):
    fn = _fn(name)
    w = np.ones(4, np.float32)
    w[2] = bad
    with pytest.raises(ValueError, match=match):
        fn(jax.random.key(0), w, 4)
    flagged = jax.jit(fn, static_argnums=2)(jax.random.key(0), jnp.asarray(w), 4)
    assert np.all(np.asarray(flagged) == -1)


@pytest.mark.parametrize("name", ALL_FUNCTIONS)
def test_all_zero_weights(name):
    fn = _fn(name)
    with pytest.raises(ValueError, match="all zero"):
        fn(jax.random.key(0), np.zeros(4, np.float32), 4)
    flagged = jax.jit(fn, static_argnums=2)(jax.random.key(0), jnp.zeros(4), 4)
    assert np.all(np.asarray(flagged) == -1)


@pytest.mark.parametrize("name", ["conditional_multinomial", "conditional_systematic"])
def test_conditional_needs_positive_reference(name):
    w = np.array([0.0, 1.0, 1.0], np.float32)
    with pytest.raises(ValueError, match=r"weights\[0\]"):
        _fn(name)(jax.random.key(0), w, 3)
    flagged = jax.jit(_fn(name), static_argnums=2)(jax.random.key(0), jnp.asarray(w), 3)
    assert np.all(np.asarray(flagged) == -1)


def test_killing_needs_num_samples_equal_to_particles():
    with pytest.raises(ValueError, match="killing"):
        resampling.killing(jax.random.key(0), jnp.ones(4), 5)


def test_log_weight_entry_points_reject_bad_input():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="log_weights must have shape"):
        resampling.resample(key, jnp.zeros((2, 2)), 2)
    with pytest.raises(ValueError, match=r"\+inf"):
        resampling.resample(key, jnp.array([0.0, jnp.inf]), 2)
    with pytest.raises(ValueError, match="unknown resampling scheme"):
        resampling.resample(key, jnp.zeros(2), 2, "bogus")
    with pytest.raises(ValueError, match="divide"):
        resampling.island(key, jnp.zeros(6), 4)
    with pytest.raises(ValueError, match="leading axis"):
        resampling.resample_if(key, jnp.zeros(4), jnp.zeros(3), 0.5)


# ----------------------------------------------------------------------------
# Support, M != N, traced draw counts, flags from the log-weight entry points.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_FUNCTIONS)
def test_zero_weights_never_get_offspring(name):
    rng = np.random.default_rng(4)
    w = rng.random(4096).astype(np.float32)
    w[rng.random(4096) < 0.5] = 0.0
    w[0] = 1.0  # the conditional schemes need a positive reference
    w[-40:] = 0.0  # trailing zeros: the last boundary must not land there
    fn = jax.jit(jax.vmap(lambda k: _fn(name)(k, w, 4096)))
    anc = np.asarray(fn(jax.random.split(jax.random.key(5), 200)))
    assert np.all(w[anc] > 0)


@pytest.mark.parametrize("scheme", [s for s in SCHEMES if s != "killing"])
def test_unbiased_with_fewer_samples_than_particles(scheme):
    counts = _counts(_batched(scheme, W7, 5, seed=11), len(W7))
    assert np.all(counts.sum(axis=1) == 5)
    testing.assert_mean_close(counts, 5 * W7.astype(np.float64) / W7.sum())


def test_traced_draw_counts_of_zero():
    # Residual with integer N w_i keeps everything deterministically (R = 0);
    # killing with equal weights keeps every particle (no draws).
    w = np.array([2.0, 1.0, 1.0, 0.0], np.float32)
    np.testing.assert_array_equal(
        jax.jit(resampling.residual, static_argnums=2)(jax.random.key(0), w, 4),
        [0, 0, 1, 2],
    )
    np.testing.assert_array_equal(
        jax.jit(resampling.killing, static_argnums=2)(jax.random.key(0), jnp.ones(5), 5),
        np.arange(5),
    )


def test_conditional_systematic_keeps_reference_when_it_underflows():
    w = np.array([1e-30, 1e30, 1e30], np.float32)
    anc = resampling.conditional_systematic(jax.random.key(0), w, 4)
    assert int(anc[0]) == 0


def test_resample_reports_a_rejected_reference():
    lw = jnp.array([-jnp.inf, 0.0, 1.0, 2.0])
    anc, info = jax.jit(resampling.resample, static_argnums=(2, 3))(
        jax.random.key(0), lw, 4, resampling.conditional_systematic
    )
    assert not bool(info.valid) and np.all(np.asarray(anc) == -1)
    x = jnp.arange(4.0)
    step = jax.jit(resampling.resample_if, static_argnums=(4,))
    x2, lw2, did = step(jax.random.key(0), lw, x, 2.0, resampling.conditional_systematic)
    assert not bool(did)
    np.testing.assert_array_equal(x2, x)
    assert np.all(np.isnan(np.asarray(lw2)))


def test_island_infinite_log_weight():
    lw = jnp.array([0.0, 1.0, jnp.inf, 0.0])
    with pytest.raises(ValueError, match=r"\+inf"):
        resampling.island(jax.random.key(0), lw, 2)
    anc, new_lw = jax.jit(resampling.island, static_argnums=(2, 3))(
        jax.random.key(0), lw, 2, "systematic"
    )
    anc, new_lw = np.asarray(anc), np.asarray(new_lw)
    assert np.all(anc[2:] == -1) and np.all(np.isnan(new_lw[2:]))
    assert np.all((anc[:2] >= 0) & (anc[:2] < 2)) and np.all(np.isfinite(new_lw[:2]))


@pytest.mark.multidevice
def test_island_straddling_devices_on_explicit_mesh():
    lw = jnp.asarray(np.log(np.random.default_rng(0).random(64)), jnp.float32)
    fn = jax.jit(resampling.island, static_argnums=(2, 3))
    expected = fn(jax.random.key(1), lw, 4, "systematic")
    mesh = sharding.batch_mesh()
    with jax.set_mesh(mesh):
        out = fn(jax.random.key(1), sharding.shard_batch(lw, mesh), 4, "systematic")
        assert jax.typeof(out[0]).sharding.spec == P(sharding.BATCH_AXIS)
    chex.assert_trees_all_close(out, expected)
