"""Tests for jaxsampling.kernels.srrw: one-step laws, the x update, asymptotic variances."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxsampling import sharding, testing
from jaxsampling.kernels import graphs, srrw


def _karate_chain():
    return srrw.metropolis_hastings_chain(graphs.karate_club())


def _star(leaves=100):
    """A hub of degree ``leaves`` (7 chunks) with a ring among the leaves."""
    hub = [0] * leaves + list(range(1, leaves + 1))
    spokes = list(range(1, leaves + 1)) + [i % leaves + 1 for i in range(1, leaves + 1)]
    return graphs.from_edges(hub, spokes, symmetric=True)


def _state(chain, node, seed=0):
    """A state whose visits vary by a factor ~20 across nodes."""
    n = chain.graph.num_nodes
    visits = jnp.asarray(np.random.default_rng(seed).gamma(1.0, size=n) + 0.05, jnp.float32)
    return srrw.State(jnp.int32(node), visits, jnp.float32(-3.0), jnp.int32(7))


def _kernel_row(chain, state, alpha):
    """``K_{i, .}[x]`` in float64 numpy."""
    P_matrix = srrw.transition_matrix(chain)
    i = int(state.node)
    ratio = np.asarray(state.visits, np.float64) / np.asarray(chain.target, np.float64)
    w = P_matrix[i] * ratio**-alpha
    return w / w.sum()


def _one_step_counts(step_fn, chain, state, alpha, num=20_000, seed=1):
    keys = jax.random.split(jax.random.key(seed), num)
    new, info = jax.jit(jax.vmap(lambda k: step_fn(k, state, chain, alpha=alpha)))(keys)
    return np.bincount(np.asarray(new.node), minlength=chain.graph.num_nodes), new, info


@pytest.mark.parametrize("alpha", [0.0, 2.0])
@pytest.mark.parametrize("graph", ["karate", "star", "karate_srw"])
def test_one_step_law_is_the_repelled_kernel(graph, alpha):
    if graph == "star":
        chain, node = srrw.metropolis_hastings_chain(_star()), 0  # the hub: 7 chunks
    elif graph == "karate":
        chain, node = _karate_chain(), 33  # degree 17: two chunks and a self-loop
    else:
        chain, node = srrw.simple_random_walk_chain(graphs.karate_club()), 0
    state = _state(chain, node)
    counts, new, info = _one_step_counts(srrw.step, chain, state, alpha)
    testing.assert_chi_square(counts, _kernel_row(chain, state, alpha))
    assert np.all(np.asarray(new.step) == 8)
    np.testing.assert_array_equal(info.accepted, np.asarray(new.node) != node)


@pytest.mark.parametrize("alpha", [0.0, 3.0])
def test_hdt_one_step_law(alpha):
    chain = _karate_chain()
    state = _state(chain, 33)
    counts, _, _ = _one_step_counts(srrw.hdt_step, chain, state, alpha)
    P_matrix = srrw.transition_matrix(chain)
    r = (np.asarray(state.visits, np.float64) / np.asarray(chain.target)) ** -alpha
    law = P_matrix[33] * np.minimum(1.0, r / r[33])
    law[33] = max(0.0, 1 - law.sum())  # 0 up to round-off: 33 is the largest hub
    law /= law.sum()
    testing.assert_chi_square(counts, law)


def test_default_schedule_keeps_visit_counts():
    chain = _karate_chain()
    state, nodes = srrw.run(jax.random.key(2), srrw.init(chain, 3), chain, 500, alpha=1.0)
    counts = np.bincount(np.asarray(nodes), minlength=34)
    expected = (np.asarray(chain.target, np.float64) + counts) / 501
    np.testing.assert_allclose(srrw.empirical_measure(state), expected, rtol=1e-5)
    assert int(state.step) == 500 and int(state.node) == int(nodes[-1])


@pytest.mark.parametrize("exponent", [0.7, 0.5])
def test_x_update_matches_the_recursion_through_renormalisation(exponent):
    # exponent 0.5: gamma / c_n passes 1e18 near n = 430, so the state renormalises.
    chain = _karate_chain()
    gamma = srrw.power_schedule(exponent)
    state, nodes = srrw.run(jax.random.key(3), srrw.init(chain, 0), chain, 1000, alpha=2.0,
                            gamma=gamma)
    x = np.asarray(chain.target, np.float64)
    for n, node in enumerate(np.asarray(nodes)):
        g = (n + 2.0) ** -exponent
        x = (1 - g) * x
        x[node] += g
    np.testing.assert_allclose(srrw.empirical_measure(state), x, rtol=2e-4)
    if exponent == 0.5:
        assert float(state.log_scale) > -40  # renormalised (else about -60)


def test_base_chains_are_reversible_stochastic_matrices():
    for chain in (_karate_chain(), srrw.simple_random_walk_chain(graphs.karate_club()),
                  srrw.metropolis_hastings_chain(graphs.karate_club(), jnp.arange(1.0, 35.0))):
        P_matrix = srrw.transition_matrix(chain)
        mu = np.asarray(chain.target, np.float64)
        np.testing.assert_allclose(P_matrix.sum(1), 1, atol=1e-6)
        np.testing.assert_allclose(mu @ P_matrix, mu, atol=1e-6)
        flow = mu[:, None] * P_matrix
        np.testing.assert_allclose(flow, flow.T, atol=1e-7)
    d = np.diff(np.asarray(graphs.karate_club().indptr))
    np.testing.assert_allclose(srrw.simple_random_walk_chain(graphs.karate_club()).target,
                               d / d.sum(), rtol=1e-6)


def test_asymptotic_covariance_reference_ratios():
    # ALGORITHMS.md: karate club, MH base chain, f = degree: 0.250 / 0.064 / 0.033.
    chain = _karate_chain()
    f = np.diff(np.asarray(chain.graph.indptr)).astype(float)
    v0 = f @ srrw.asymptotic_covariance(chain, 0.0) @ f
    ratios = [f @ srrw.asymptotic_covariance(chain, a) @ f / v0 for a in (1.0, 5.0, 10.0)]
    np.testing.assert_allclose(ratios, [0.250, 0.064, 0.033], atol=6e-4)
    hdt = f @ srrw.asymptotic_covariance(chain, 5.0, hdt=True) @ f
    np.testing.assert_allclose(hdt, v0 / 11, rtol=1e-9)
    # alpha = 0 is the Markov-chain CLT: n Var of the running mean of f.
    P_matrix = srrw.transition_matrix(chain)
    mu = np.asarray(chain.target)
    fc = f - mu @ f
    Z = np.linalg.inv(np.eye(34) - P_matrix + np.outer(np.ones(34), mu))
    # (P is float32: reversible to ~1e-7, symmetrised in asymptotic_covariance.)
    np.testing.assert_allclose(v0, 2 * (mu * fc) @ Z @ fc - (mu * fc) @ fc, rtol=1e-5)


def _n_var(key, chain, f, alpha, num_chains, num_steps, hdt=False):
    """``num_steps * Var`` of the running average of ``f`` over independent chains."""

    @jax.jit
    def estimates(key):
        keys = jax.random.split(key, num_chains)
        starts = jax.random.randint(jax.random.fold_in(key, 1), (num_chains,), 0,
                                    chain.graph.num_nodes)

        def one(k, s):
            state, _ = srrw.run(k, srrw.init(chain, s), chain, num_steps, alpha=alpha, hdt=hdt)
            return srrw.empirical_measure(state) @ f

        return jax.vmap(one)(keys, starts)

    e = np.asarray(estimates(key), np.float64)
    return num_steps * e.var(ddof=1), e


def _assert_variance(observed, expected, num_chains):
    """``(M - 1) s^2 / sigma^2 ~ chi2(M - 1)`` for Gaussian estimates: two-sided p >= 1e-6."""
    stat = (num_chains - 1) * observed / expected
    dist = scipy.stats.chi2(num_chains - 1)
    p = 2 * min(dist.cdf(stat), dist.sf(stat))
    assert p >= 1e-6, f"n Var {observed:.4g} vs theory {expected:.4g} (p = {p:.2g})"


def _assert_ratio(v_alpha, v_0, expected, num_chains):
    """The ratio of two independent variance estimates: log-ratio SE sqrt(4 / (M - 1)), 5 sigma."""
    z = (np.log(v_alpha / v_0) - np.log(expected)) / np.sqrt(4 / (num_chains - 1))
    assert abs(z) < 5, f"ratio {v_alpha / v_0:.4g} vs theory {expected:.4g} (z = {z:.2f})"


def _check_variances(alphas, num_chains, num_steps, hdt=False):
    chain = _karate_chain()
    f = graphs.degrees(chain.graph).astype(jnp.float32)
    theory = {a: float(f @ srrw.asymptotic_covariance(chain, a, hdt=hdt) @ f) for a in alphas}
    observed = {}
    for i, a in enumerate(alphas):
        observed[a], e = _n_var(jax.random.key(100 + i), chain, f, a, num_chains, num_steps, hdt)
        # x_n -> mu with an O(1/n) bias from the nonlinear feedback: measured
        # n * bias ~ 30 at alpha = 5 for n = 1000 .. 16000 (0 at alpha = 0).
        se = np.sqrt(theory[a] / (num_steps * num_chains))
        assert abs(e.mean() - float(jnp.mean(f))) < 5 * se + 100 / num_steps
        _assert_variance(observed[a], theory[a], num_chains)
    for a in alphas[1:]:
        _assert_ratio(observed[a], observed[alphas[0]], theory[a] / theory[alphas[0]], num_chains)


@pytest.mark.usefixtures("optimized_compiles")
def test_variance_falls_with_alpha_as_theory_predicts():
    _check_variances((0.0, 5.0), num_chains=300, num_steps=2000)


@pytest.mark.slow
@pytest.mark.usefixtures("optimized_compiles")
def test_variance_ratios_reproduce_the_reference_figures():
    # n Var ratios to alpha = 0 of 0.250 / 0.064 / 0.033 (theory; simulation in ALGORITHMS.md).
    _check_variances((0.0, 1.0, 5.0, 10.0), num_chains=1000, num_steps=5000)


@pytest.mark.slow
@pytest.mark.usefixtures("optimized_compiles")
def test_hdt_variance_is_v0_over_2_alpha_plus_1():
    # Slower to reach its asymptotics than the SRRW: 20% high at n = 5000 for alpha = 10.
    _check_variances((0.0, 1.0, 10.0), num_chains=400, num_steps=40_000, hdt=True)


# --------------------------------------------------------------------------- #
# Bad input.
# --------------------------------------------------------------------------- #


def test_bad_input():
    chain = _karate_chain()
    state = srrw.init(chain, 0)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        srrw.step(key, state, chain, alpha=-1.0)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        srrw.run(key, state, chain, 3, alpha=-0.5)
    with pytest.raises(ValueError, match="node must lie in"):
        srrw.init(chain, 34)
    with pytest.raises(ValueError, match="node must be an integer scalar"):
        srrw.init(chain, jnp.array([0, 1]))
    with pytest.raises(ValueError, match="target must be finite and positive"):
        srrw.init(chain, 0, x0=jnp.zeros(34).at[0].set(1.0))
    with pytest.raises(ValueError, match="target must be a float array"):
        srrw.metropolis_hastings_chain(graphs.karate_club(), jnp.ones(3))
    with pytest.raises(ValueError, match="dangling node"):
        srrw.metropolis_hastings_chain(graphs.from_edges([0, 1], [1, 2], num_nodes=3))
    with pytest.raises(ValueError, match="at least one node"):
        srrw.simple_random_walk_chain(graphs.CSRGraph(jnp.zeros(1, jnp.int32),
                                                      jnp.zeros(0, jnp.int32)))
    with pytest.raises(ValueError, match="scale"):
        srrw.power_schedule(1.0, 0.0)
    with pytest.raises(ValueError, match="num_steps"):
        srrw.run(key, state, chain, 2.5, alpha=1.0)
    keys = jax.random.split(key, 3)
    with pytest.raises(ValueError, match="one key per start"):
        srrw.run_chains(keys, jnp.zeros(4, int), chain, 3, alpha=1.0)
    with pytest.raises(ValueError, match="starts must lie in"):
        srrw.run_chains(keys, jnp.array([0, 1, 34]), chain, 3, alpha=1.0)


# --------------------------------------------------------------------------- #
# jit, vmap, no retrace, sharded chains.
# --------------------------------------------------------------------------- #

M = 16


_CHAIN = _karate_chain()


def _chains(keys, starts, alpha):
    state, nodes = srrw.run_chains(keys, starts, _CHAIN, 20, alpha=alpha)
    hdt_state, _ = srrw.run_chains(keys, starts, _CHAIN, 20, alpha=alpha, hdt=True)
    return {"visits": state.visits, "nodes": nodes, "hdt": hdt_state.visits}


_jitted_chains = jax.jit(chex.assert_max_traces(_chains, n=1))


def _inputs(seed=0):
    key = jax.random.key(seed)
    return jax.random.split(key, M), jax.random.randint(key, (M,), 0, 34)


def test_vmapped_chains_equal_single_chains_and_no_retrace():
    keys, starts = _inputs()
    out = _jitted_chains(keys, starts, 2.0)
    chain = _karate_chain()
    for i in (0, 5):
        state, nodes = srrw.run(keys[i], srrw.init(chain, starts[i]), chain, 20, alpha=2.0)
        np.testing.assert_array_equal(out["nodes"][i], nodes)
        np.testing.assert_array_equal(out["visits"][i], state.visits)
    # Stepping by hand equals run.
    state = srrw.init(chain, starts[0])
    for k in jax.random.split(keys[0], 20):
        state, _ = srrw.step(k, state, chain, alpha=2.0)
    np.testing.assert_array_equal(state.visits, out["visits"][0])
    _jitted_chains(*_inputs(1), 3.0)  # new values: no retrace


@pytest.mark.multidevice
def test_sharded_chains_equal_unsharded():
    keys, starts = _inputs()
    expected = jax.tree.map(np.asarray, _jitted_chains(keys, starts, 2.0))
    mesh = sharding.batch_mesh()
    with jax.set_mesh(mesh):
        out = jax.jit(_chains)(*sharding.shard_batch((keys, starts), mesh), 2.0)
        for leaf in jax.tree.leaves(out):
            assert jax.typeof(leaf).sharding.spec[0] == sharding.BATCH_AXIS
    for name in expected:
        np.testing.assert_array_equal(out[name], expected[name], err_msg=name)
    mesh = sharding.batch_mesh(axis_type=AxisType.Auto)
    batch = NamedSharding(mesh, P(sharding.BATCH_AXIS))
    out = jax.jit(lambda k, s: _chains(k, s, 2.0), in_shardings=batch)(
        jax.device_put(keys, batch), jax.device_put(starts, batch))
    for name in expected:
        np.testing.assert_array_equal(out[name], expected[name], err_msg=name)
        assert len(out[name].sharding.device_set) == 8
