"""Tests for jaxsampling.kernels.sa_srrw: the update, its link to the walk, regimes, transforms."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxsampling import sharding, testing
from jaxsampling.kernels import graphs, sa_srrw, srrw

CHAIN = srrw.metropolis_hastings_chain(graphs.karate_club())
CENTRES = jnp.stack([jnp.arange(34.0) / 10, jnp.cos(jnp.arange(34.0))], axis=1)  # c_i in R^2
OPTIMUM = CENTRES.mean(0)  # argmin of the uniform average of f_i


def quadratic(theta, node):
    """f_i(theta) = ||theta - c_i||^2 / 2."""
    return 0.5 * jnp.sum((theta - CENTRES[node]) ** 2)


@pytest.mark.parametrize("exponent", [1.0, 0.7])
def test_beta_equal_gamma_on_quadratics_is_the_walks_running_average(exponent):
    # theta_{n+1} = (1 - g) theta_n + g c_X and x_{n+1} = (1 - g) x_n + g delta_X:
    # with theta_0 = C^T x_0 the iterate is C^T x_n at every n.
    schedule = srrw.power_schedule(exponent)
    opt = optax.sgd(schedule)
    state = sa_srrw.init(CHAIN, 4, CENTRES.T @ CHAIN.target, opt)
    state, info = sa_srrw.run(jax.random.key(0), state, CHAIN, quadratic, opt, 600, alpha=3.0,
                              gamma=schedule)
    np.testing.assert_allclose(state.params, CENTRES.T @ srrw.empirical_measure(state.walk),
                               rtol=1e-4, atol=1e-5)
    assert info.node.shape == (600,) and int(state.walk.step) == 600
    assert int(info.node[-1]) == int(state.walk.node)


def test_step_composes_with_optax_and_run_equals_steps():
    opt = optax.chain(optax.clip_by_global_norm(0.5), optax.sgd(0.3, momentum=0.5))
    theta0 = jnp.array([5.0, -5.0])
    state = sa_srrw.init(CHAIN, 0, theta0, opt)
    key = jax.random.key(1)
    ran, ran_info = sa_srrw.run(key, state, CHAIN, quadratic, opt, 5, alpha=1.0)
    keys = [jax.random.split(k, 1)[0] for k in jax.random.split(key, 5)]  # run's key layout
    stepped, first = sa_srrw.step(keys[0], state, CHAIN, quadratic, opt, alpha=1.0)
    # One step by hand: clip the gradient at X_1, then theta - 0.3 g.
    g = theta0 - CENTRES[int(first.node)]
    np.testing.assert_allclose(stepped.params, theta0 - 0.3 * g * min(1.0, 0.5 / float(
        jnp.linalg.norm(g))), rtol=1e-6)
    np.testing.assert_allclose(first.loss, quadratic(theta0, first.node), rtol=1e-6)
    for k in keys[1:]:
        stepped, info = sa_srrw.step(k, stepped, CHAIN, quadratic, opt, alpha=1.0)
    chex.assert_trees_all_close(stepped, ran, rtol=1e-6)
    assert int(info.node) == int(ran_info.node[-1])


def test_the_walk_inside_equals_srrw_step():
    opt = optax.sgd(0.1)
    state = sa_srrw.init(CHAIN, 7, jnp.zeros(2), opt)
    new, info = sa_srrw.step(jax.random.key(2), state, CHAIN, quadratic, opt, alpha=2.0,
                             hdt=True)
    walk, _ = srrw.hdt_step(jax.random.key(2), state.walk, CHAIN, alpha=2.0)
    chex.assert_trees_all_equal(new.walk, walk)
    assert float(info.gamma) == pytest.approx(0.5)


@pytest.mark.parametrize("regime", sorted(sa_srrw.REGIMES))
def test_every_regime_converges(regime):
    gamma, beta = sa_srrw.regime_schedules(regime)
    opt = optax.sgd(beta)
    keys = jax.random.split(jax.random.key(3), 64)
    states, trace = sa_srrw.run_chains(keys, jnp.arange(64) % 34, CHAIN, jnp.zeros(2), quadratic,
                                       opt, 4000, alpha=2.0, gamma=gamma, every=1000)
    assert trace.shape == (64, 4, 2)
    error = np.linalg.norm(np.asarray(trace) - np.asarray(OPTIMUM), axis=-1).mean(0)
    # SA noise: the error shrinks like sqrt(beta_n) = n^{-b/2}, from n = 1000 to 4000 by
    # 4^{-b/2}; 1.25 covers the Monte Carlo error of a mean over 64 runs (about 6%).
    b = beta.exponent
    assert error[0] < 0.2 * float(jnp.linalg.norm(OPTIMUM))  # theta_0 = 0
    assert error[-1] / error[0] < 1.25 * 4 ** (-b / 2), error


@pytest.mark.slow
@pytest.mark.usefixtures("optimized_compiles")
def test_repulsion_lowers_the_variance_when_beta_is_slower():
    # beta = o(gamma): the covariance of theta falls like O(1/alpha) (Hu et al. 2024).
    gamma, beta = sa_srrw.regime_schedules("beta_slower")
    opt = optax.sgd(beta)

    def finals(alpha, seed):
        keys = jax.random.split(jax.random.key(seed), 400)
        starts = jax.random.randint(jax.random.key(seed + 1), (400,), 0, 34)
        states, _ = sa_srrw.run_chains(keys, starts, CHAIN, jnp.zeros(2), quadratic, opt, 20_000,
                                       alpha=alpha, gamma=gamma, every=20_000)
        return np.asarray(states.params)

    testing.assert_variance_less(finals(5.0, 10), finals(0.0, 20), strict=True)


def test_bad_input():
    opt = optax.sgd(0.1)
    state = sa_srrw.init(CHAIN, 0, jnp.zeros(2), opt)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="regime"):
        sa_srrw.regime_schedules("fast")
    with pytest.raises(ValueError, match="loss_fn must be callable"):
        sa_srrw.step(key, state, CHAIN, "quadratic", opt, alpha=1.0)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        sa_srrw.step(key, state, CHAIN, quadratic, opt, alpha=-2.0)
    with pytest.raises(ValueError, match="multiple of every"):
        sa_srrw.run(key, state, CHAIN, quadratic, opt, 10, alpha=1.0, every=3)
    with pytest.raises(ValueError, match="one key per start"):
        sa_srrw.run_chains(jax.random.split(key, 2), jnp.zeros(3, int), CHAIN, jnp.zeros(2),
                           quadratic, opt, 4, alpha=1.0)
    with pytest.raises(ValueError, match="node must lie in"):
        sa_srrw.init(CHAIN, 40, jnp.zeros(2), opt)


# --------------------------------------------------------------------------- #
# vmap, no retrace, sharded runs.
# --------------------------------------------------------------------------- #

OPT = optax.adam(0.05)


def _runs(keys, starts, alpha):
    states, trace = sa_srrw.run_chains(keys, starts, CHAIN, jnp.zeros(2), quadratic, OPT, 20,
                                       alpha=alpha, every=5)
    return {"params": states.params, "trace": trace, "visits": states.walk.visits}


_jitted_runs = jax.jit(chex.assert_max_traces(_runs, n=1))


def _inputs(seed=0):
    key = jax.random.key(seed)
    return jax.random.split(key, 16), jax.random.randint(key, (16,), 0, 34)


def test_run_chains_equals_single_runs_and_no_retrace():
    keys, starts = _inputs()
    out = _jitted_runs(keys, starts, 1.5)
    state = sa_srrw.init(CHAIN, starts[3], jnp.zeros(2), OPT)
    state, _ = sa_srrw.run(keys[3], state, CHAIN, quadratic, OPT, 20, alpha=1.5, every=5)
    np.testing.assert_allclose(out["params"][3], state.params, rtol=1e-6)
    np.testing.assert_allclose(out["visits"][3], state.walk.visits, rtol=1e-6)
    _jitted_runs(*_inputs(1), 0.5)


@pytest.mark.multidevice
def test_sharded_runs_equal_unsharded():
    keys, starts = _inputs()
    expected = jax.tree.map(np.asarray, _jitted_runs(keys, starts, 1.5))
    mesh = sharding.batch_mesh()
    with jax.set_mesh(mesh):
        out = jax.jit(_runs)(*sharding.shard_batch((keys, starts), mesh), 1.5)
        for leaf in jax.tree.leaves(out):
            assert jax.typeof(leaf).sharding.spec[0] == sharding.BATCH_AXIS
    chex.assert_trees_all_close(jax.tree.map(np.asarray, out), expected, rtol=1e-6)
    mesh = sharding.batch_mesh(axis_type=AxisType.Auto)
    batch = NamedSharding(mesh, P(sharding.BATCH_AXIS))
    out = jax.jit(lambda k, s: _runs(k, s, 1.5), in_shardings=batch)(
        jax.device_put(keys, batch), jax.device_put(starts, batch))
    chex.assert_trees_all_close(jax.tree.map(np.asarray, out), expected, rtol=1e-6)
