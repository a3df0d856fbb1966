"""Tests for jaxsampling.kernels.smc.tempering.

``next_temperature`` against a float64 numpy conditional ESS; the sampler on a
2-D posterior with four separated modes of unequal weight (a Gaussian prior
times a four-component mixture likelihood), whose mode weights, mean and
evidence are known exactly (``mixtures.product``): the vmapped estimates over
32 fixed seeds must lie within 5 standard errors (estimated from the seeds), on
the natural scale for ``Z``. Then the diagnostics, the step-size recurrence,
bad input, retracing and vmap against a per-key loop.
"""

import collections
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxsampling import testing
from jaxsampling.kernels.smc import mcmc, mixtures, tempering

NUM_SEEDS = 32
NUM_PARTICLES = 1000

PRIOR = mixtures.GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), jnp.full(1, 3.0))
LIKELIHOOD = mixtures.GaussianMixture(
    jnp.array([0.1, 0.2, 0.3, 0.4]),
    jnp.array([[2.0, 2.0], [-2.0, 2.0], [-2.0, -2.0], [2.0, -2.0]]),
    jnp.full(4, 0.4),
)
POSTERIOR = mixtures.product(PRIOR, LIKELIHOOD)
TARGET = mcmc.Target(PRIOR.log_density, LIKELIHOOD.log_density)


def _prior_sample(key, n):
    return 3.0 * jax.random.normal(key, (n, 2))


def _quadrant_probs(mixture):
    """Exact quadrant masses (+,+), (-,+), (-,-), (+,-) of an isotropic 2-D mixture."""
    w = np.asarray(mixture.weights, np.float64)
    w = w / w.sum()
    mu = np.asarray(mixture.means, np.float64)
    sd = np.asarray(mixture.sds, np.float64)
    px, py = stats.norm.cdf(mu[:, 0] / sd), stats.norm.cdf(mu[:, 1] / sd)
    quadrants = [px * py, (1 - px) * py, (1 - px) * (1 - py), px * (1 - py)]
    return np.array([w @ q for q in quadrants])


def _quadrant_weights(x, w):
    right, up = x[:, 0] > 0, x[:, 1] > 0
    masks = jnp.stack([right & up, ~right & up, ~right & ~up, right & ~up], axis=1)
    return w @ masks.astype(w.dtype)


CONFIGS = {
    "random_walk": dict(kernel=mcmc.random_walk),
    "mala": dict(kernel=mcmc.mala),
    "waste_free": dict(kernel=mcmc.random_walk, chain_length=10),
}


TRACES = collections.Counter()


def _one(name, key):
    """One run of a configuration; per-seed summaries."""
    TRACES[name] += 1  # Python side effect: counts traces, not calls
    state, info = tempering.run(
        key, TARGET, _prior_sample, NUM_PARTICLES, max_steps=20, **CONFIGS[name]
    )
    w = jnp.exp(state.log_weights)
    x = state.particles.position
    return dict(
        quadrants=_quadrant_weights(x, w),
        mean=w @ x,
        log_z=state.log_normalizer,
        num_particles=jnp.asarray(x.shape[0]),
        state=state,
        info=info,
    )


@functools.lru_cache(maxsize=None)
def _program(name):
    return jax.jit(jax.vmap(functools.partial(_one, name)))


def _keys(seed=0):
    return jax.random.split(jax.random.key(seed), NUM_SEEDS)


@functools.lru_cache(maxsize=None)
def _runs(name):
    """NUM_SEEDS vmapped runs (fixed keys) as numpy arrays."""
    return jax.tree.map(np.asarray, _program(name)(_keys()))


def _assert_posterior(out):
    """Mode weights, posterior mean and Z_hat / Z within 5 SE over the seeds."""
    testing.assert_mean_close(out["quadrants"], _quadrant_probs(POSTERIOR))
    testing.assert_mean_close(out["mean"], np.asarray(POSTERIOR.mean()))
    ratio = np.exp(out["log_z"].astype(np.float64) - np.log(float(POSTERIOR.mass)))
    testing.assert_mean_close(ratio, 1.0)


@pytest.mark.parametrize(
    "name",
    [
        "random_walk",
        pytest.param("mala", marks=pytest.mark.slow),
        pytest.param("waste_free", marks=pytest.mark.slow),
    ],
)
def test_mode_weights_mean_and_evidence(name):
    out = _runs(name)
    assert (out["num_particles"] == NUM_PARTICLES).all()
    _assert_posterior(out)


def test_posterior_check_has_power():
    # The same check fails against a posterior with the modes' weights permuted
    # ((0.1, 0.2, 0.3, 0.4) -> (0.2, 0.1, 0.3, 0.4)) and a 10% wrong evidence.
    out = _runs("random_walk")
    swapped = POSTERIOR._replace(weights=POSTERIOR.weights[jnp.array([1, 0, 2, 3])])
    with pytest.raises(AssertionError):
        testing.assert_mean_close(out["quadrants"], _quadrant_probs(swapped))
    ratio = np.exp(out["log_z"].astype(np.float64) - np.log(float(POSTERIOR.mass)))
    with pytest.raises(AssertionError):
        testing.assert_mean_close(ratio, 1.1)


def test_diagnostics_and_step_size_recurrence():
    info = _runs("random_walk")["info"]
    for s in range(NUM_SEEDS):
        n = int(info.num_steps[s])
        assert 1 <= n < 20
        temp = info.temperature[s]
        assert temp[0] == 0.0 and temp[n] == 1.0
        assert (np.diff(temp[: n + 1]) > 0).all()
        assert (temp[n:] == 1.0).all()  # padding
        assert np.isnan(info.ess[s, n + 1 :]).all()
        assert np.isnan(info.acceptance[s, n + 1 :]).all()
        assert info.valid[s].all()
        # ess_threshold = 1: every step resamples.
        assert info.resampled[s, 1 : n + 1].all() and not info.resampled[s, 0]
        acc = info.acceptance[s, 1 : n + 1]
        assert ((acc > 0) & (acc < 1)).all()
        ess = info.ess[s, : n + 1]
        assert ((ess > 0) & (ess <= NUM_PARTICLES * (1 + 1e-5))).all()
        # Step-size adaptation: scale_{i+1} = scale_i exp(2 (acc_i - 0.234)).
        scale = info.scale[s, 1 : n + 1]
        assert scale[0] == 1.0
        expected = scale[:-1] * np.exp(2.0 * (acc[:-1] - 0.234))
        np.testing.assert_allclose(scale[1:], expected, rtol=1e-5)
        # The increments add up to the evidence estimate.
    np.testing.assert_allclose(
        info.log_normalizer_increment.sum(axis=1), _runs("random_walk")["log_z"],
        rtol=1e-5, atol=1e-5,
    )


# ----------------------------------------------------------------------------
# next_temperature against numpy.
# ----------------------------------------------------------------------------


_NEXT = jax.jit(tempering.next_temperature)


def _np_cess(log_w, log_l, delta):
    """float64 CESS of the increments G = L^delta (G = 0 where L = 0, delta > 0)."""
    if delta == 0:
        return 1.0
    log_w = np.asarray(log_w, np.float64)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    g = np.exp(delta * np.asarray(log_l, np.float64))
    return (w @ g) ** 2 / (w @ g**2)


def _case(seed, n=500, spread=5.0):
    rng = np.random.default_rng(seed)
    log_w = rng.normal(size=n)
    log_w -= np.log(np.exp(log_w).sum())
    log_l = spread * rng.normal(size=n) - 10.0
    return log_w.astype(np.float32), log_l.astype(np.float32)


@pytest.mark.parametrize("seed,current,target_ess", [
    (0, 0.0, 0.5), (1, 0.0, 0.9), (2, 0.3, 0.5), (3, 0.0, 0.1), (4, 0.6, 0.3),
])
def test_next_temperature_hits_the_target_cess(seed, current, target_ess):
    log_w, log_l = _case(seed)
    lam = float(_NEXT(jnp.asarray(log_w), jnp.asarray(log_l),
                                           current, target_ess))
    assert current < lam < 1.0
    delta = lam - current
    np.testing.assert_allclose(_np_cess(log_w, log_l, delta), target_ess, rtol=1e-3)
    # It is the largest such lambda: a slightly larger step falls below the target.
    assert _np_cess(log_w, log_l, delta * 1.01) < target_ess
    # The CESS decreases with the target: a lower target gives a larger step.
    lower = float(_NEXT(jnp.asarray(log_w), jnp.asarray(log_l),
                                             current, target_ess / 2))
    assert lower > lam


def test_next_temperature_returns_one_when_the_full_step_is_cheap():
    log_w, log_l = _case(5, spread=0.1)
    cess = _np_cess(log_w, log_l, 1.0)
    assert cess > 0.9
    lam = _NEXT(jnp.asarray(log_w), jnp.asarray(log_l), 0.0, 0.9)
    assert float(lam) == 1.0
    # From a current temperature, the remaining step 1 - current counts.
    lam = _NEXT(jnp.asarray(log_w), jnp.asarray(10 * log_l), 0.95, 0.5)
    assert _np_cess(log_w, 10 * log_l, 0.05) >= 0.5 and float(lam) == 1.0


def test_next_temperature_with_zero_likelihoods():
    # Particles with L = 0 get G = 0 for any positive step; a quarter of the
    # weight sits there, so the CESS is at most 0.75 and 0.9 is never reached.
    log_w, log_l = _case(6)
    log_l = log_l.copy()
    log_l[::4] = -np.inf
    lam = float(_NEXT(jnp.asarray(log_w), jnp.asarray(log_l), 0.0, 0.5))
    assert 0.0 < lam < 1.0
    np.testing.assert_allclose(_np_cess(log_w, log_l, lam), 0.5, rtol=1e-3)
    assert float(_NEXT(
        jnp.asarray(log_w), jnp.asarray(log_l), 0.0, 0.99)) == 0.0


# ----------------------------------------------------------------------------
# Bad input, retracing, vmap.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,match", [
    (dict(target_ess=0.0), "target_ess"),
    (dict(target_ess=1.0), "target_ess"),
    (dict(target_ess=1.5), "target_ess"),
    (dict(chain_length=7), "chain_length"),
    (dict(chain_length=0), "chain_length"),
    (dict(chain_length=2.0), "chain_length"),
    (dict(num_particles=0), "num_particles"),
    (dict(num_particles=10.0), "num_particles"),
    (dict(max_steps=0), "max_steps"),
])
def test_bad_input_raises(kwargs, match, key):
    kwargs = {"num_particles": 100, **kwargs}
    n = kwargs.pop("num_particles")
    with pytest.raises(ValueError, match=match):
        tempering.run(key, TARGET, _prior_sample, n, **kwargs)


def test_no_retrace_and_vmap_equals_per_key_loop():
    out = _runs("random_walk")
    # A second call with new keys reuses the trace.
    _program("random_walk")(_keys(1))
    assert TRACES["random_walk"] == 1
    # One key alone, jitted, equals its row of the vmapped run.
    single = jax.jit(functools.partial(_one, "random_walk"))(_keys()[3])
    chex.assert_trees_all_close(
        jax.tree.map(lambda a: a[3], out), jax.tree.map(np.asarray, single),
        rtol=1e-4, atol=1e-5,
    )


@pytest.mark.slow
def test_custom_kernel_is_not_adapted(key):
    # A custom kernel (not mcmc.random_walk/mala, nor a functools.partial of
    # them) is not in OPTIMAL_ACCEPTANCE: the step size stays 1.
    # target_acceptance turns adaptation on for it.
    def kernel(*args):
        return mcmc.random_walk(*args)

    @jax.jit
    def fn(key):
        options = dict(kernel=kernel, num_mcmc_steps=1, max_steps=10)
        _, fixed = tempering.run(key, TARGET, _prior_sample, 64, **options)
        _, tuned = tempering.run(
            key, TARGET, _prior_sample, 64, target_acceptance=0.3, **options
        )
        return fixed, tuned

    fixed, tuned = fn(key)
    n = int(fixed.num_steps)
    assert float(fixed.temperature[n]) == 1.0
    np.testing.assert_array_equal(np.asarray(fixed.scale[1 : n + 1]), 1.0)
    m = int(tuned.num_steps)
    acc = np.asarray(tuned.acceptance[1 : m + 1])
    scale = np.asarray(tuned.scale[1 : m + 1])
    expected = scale[:-1] * np.exp(2 * (acc[:-1] - 0.3))
    np.testing.assert_allclose(scale[1:], expected, rtol=1e-5)
