"""Tests for jaxsampling.kernels.smc.engine.

Exact answers on models small enough to work out by hand (constant and
deterministic potentials, hand-built weights for the resampling decision,
waste-free steps), unbiasedness of ``Z_hat`` on an enumerable hidden Markov
chain (5 sigma, fixed keys; every resampling scheme under ``-m slow``), jit/vmap
equivalence, sharded equals unsharded on Explicit and Auto meshes, no
retrace, and bad input (trace-time errors, flags under jit, errors when
concrete).
"""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxsampling import sharding, testing
from jaxsampling.kernels import resampling, smc

SCHEMES = sorted(resampling.SCHEMES)


def _random_walk_model(shift=0.0):
    """A continuous model: AR(1) moves, Gaussian potentials moving with t."""
    return smc.FeynmanKac(
        init=lambda key, n: jax.random.normal(key, (n,)),
        mutate=lambda key, t, x: 0.9 * x + jax.random.normal(key, x.shape, x.dtype),
        log_potential=lambda t, prev, x: -0.5 * (x - shift - 0.1 * t) ** 2,
        initial_log_potential=lambda x: -0.5 * (x - shift) ** 2,
    )


def _identity_model():
    """Particles arange(n) that never move, every potential 1."""
    return smc.FeynmanKac(
        init=lambda key, n: jnp.arange(n, dtype=jnp.float32),
        mutate=lambda key, t, x: x,
        log_potential=lambda t, prev, x: jnp.zeros(x.shape[0]),
    )


def _mean(x, w):
    return jnp.sum(w * x)


# ----------------------------------------------------------------------------
# Exact answers.
# ----------------------------------------------------------------------------


def test_constant_potentials_give_exact_log_normalizer():
    """G_t = exp(c_t): log Z = sum_t c_t, uniform weights, ESS = N.

    The threshold 1 resamples at every step (even at ESS = N), which must not
    change any of this.
    """
    n, num_steps, ess_threshold = 16, 5, 1.0
    c = jnp.array([0.3, -1.2, 2.5, 0.0, -0.7, 1.1], jnp.float32)
    model = smc.FeynmanKac(
        init=lambda key, n: jax.random.normal(key, (n, 2)),
        mutate=lambda key, t, x: x + jax.random.normal(key, x.shape),
        log_potential=lambda t, prev, x: jnp.full(x.shape[0], c[t]),
        initial_log_potential=lambda x: jnp.full(x.shape[0], c[0]),
    )
    run = jax.jit(
        lambda key: smc.run(key, model, n, num_steps, ess_threshold=ess_threshold)
    )
    state, info, _ = run(jax.random.key(0))
    # float32: each increment is c_t up to a few ulps of log(N).
    np.testing.assert_allclose(info.log_normalizer_increment, c, rtol=0, atol=1e-6)
    np.testing.assert_allclose(state.log_normalizer, float(np.sum(c)), atol=1e-5)
    np.testing.assert_array_equal(info.ess, np.full(num_steps + 1, float(n)))
    np.testing.assert_allclose(state.log_weights, np.full(n, -math.log(n)), atol=1e-6)
    assert bool(info.valid.all())
    np.testing.assert_array_equal(info.resampled, [False] + [True] * num_steps)


def test_deterministic_model_exact_normalizer_weights_and_ess():
    """No resampling, deterministic moves: everything is computable by hand.

    Particle i starts at i % 3 and moves x -> (x + 1) % 3; the potentials
    G_t(prev, x) = g[t, x] h[prev] read both states, and g has a zero (a
    -inf log-potential is a zero weight, not an error).
    """
    n, k, num_steps = 6, 3, 3
    g = np.array(
        [[1.0, 0.5, 2.0], [0.3, 0.0, 1.7], [2.2, 0.8, 0.4], [1.1, 0.6, 0.9]]
    )
    h = np.array([1.0, 2.0, 0.5])
    log_g = jnp.log(jnp.asarray(g, jnp.float32))
    log_h = jnp.log(jnp.asarray(h, jnp.float32))
    model = smc.FeynmanKac(
        init=lambda key, n: jnp.arange(n, dtype=jnp.int32) % k,
        mutate=lambda key, t, x: (x + 1) % k,
        log_potential=lambda t, prev, x: log_g[t, x] + log_h[prev],
        initial_log_potential=lambda x: log_g[0, x],
    )
    run = jax.jit(lambda key: smc.run(key, model, n, num_steps, ess_threshold=0.0))
    state, info, _ = run(jax.random.key(0))

    # By hand, in float64: unnormalised weights w_i after each step.
    paths = (np.arange(n)[:, None] + np.arange(num_steps + 1)[None, :]) % k
    w = g[0, paths[:, 0]]
    increments, ess = [np.log(w.mean())], [w.sum() ** 2 / (w**2).sum()]
    for t in range(1, num_steps + 1):
        potential = g[t, paths[:, t]] * h[paths[:, t - 1]]
        increments.append(np.log(np.sum(w * potential) / w.sum()))
        w = w * potential
        ess.append(w.sum() ** 2 / (w**2).sum())
    np.testing.assert_allclose(info.log_normalizer_increment, increments, rtol=1e-5)
    # No resampling: Z_hat = mean_i prod_t G_t(i), and the weights are w / sum w.
    np.testing.assert_allclose(state.log_normalizer, np.log(w.mean()), rtol=1e-5)
    np.testing.assert_allclose(np.exp(state.log_weights), w / w.sum(), atol=1e-6)
    np.testing.assert_allclose(info.ess, ess, rtol=1e-5)
    np.testing.assert_array_equal(state.particles, paths[:, -1])
    assert not bool(info.resampled.any()) and bool(info.valid.all())


@functools.cache
def _identity_step(ess_threshold):
    """A jitted step of the identity model (cached: one compile per threshold)."""
    model = _identity_model()
    return jax.jit(
        lambda key, state: smc.step(key, state, model, 1, ess_threshold=ess_threshold)
    )


def _weights_state(weights):
    w = jnp.asarray(weights, jnp.float32)
    n = w.shape[0]
    x = jnp.arange(n, dtype=jnp.float32)
    return smc.State(x, jnp.log(w / w.sum()), jnp.float32(0.0))


@pytest.mark.parametrize(
    "weights, ess_threshold, resamples",
    [
        ([0.7, 0.1, 0.1, 0.1], 0.5, True),  # ESS = 1 / 0.52 = 1.92 < 2
        ([0.6, 0.2, 0.2, 0.0], 0.5, False),  # ESS = 1 / 0.44 = 2.27 > 2
        ([0.5, 0.5, 0.0, 0.0], 0.5, False),  # ESS = 2 exactly: the test is strict
        ([1.0, 0.0, 0.0, 0.0], 0.0, False),  # 0 never resamples, even at ESS = 1
        ([0.25, 0.25, 0.25, 0.25], 1.0, True),  # >= 1 resamples even at ESS = N
    ],
)
def test_resampling_decision(weights, ess_threshold, resamples):
    """Resample exactly when ESS < ess_threshold * N (every step when >= 1)."""
    state = _weights_state(weights)
    w = np.asarray(weights, np.float64) / np.sum(weights)
    new, info = _identity_step(ess_threshold)(jax.random.key(3), state)
    assert bool(info.resampled) == resamples
    assert bool(info.valid)
    np.testing.assert_allclose(info.log_normalizer_increment, 0.0, atol=1e-6)
    if resamples:
        # Uniform weights; every particle descends from one of positive weight.
        np.testing.assert_allclose(new.log_weights, np.full(4, -math.log(4)), atol=1e-6)
        assert np.all(w[np.asarray(new.particles).astype(int)] > 0)
        np.testing.assert_allclose(info.ess, 4.0, rtol=1e-6)
    else:
        np.testing.assert_array_equal(new.particles, state.particles)
        np.testing.assert_allclose(np.exp(new.log_weights), w, atol=1e-6)
        np.testing.assert_allclose(info.ess, 1.0 / np.sum(w**2), rtol=1e-5)


def test_resampling_a_single_particle_of_weight_one():
    """Threshold >= 1 with all the weight on particle 2: every copy is particle 2."""
    state = _weights_state([0.0, 0.0, 1.0, 0.0])
    new, info = _identity_step(1.0)(jax.random.key(0), state)
    assert bool(info.resampled)
    np.testing.assert_array_equal(new.particles, [2.0, 2.0, 2.0, 2.0])


@functools.cache
def _waste_free_model(num_particles):
    """mutate maps M ancestors to N particles: chain j of ancestor a is a + j / 10."""

    def mutate(key, t, x):
        chain = num_particles // x.shape[0]
        offsets = jnp.tile(jnp.arange(chain, dtype=x.dtype) / 10, x.shape[0])
        return jnp.repeat(x, chain) + offsets

    return smc.FeynmanKac(
        init=lambda key, n: jnp.arange(n, dtype=jnp.float32),
        mutate=mutate,
        log_potential=lambda t, prev, x: 0.5 * x,
    )


@functools.cache
def _waste_free_step(model, ess_threshold=0.0):
    return jax.jit(
        lambda key, s: smc.step(
            key, s, model, 1, ess_threshold=ess_threshold, num_ancestors=2
        )
    )


def test_waste_free_step():
    """num_ancestors = M: M ancestors by weight, mutate -> N, uniform weights.

    Waste-free steps resample whatever the threshold (here 0, "never").
    """
    n, m = 8, 2
    model = _waste_free_model(n)
    # Weights 1/4 on particle 1 and 3/4 on particle 5: systematic with M = 2
    # has expected counts M W = (0.5, 1.5), so particle 5 gets 1 or 2 copies.
    state = _weights_state([0.0, 0.25, 0.0, 0.0, 0.0, 0.75, 0.0, 0.0])
    new, info = _waste_free_step(model)(jax.random.key(1), state)
    assert bool(info.resampled)  # always, whatever the threshold
    x = np.asarray(new.particles)
    assert x.shape == (n,) and new.log_weights.shape == (n,)
    ancestors = x[:: n // m]
    assert set(ancestors.tolist()) <= {1.0, 5.0} and 5.0 in ancestors
    chains = np.repeat(ancestors, 4) + np.tile(np.arange(4) / 10, 2)
    np.testing.assert_allclose(x, chains)
    # Weights: uniform over the N new particles, then times G = exp(x / 2).
    g = np.exp(0.5 * x.astype(np.float64))
    np.testing.assert_allclose(np.exp(new.log_weights), g / g.sum(), rtol=1e-5)
    np.testing.assert_allclose(
        info.log_normalizer_increment, np.log(g.mean()), rtol=1e-5
    )
    np.testing.assert_allclose(info.ess, g.sum() ** 2 / (g**2).sum(), rtol=1e-5)


def test_waste_free_constant_potential_pytree():
    """Pytree particles, constant potential: weights exactly uniform, ESS = N."""
    n, m = 12, 3

    def mutate(key, t, x):
        return jax.tree.map(lambda leaf: jnp.repeat(leaf, n // m, axis=0), x)

    model = smc.FeynmanKac(
        init=lambda key, n: {"a": jnp.zeros(n), "b": jnp.ones((n, 2), jnp.int32)},
        mutate=mutate,
        log_potential=lambda t, prev, x: jnp.full(x["a"].shape[0], -0.25),
    )
    state = smc.State(
        {"a": jnp.arange(n, dtype=jnp.float32), "b": jnp.ones((n, 2), jnp.int32)},
        jax.nn.log_softmax(jnp.arange(n, dtype=jnp.float32)),  # any weights
        jnp.float32(0.0),
    )
    new, info = jax.jit(lambda key, s: smc.step(key, s, model, 1, num_ancestors=m))(
        jax.random.key(1), state
    )
    assert new.particles["a"].shape == (n,) and new.particles["b"].shape == (n, 2)
    assert new.particles["b"].dtype == jnp.int32
    np.testing.assert_allclose(new.log_weights, np.full(n, -math.log(n)), atol=1e-6)
    np.testing.assert_allclose(info.ess, n, rtol=1e-6)
    np.testing.assert_allclose(new.log_normalizer, -0.25, atol=1e-6)


def test_track_is_stacked_with_leading_axis_t_plus_one_and_zero_steps():
    n, num_steps = 8, 4
    model = smc.FeynmanKac(
        init=lambda key, n: {
            "a": jax.random.normal(key, (n,)),
            "b": jax.random.normal(key, (n, 3)),
        },
        mutate=lambda key, t, x: jax.tree.map(
            lambda leaf: leaf + jax.random.normal(key, leaf.shape), x
        ),
        log_potential=lambda t, prev, x: -0.5 * x["a"] ** 2,
        initial_log_potential=lambda x: -0.5 * x["a"] ** 2,
    )

    def track(x, w):
        return {"mean": jax.tree.map(lambda leaf: jnp.tensordot(w, leaf, 1), x), "w": w}

    key = jax.random.key(5)
    run = jax.jit(lambda k: smc.run(k, model, n, num_steps, track=track))
    state, info, tracked = run(key)
    assert tracked["mean"]["a"].shape == (num_steps + 1,)
    assert tracked["mean"]["b"].shape == (num_steps + 1, 3)
    assert tracked["w"].shape == (num_steps + 1, n)
    for field in info:
        assert field.shape == (num_steps + 1,)
    w = np.asarray(tracked["w"], np.float64)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-5)
    # Row t is the state after step t: its weights give Info.ess[t].
    np.testing.assert_allclose(info.ess, 1.0 / np.sum(w**2, axis=1), rtol=1e-4)
    np.testing.assert_allclose(w[-1], np.exp(state.log_weights), rtol=1e-6)
    np.testing.assert_allclose(
        tracked["mean"]["b"][-1], w[-1] @ state.particles["b"], rtol=1e-5, atol=1e-6
    )
    assert jax.eval_shape(lambda k: smc.run(k, model, n, num_steps), key)[2] is None
    # num_steps = 0 runs only init (the same draw): leading axis 1, and row 0
    # of the longer run.
    run0 = jax.jit(lambda k: smc.run(k, model, n, 0, track=track))
    state0, info0, tracked0 = run0(key)
    assert info0.ess.shape == (1,) and tracked0["w"].shape == (1, n)
    np.testing.assert_allclose(tracked0["w"][0], np.exp(state0.log_weights), rtol=1e-6)
    np.testing.assert_allclose(tracked0["w"][0], w[0], rtol=1e-6)
    np.testing.assert_allclose(
        tracked0["mean"]["b"], tracked["mean"]["b"][:1], rtol=1e-6
    )
    assert not bool(info0.resampled[0]) and not bool(info.resampled[0])


# ----------------------------------------------------------------------------
# Unbiasedness on an enumerable hidden Markov chain.
# ----------------------------------------------------------------------------

# A 3-state chain observed for 4 steps (t = 0..3), potentials g[t, x].
HMM_P0 = np.array([0.5, 0.3, 0.2])
HMM_P = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.3, 0.3, 0.4]])
HMM_G = np.array(
    [[1.0, 0.2, 2.0], [0.5, 1.5, 0.1], [2.0, 0.3, 0.7], [0.4, 1.0, 1.8]]
)
HMM_REPS = 20_000


def _hmm_exact():
    """Forward algorithm: Z and Q_T (the law of x_T under the Feynman-Kac measure)."""
    alpha = HMM_P0 * HMM_G[0]
    for t in range(1, HMM_G.shape[0]):
        alpha = (alpha @ HMM_P) * HMM_G[t]
    return alpha.sum(), alpha / alpha.sum()


def _hmm_model():
    log_p0 = jnp.log(jnp.asarray(HMM_P0, jnp.float32))
    log_p = jnp.log(jnp.asarray(HMM_P, jnp.float32))
    log_g = jnp.log(jnp.asarray(HMM_G, jnp.float32))
    return smc.FeynmanKac(
        init=lambda key, n: jax.random.categorical(key, log_p0, shape=(n,)),
        mutate=lambda key, t, x: jax.random.categorical(key, log_p[x]),
        log_potential=lambda t, prev, x: log_g[t, x],
        initial_log_potential=lambda x: log_g[0, x],
    )


@pytest.mark.parametrize(
    "scheme, ess_threshold",
    # 0.8 resamples at ~70% of the steps here: a step that resampled but kept
    # the old weights shows as a ~10 sigma bias (at 0.5, ~15% and ~2 sigma).
    [("systematic", 0.8)]
    # The schemes' own laws are tested in test_resampling.py; here, slow.
    + [
        pytest.param("systematic", t, marks=pytest.mark.slow)
        for t in (0.0, 0.5, 1.0)
    ]
    + [
        pytest.param(s, 1.0, marks=pytest.mark.slow)
        for s in SCHEMES
        if s != "systematic"
    ],
)
def test_normalizer_and_unnormalised_measure_unbiased(scheme, ess_threshold):
    """E[Z_hat] = Z and E[Z_hat sum_i W_i 1{x_i = k}] = Z Q_T(k), for N = 4.

    Z and Q_T come from the forward algorithm; the tolerance is 5 standard
    errors estimated from 20000 independent runs (a ``lax.map``: it compiles
    in half the time of a ``vmap``, which the jit/vmap test covers).
    """
    z, q = _hmm_exact()
    num_steps = HMM_G.shape[0] - 1
    model = _hmm_model()

    def one(key):
        state, info, _ = smc.run(
            key, model, 4, num_steps, scheme=scheme, ess_threshold=ess_threshold
        )
        w = jnp.exp(state.log_weights)
        histogram = jnp.zeros(3).at[state.particles].add(w)
        return state.log_normalizer, histogram, info.resampled

    keys = jax.random.split(jax.random.key(11), HMM_REPS)
    log_z, histogram, resampled = jax.jit(lambda keys: jax.lax.map(one, keys))(keys)
    ratio = np.exp(np.asarray(log_z, np.float64)) / z
    testing.assert_mean_close(ratio, 1.0)
    testing.assert_mean_close(ratio[:, None] * np.asarray(histogram, np.float64), q)
    resampled = np.asarray(resampled)
    assert not resampled[:, 0].any()
    if ess_threshold >= 1.0:
        assert resampled[:, 1:].all()
    elif ess_threshold == 0.0:
        assert not resampled.any()
    else:
        assert resampled.any() and not resampled.all()


# ----------------------------------------------------------------------------
# jit, vmap, keys, retracing.
# ----------------------------------------------------------------------------


def _close(a, b):
    """Float leaves to float32 precision, bool and int leaves exactly."""

    def check(x, y):
        x, y = np.asarray(x), np.asarray(y)
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_array_equal(x, y)

    jax.tree.map(check, a, b)


def test_vmap_over_keys_matches_per_key_jit_runs():
    """(Eager equals jit: test_poisoned_model_valid_run_eager_equals_jit.)"""
    model = _random_walk_model()
    run = jax.jit(lambda k: smc.run(k, model, 32, 6, ess_threshold=0.7, track=_mean))
    keys = jax.random.split(jax.random.key(0), 3)
    jitted = [run(k) for k in keys]
    vmapped = jax.jit(jax.vmap(run))(keys)
    assert all(bool(j[1].resampled.any()) for j in jitted)  # resampling exercised
    for i in range(3):
        _close(jax.tree.map(lambda x: x[i], vmapped), jitted[i])


def test_no_retrace_on_second_call():
    def run(key, shift):
        return smc.run(key, _random_walk_model(shift), 16, 4, track=_mean)

    def step(key, state, shift):
        return smc.step(key, state, _random_walk_model(shift), 1, ess_threshold=1.0)

    run = jax.jit(chex.assert_max_traces(run, n=1))
    step = jax.jit(chex.assert_max_traces(step, n=1))
    for i in range(3):
        shift = jnp.float32(0.5 * i)
        state, _, _ = run(jax.random.key(i), shift)
        step(jax.random.key(i), state, shift + 1.0)
    chex.clear_trace_counter()


# ----------------------------------------------------------------------------
# Sharding.
# ----------------------------------------------------------------------------

N_SHARDED = 64


def _sharded_model(constrain):
    """The random-walk model whose initial particles pass through ``constrain``."""
    base = _random_walk_model()
    return base._replace(init=lambda key, n: constrain(base.init(key, n)))


def _run_sharded_case(model):
    key = jax.random.key(9)
    return smc.run(key, model, N_SHARDED, 6, ess_threshold=0.7, track=_mean)


@functools.cache
def _unsharded_run():
    """The reference for both mesh types (computed once)."""
    out = jax.jit(_run_sharded_case, static_argnums=0)(_sharded_model(lambda x: x))
    assert bool(out[1].resampled.any()) and not bool(out[1].resampled.all())
    return out


@pytest.mark.multidevice
def test_run_sharded_explicit_mesh_equals_unsharded():
    run = jax.jit(_run_sharded_case, static_argnums=0)
    expected = _unsharded_run()
    mesh = sharding.batch_mesh()
    with jax.set_mesh(mesh):
        out = run(_sharded_model(lambda x: jax.reshard(x, P(sharding.BATCH_AXIS))))
        assert jax.typeof(out[0].particles).sharding.spec == P(sharding.BATCH_AXIS)
        assert jax.typeof(out[0].log_weights).sharding.spec == P(sharding.BATCH_AXIS)
    _close(out, expected)


@pytest.mark.multidevice
def test_run_sharded_auto_mesh_equals_unsharded():
    expected = _unsharded_run()
    mesh = sharding.batch_mesh(axis_type=AxisType.Auto)
    spec = NamedSharding(mesh, P(sharding.BATCH_AXIS))
    model = _sharded_model(lambda x: jax.lax.with_sharding_constraint(x, spec))
    out = jax.jit(_run_sharded_case, static_argnums=0)(model)
    assert out[0].particles.sharding.spec == P(sharding.BATCH_AXIS)
    assert out[0].log_weights.sharding.spec == P(sharding.BATCH_AXIS)
    _close(out, expected)


def _sharded_step_model(num_particles):
    """Random-walk moves; waste-free ready (repeats M ancestors to N on any mesh)."""

    def mutate(key, t, x):
        axis = sharding.explicit_batch_axis(x)
        x = sharding.unshard(x)
        x = sharding.reshard_like(jnp.repeat(x, num_particles // x.shape[0]), axis)
        return x + jax.random.normal(key, x.shape, x.dtype)

    return _random_walk_model()._replace(mutate=mutate)


def _step_state():
    x = jax.random.normal(jax.random.key(0), (N_SHARDED,))
    return smc.State(x, jax.nn.log_softmax(-(x**2)), jnp.float32(-1.5))


@pytest.mark.slow
@pytest.mark.multidevice
def test_waste_free_step_on_sharded_state_explicit_mesh():
    """Waste-free: 16 ancestors gathered across devices, mutated back to 64."""
    model = _sharded_step_model(N_SHARDED)
    step = jax.jit(lambda key, s: smc.step(key, s, model, 1, num_ancestors=16))
    state = _step_state()
    expected = step(jax.random.key(1), state)
    mesh = sharding.batch_mesh()
    with jax.set_mesh(mesh):
        sharded = state._replace(
            particles=sharding.shard_batch(state.particles, mesh),
            log_weights=sharding.shard_batch(state.log_weights, mesh),
        )
        out = step(jax.random.key(1), sharded)
        assert jax.typeof(out[0].particles).sharding.spec == P(sharding.BATCH_AXIS)
        assert jax.typeof(out[0].log_weights).sharding.spec == P(sharding.BATCH_AXIS)
    assert bool(out[1].resampled)
    _close(out, expected)


# ----------------------------------------------------------------------------
# Bad input.
# ----------------------------------------------------------------------------


def _bad(**changes):
    return _random_walk_model()._replace(**changes)


@pytest.mark.parametrize(
    "model, match",
    [
        (_bad(init=lambda key, n: jnp.zeros(n + 1)), "model.init"),
        (_bad(init=lambda key, n: jnp.float32(0.0)), r"model.init\(\.\.\.\)"),
        (
            _bad(init=lambda key, n: (jnp.zeros(n), jnp.zeros(n - 1))),
            r"model.init\(\.\.\.\)",
        ),
        (_bad(init=lambda key, n: ()), r"model.init\(\.\.\.\)"),
        (_bad(mutate=lambda key, t, x: x[1:]), "model.mutate"),
        (_bad(mutate=lambda key, t, x: x[0]), r"model.mutate\(\.\.\.\)"),
        (
            _bad(log_potential=lambda t, p, x: jnp.zeros((x.shape[0], 1))),
            "model.log_potential",
        ),
        (_bad(log_potential=lambda t, p, x: jnp.float32(0.0)), "model.log_potential"),
        (
            _bad(log_potential=lambda t, p, x: jnp.zeros(x.shape, jnp.int32)),
            "model.log_potential",
        ),
        (_bad(log_potential=lambda t, p, x: x > 0), "model.log_potential"),
        (
            _bad(initial_log_potential=lambda x: jnp.zeros(3)),
            "model.initial_log_potential",
        ),
        (
            _bad(initial_log_potential=lambda x: jnp.zeros(x.shape, jnp.int32)),
            "model.initial_log_potential",
        ),
    ],
)
def test_bad_model_outputs_raise_at_trace_time(model, match):
    with pytest.raises(ValueError, match=match):
        jax.jit(lambda key: smc.run(key, model, 8, 2))(jax.random.key(0))
    with pytest.raises(ValueError, match=match):
        smc.run(jax.random.key(0), model, 8, 2)


def test_bad_dtype_messages_name_the_dtype():
    model = _bad(log_potential=lambda t, p, x: jnp.zeros(x.shape, jnp.int32))
    with pytest.raises(ValueError, match="must return floats, got dtype int32"):
        jax.jit(lambda key: smc.run(key, model, 8, 2))(jax.random.key(0))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_particles": 0}, "num_particles"),
        ({"num_particles": -3}, "num_particles"),
        ({"num_particles": 8.0}, "num_particles"),
        ({"num_particles": "8"}, "num_particles"),
        ({"num_steps": -1}, "num_steps"),
        ({"num_steps": 2.0}, "num_steps"),
        ({"ess_threshold": -0.1}, "ess_threshold"),
        ({"ess_threshold": float("nan")}, "ess_threshold"),
        ({"ess_threshold": "0.5"}, "ess_threshold"),
        ({"ess_threshold": None}, "ess_threshold"),
        ({"scheme": "bogus"}, "unknown resampling scheme"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"num_particles": 8, "num_steps": 2, **kwargs}
    model = _random_walk_model()
    with pytest.raises(ValueError, match=match):
        smc.run(
            jax.random.key(0),
            model,
            args.pop("num_particles"),
            args.pop("num_steps"),
            **args,
        )


@pytest.mark.parametrize("ess_threshold", [-1.0, float("nan"), "1"])
def test_step_rejects_bad_threshold(ess_threshold):
    state, model = _weights_state(np.ones(8)), _random_walk_model()
    with pytest.raises(ValueError, match="ess_threshold"):
        smc.step(jax.random.key(1), state, model, 1, ess_threshold=ess_threshold)


def _poisoned_model():
    """The random-walk model; at step ``bad_t`` the log-potential is ``value``.

    On particle 0 only, or on every particle. ``value``, ``everywhere`` and
    ``bad_t`` are traced inputs, so every case shares one compilation.
    """

    def run(key, value, everywhere, bad_t):
        def poison(t, x, log_g):
            hit = (t == bad_t) & (everywhere | (jnp.arange(x.shape[0]) == 0))
            return jnp.where(hit, value, log_g)

        model = _bad(
            log_potential=lambda t, prev, x: poison(t, x, -0.5 * x**2),
            initial_log_potential=lambda x: poison(0, x, -0.5 * x**2),
        )
        return smc.run(key, model, 8, 4, ess_threshold=1.0, track=_mean)

    return run


_POISONED_RUN = jax.jit(_poisoned_model())


@pytest.mark.parametrize(
    "value, everywhere, expected_log_z",
    [
        (np.nan, False, np.nan),
        (np.nan, True, np.nan),
        (np.inf, False, np.nan),
        (np.inf, True, np.nan),
        (-np.inf, True, -np.inf),
    ],
)
def test_invalid_step_is_flagged_under_jit(value, everywhere, expected_log_z):
    """valid is False from the bad step on; log Z NaN (-inf for all-zero weights)."""
    state, info, tracked = _POISONED_RUN(
        jax.random.key(0), jnp.float32(value), jnp.bool_(everywhere), 2
    )
    np.testing.assert_array_equal(info.valid, [True, True, False, False, False])
    np.testing.assert_array_equal(state.log_normalizer, expected_log_z)
    assert np.isnan(info.log_normalizer_increment[2]) == np.isnan(expected_log_z)
    assert np.all(np.isnan(state.log_weights))
    # Resampling is skipped once the weights are invalid.
    np.testing.assert_array_equal(info.resampled, [False, True, True, False, False])
    assert np.all(np.isfinite(tracked[:2])) and np.all(np.isnan(tracked[2:]))


def test_invalid_initial_potential_is_flagged_under_jit():
    state, info, _ = _POISONED_RUN(
        jax.random.key(0), jnp.float32(np.nan), jnp.bool_(False), 0
    )
    assert not bool(info.valid.any()) and not bool(info.resampled.any())
    assert np.isnan(state.log_normalizer)


def test_poisoned_model_valid_run_eager_equals_jit():
    """The control: a finite value at the bad step keeps every step valid.

    The eager run (op by op, then the scan) takes the same key as a legacy
    uint32[2] key and must equal the jitted run.
    """
    for bad_t in (0, 2):
        key, value = jax.random.key(0), jnp.float32(-1.0)
        out = _POISONED_RUN(key, value, jnp.bool_(False), bad_t)
        state, info, _ = out
        assert bool(info.valid.all()) and np.isfinite(state.log_normalizer)
        assert bool(info.resampled[1:].all())
    eager = _poisoned_model()(
        jax.random.key_data(jax.random.key(0)), jnp.float32(-1.0), jnp.bool_(False), 2
    )
    _close(eager, out)


@pytest.mark.parametrize(
    "value, bad_t", [(np.nan, 2), pytest.param(-np.inf, 0, marks=pytest.mark.slow)]
)
def test_invalid_step_raises_when_concrete(value, bad_t):
    run = _poisoned_model()
    with pytest.raises(ValueError, match=f"SMC step t={bad_t}"):
        run(jax.random.key(0), jnp.float32(value), jnp.bool_(True), bad_t)


@pytest.mark.parametrize("num_nan", [1, 8])
def test_waste_free_step_keeps_an_invalid_state_invalid(num_nan):
    """A waste-free step must not resurrect NaN weights as uniform ones.

    An invalid step leaves every log-weight NaN and log Z NaN (``num_nan = 8``).
    """
    model = _waste_free_model(8)
    state = _weights_state(np.ones(8))
    state = state._replace(
        log_weights=state.log_weights.at[:num_nan].set(jnp.nan),
        log_normalizer=jnp.float32(np.nan if num_nan == 8 else 0.0),
    )
    new, info = _waste_free_step(model)(jax.random.key(0), state)
    assert not bool(info.valid) and not bool(info.resampled)
    assert np.all(np.isnan(np.asarray(new.log_weights)))
    if num_nan == 8:
        assert np.isnan(new.log_normalizer)
