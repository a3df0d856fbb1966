"""Tests for jaxsampling.kernels.smc.filters on the 1-D linear-Gaussian model.

Exact answers (the bootstrap and optimal-proposal potentials, the guided
filter's exact first step, weighted means), 5-sigma statistical tests
against the Kalman filter with standard errors estimated from independent
seeds (unbiased likelihood on the natural scale, the lognormal bias of the
log-likelihood, filtering means, guided beats bootstrap), vmap over data
sets, no retrace, sharding and bad input.
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
from jaxsampling.kernels.smc import filters
from jaxsampling.train import kalman

PARAMS = kalman.LGSSM(rho=0.9, sigma_x=1.0, sigma_y=1.0)
T = 30


@functools.cache
def _data(seed=42, num_observations=T):
    _, ys = kalman.simulate(jax.random.key(seed), PARAMS, num_observations)
    return ys


def _model(kind, ys):
    ssm = kalman.state_space_model(PARAMS, ys)
    if kind == "bootstrap":
        return filters.bootstrap(ssm)
    return filters.guided(ssm, kalman.optimal_proposal(PARAMS, ys))


# ----------------------------------------------------------------------------
# Exact answers.
# ----------------------------------------------------------------------------


def test_bootstrap_moves_with_f_and_weights_by_g():
    ys = _data(num_observations=4)
    ssm = kalman.state_space_model(PARAMS, ys)
    model = filters.bootstrap(ssm)
    x = jnp.linspace(-2.0, 2.0, 5)
    prev = jnp.linspace(3.0, -1.0, 5)
    key = jax.random.key(0)
    for t in range(1, 4):
        expected = kalman.normal_logpdf(ys[t], x, PARAMS.sigma_y**2)
        np.testing.assert_allclose(model.log_potential(t, prev, x), expected, rtol=1e-6)
        np.testing.assert_array_equal(
            model.mutate(key, t, prev), ssm.transition_sample(key, t, prev)
        )
    np.testing.assert_allclose(
        model.initial_log_potential(x),
        kalman.normal_logpdf(ys[0], x, PARAMS.sigma_y**2),
        rtol=1e-6,
    )
    np.testing.assert_array_equal(model.init(key, 5), ssm.initial_sample(key, 5))


def test_optimal_proposal_potential_is_the_predictive_density():
    """With q_t = p(x_t | x_{t-1}, y_t), G_t = p(y_t | x_{t-1}) whatever x_t."""
    ys = _data(num_observations=4)
    model = _model("guided", ys)
    x = jnp.linspace(-3.0, 3.0, 7)
    var = PARAMS.sigma_x**2 + PARAMS.sigma_y**2
    for t in range(1, 4):
        for prev in (-1.5, 0.0, 2.0):
            expected = kalman.normal_logpdf(ys[t], PARAMS.rho * prev, var)
            got = model.log_potential(t, jnp.full(7, prev), x)
            np.testing.assert_allclose(got, np.full(7, expected), atol=2e-5)
    # t = 0: x_0 stationary, so G_0 = N(y_0; 0, stationary + sigma_y^2).
    var0 = PARAMS.stationary_var + PARAMS.sigma_y**2
    expected = kalman.normal_logpdf(ys[0], 0.0, var0)
    np.testing.assert_allclose(
        model.initial_log_potential(x), np.full(7, expected), atol=2e-5
    )


def test_guided_first_step_is_exact():
    """One observation, optimal proposal: log Z = log p(y_0) exactly, ESS = N.

    The particles are exact draws from p(x_0 | y_0), so their mean is within
    5 known standard errors sqrt(Var(x_0 | y_0) / N) of the Kalman mean.
    """
    n = 4096
    ys = _data(num_observations=1)
    run = jax.jit(lambda key: filters.filter(key, _model("guided", ys), n, 1))
    state, info, means = run(jax.random.key(3))
    exact, kalman_means = kalman.kalman_filter(PARAMS, ys)
    np.testing.assert_allclose(state.log_normalizer, exact, atol=2e-5)
    np.testing.assert_allclose(info.ess, [n], rtol=1e-5)
    assert means.shape == (1,) and info.valid.shape == (1,)
    posterior_var = 1.0 / (1.0 / PARAMS.stationary_var + 1.0 / PARAMS.sigma_y**2)
    testing.assert_mean_close_known_sigma(
        means[0], kalman_means[0], math.sqrt(posterior_var / n)
    )


def test_weighted_mean_of_a_pytree():
    particles = {
        "a": jnp.array([0.0, 2.0, 4.0]),
        "b": jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
    }
    got = filters.weighted_mean(particles, jnp.array([0.5, 0.25, 0.25]))
    np.testing.assert_allclose(got["a"], 1.5)
    np.testing.assert_allclose(got["b"], [0.75, 0.5])


def test_filter_output_shapes():
    ys = _data(num_observations=5)
    key = jax.random.key(0)
    state, info, means = jax.eval_shape(
        lambda k: filters.filter(k, _model("bootstrap", ys), 32, 5), key
    )
    assert means.shape == (5,) and state.particles.shape == (32,)
    for field in info:
        assert field.shape == (5,)
    _, info, means = jax.eval_shape(
        lambda k: filters.filter(k, _model("bootstrap", ys), 32, 1), key
    )
    assert means.shape == (1,) and info.ess.shape == (1,)


# ----------------------------------------------------------------------------
# Statistics against the Kalman filter.
# ----------------------------------------------------------------------------

NUM_PARTICLES = 1000
NUM_SEEDS = 500
# The filtering mean is a ratio estimator with an O(1/N) bias, while the
# standard error of its average over S seeds is O(1/sqrt(N S)): bias / se
# grows like sqrt(S / N). Measured once (bootstrap, N = 250, S = 2000 = 8 N):
# the worst time step sat ~4.7 standard errors off, noise included; so at
# S = N / 5 the bias is about 0.7 standard errors, well inside 5.
NUM_SEEDS_FOR_MEANS = NUM_PARTICLES // 5


@pytest.fixture(scope="module")
def estimates():
    """Log-likelihood errors and filtering means of both filters, many seeds."""
    ys = _data()
    exact, kalman_means = kalman.kalman_filter(PARAMS, ys)
    out = {"kalman_means": np.asarray(kalman_means, np.float64)}
    for i, kind in enumerate(("bootstrap", "guided")):
        model = _model(kind, ys)

        def one(key):
            state, info, means = filters.filter(key, model, NUM_PARTICLES, T)
            return state.log_normalizer, means, info.valid

        # Independent keys for the two filters (assert_variance_less needs it).
        keys = jax.random.split(jax.random.fold_in(jax.random.key(7), i), NUM_SEEDS)
        # lax.map, not vmap: half the compile time (vmap is tested below).
        log_z, means, valid = jax.jit(lambda keys: jax.lax.map(one, keys))(keys)
        assert bool(valid.all())
        out[kind] = (
            np.asarray(log_z, np.float64) - float(exact),
            np.asarray(means, np.float64),
        )
    return out


@pytest.mark.parametrize("kind", ["bootstrap", "guided"])
def test_likelihood_is_unbiased_on_the_natural_scale(estimates, kind):
    """E[Z_hat / Z] = 1 within 5 standard errors (estimated from the seeds)."""
    log_ratio, _ = estimates[kind]
    testing.assert_mean_close(np.exp(log_ratio), 1.0)


@pytest.mark.parametrize("kind", ["bootstrap", "guided"])
def test_log_likelihood_bias_is_minus_half_its_variance(estimates, kind):
    """E[log Z_hat - log Z] = -Var / 2 (log Z_hat is asymptotically normal).

    A normalising constant off by c per step would shift the mean by c T
    and leave the variance alone. The standard error combines that of the
    mean, s / sqrt(n), and that of s^2 / 2, s^2 / sqrt(2 (n - 1)).
    """
    log_ratio, _ = estimates[kind]
    n = log_ratio.size
    var = log_ratio.var(ddof=1)
    se = math.sqrt(var / n + var**2 / (2 * (n - 1)))
    testing.assert_mean_close_known_sigma(log_ratio.mean(), -var / 2, se)


@pytest.mark.parametrize("kind", ["bootstrap", "guided"])
def test_filtering_means_match_kalman(estimates, kind):
    _, means = estimates[kind]
    testing.assert_mean_close(means[:NUM_SEEDS_FOR_MEANS], estimates["kalman_means"])


def test_guided_has_smaller_log_likelihood_variance(estimates):
    """The optimal proposal's weights ignore x_t: a strictly smaller variance."""
    testing.assert_variance_less(
        estimates["guided"][0], estimates["bootstrap"][0], strict=True
    )


# ----------------------------------------------------------------------------
# vmap over data sets, retracing, sharding.
# ----------------------------------------------------------------------------


def _filter_data_set(key, ys):
    """A guided filter built inside the function, so ys may be traced.

    No resampling (ess_threshold = 0): resampling under vmap is covered by the
    engine's tests, and compiling it under vmap costs several seconds.
    """
    return filters.filter(key, _model("guided", ys), 64, ys.shape[0], ess_threshold=0.0)


def test_vmap_over_data_sets_equals_per_data_set_runs_without_retrace():
    ys = jnp.stack([_data(seed, 10) for seed in range(3)])
    keys = jax.random.split(jax.random.key(1), 3)
    per_data_set = jax.jit(chex.assert_max_traces(_filter_data_set, n=1))
    singles = [per_data_set(k, y) for k, y in zip(keys, ys)]  # new values: no retrace
    chex.clear_trace_counter()
    batched = jax.jit(jax.vmap(_filter_data_set))(keys, ys)
    for i, single in enumerate(singles):
        chex.assert_trees_all_close(
            jax.tree.map(lambda x: x[i], batched), single, rtol=1e-5, atol=1e-5
        )


@pytest.mark.multidevice
def test_weighted_mean_sharded_equals_unsharded():
    x = jax.random.normal(jax.random.key(0), (64, 3))
    w = jax.nn.softmax(jax.random.normal(jax.random.key(1), (64,)))
    expected = filters.weighted_mean(x, w)
    mesh = sharding.batch_mesh()
    with jax.set_mesh(mesh):
        out = jax.jit(filters.weighted_mean)(*sharding.shard_batch((x, w), mesh))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    auto = sharding.batch_mesh(axis_type=AxisType.Auto)
    spec = NamedSharding(auto, P(sharding.BATCH_AXIS))
    out = jax.jit(filters.weighted_mean, in_shardings=(spec, spec))(x, w)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


# Slow: the default run covers this through the engine's sharded runs and the
# sharded weighted mean above.
@pytest.mark.slow
@pytest.mark.multidevice
def test_filter_sharded_explicit_mesh_equals_unsharded():
    ys = _data(num_observations=8)
    ssm = kalman.state_space_model(PARAMS, ys)

    def run(constrain):
        initial_sample = lambda k, n: constrain(ssm.initial_sample(k, n))
        model = filters.bootstrap(ssm._replace(initial_sample=initial_sample))
        return filters.filter(jax.random.key(2), model, 64, 8, ess_threshold=0.7)

    run = jax.jit(run, static_argnums=0)
    expected = run(lambda x: x)
    mesh = sharding.batch_mesh()
    with jax.set_mesh(mesh):
        out = run(lambda x: jax.reshard(x, P(sharding.BATCH_AXIS)))
        assert jax.typeof(out[0].particles).sharding.spec == P(sharding.BATCH_AXIS)
    assert bool(expected[1].resampled.any())
    np.testing.assert_array_equal(out[1].resampled, expected[1].resampled)
    chex.assert_trees_all_close(out, expected, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------
# Bad input.
# ----------------------------------------------------------------------------


def test_guided_needs_the_model_densities():
    ys = _data(num_observations=3)
    ssm = kalman.state_space_model(PARAMS, ys)
    proposal = kalman.optimal_proposal(PARAMS, ys)
    for missing in ("initial_log_density", "transition_log_density"):
        with pytest.raises(ValueError, match="guided filters need"):
            filters.guided(ssm._replace(**{missing: None}), proposal)


@pytest.mark.parametrize(
    "num_observations, kwargs, match",
    [
        (0, {}, "num_observations"),
        (-2, {}, "num_observations"),
        (3.0, {}, "num_observations"),
        (3, {"ess_threshold": -0.5}, "ess_threshold"),
        (3, {"scheme": "bogus"}, "unknown resampling scheme"),
    ],
)
def test_filter_bad_arguments(num_observations, kwargs, match):
    model = _model("bootstrap", _data(num_observations=3))
    with pytest.raises(ValueError, match=match):
        filters.filter(jax.random.key(0), model, 16, num_observations, **kwargs)


def test_filter_wrong_observation_density_shape_raises_at_trace_time():
    ys = _data(num_observations=3)
    ssm = kalman.state_space_model(PARAMS, ys)
    bad = ssm._replace(observation_log_density=lambda t, x: jnp.sum(x - ys[t]))
    with pytest.raises(ValueError, match="model.initial_log_potential"):
        jax.jit(lambda k: filters.filter(k, filters.bootstrap(bad), 16, 3))(
            jax.random.key(0)
        )
