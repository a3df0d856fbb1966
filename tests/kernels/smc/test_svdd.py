"""Tests for jaxsampling.kernels.smc.svdd (soft value-based decoding).

``select`` against the softmax law (chi-square), argmax at ``alpha = 0``, NaN
values never kept, bad input. ``run`` against an exact law: a Gaussian random
walk steered by ``v(t, x) = x`` with M candidates keeps, at every step, an
increment whose law does not depend on ``x``; with M = 2 its mean is
``m(alpha) = E[u sigmoid(u / alpha)]`` (``u ~ N(0, 2)``, a 1-D quadrature) and
its second moment is exactly 1, so ``x_T`` has mean ``T m`` and variance
``T (1 - m^2)``. M = 1 is the unsteered walk, ``N(0, T)``. 5-sigma checks with
fixed keys; jit/vmap and retracing.
"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special, stats

from jaxsampling import testing
from jaxsampling.kernels import smc
from jaxsampling.kernels.smc import svdd

_SELECT = jax.jit(svdd.select, static_argnums=2)


@pytest.mark.parametrize("alpha", [0.3, 1.0, 5.0])
def test_select_matches_softmax(alpha, key):
    # Three kinds of column (different value vectors), 20000 columns each.
    v = np.array(
        [
            [0.0, 1.0, -0.5, 2.0, 0.3],
            [1.0, 1.0, 1.0, 1.0, 1.0],
            [-3.0, 0.0, 3.0, 0.5, 0.1],
        ]
    )
    n = 20_000
    values = jnp.asarray(np.repeat(v, n, axis=0).T, jnp.float32)  # [M=5, 3n]
    choice = np.asarray(_SELECT(key, values, alpha))
    assert choice.shape == (3 * n,) and choice.dtype == np.int32
    for kind in range(3):
        counts = np.bincount(choice[kind * n : (kind + 1) * n], minlength=5)
        testing.assert_chi_square(counts, special.softmax(v[kind] / alpha))


def test_select_check_has_power(key):
    v = np.array([0.0, 1.0, -0.5, 2.0, 0.3])
    values = jnp.asarray(np.repeat(v[None], 20_000, axis=0).T, jnp.float32)
    counts = np.bincount(np.asarray(_SELECT(key, values, 1.0)), minlength=5)
    with pytest.raises(AssertionError):  # a 10% hotter temperature is detected
        testing.assert_chi_square(counts, special.softmax(v / 1.1))


def test_select_alpha_zero_is_argmax_and_nan_is_never_kept(key):
    values = jax.random.normal(key, (6, 1000))
    np.testing.assert_array_equal(
        np.asarray(svdd.select(key, values, 0)), np.argmax(np.asarray(values), axis=0)
    )
    # A NaN value counts as -inf, for the argmax and for sampling.
    with_nan = values.at[2].set(jnp.nan).at[4].set(100.0)
    assert (np.asarray(svdd.select(key, with_nan, 0.0)) == 4).all()
    picked = np.asarray(_SELECT(key, values.at[2].set(jnp.nan), 0.5))
    assert not (picked == 2).any()


def test_select_negative_alpha_raises(key):
    with pytest.raises(ValueError, match="alpha"):
        svdd.select(key, jnp.zeros((2, 3)), -0.1)


# ----------------------------------------------------------------------------
# run: the steered Gaussian random walk, exactly.
# ----------------------------------------------------------------------------

WALK = smc.FeynmanKac(
    init=lambda key, n: jnp.zeros(n),
    mutate=lambda key, t, x: x + jax.random.normal(key, x.shape, x.dtype),
    log_potential=None,
)
NUM_STEPS = 5
NUM_PARTICLES = 20_000


def _value(t, x):
    return x


def _mean_increment(alpha):
    """E[u sigmoid(u / alpha)] with u ~ N(0, 2): the mean kept increment, M = 2."""
    if alpha == 0:
        return 1.0 / math.sqrt(math.pi)  # E[max(z1, z2)]
    def integrand(u):
        return u * special.expit(u / alpha) * stats.norm.pdf(u, scale=math.sqrt(2))

    return integrate.quad(integrand, -np.inf, np.inf)[0]


_RUN = jax.jit(svdd.run, static_argnums=(1, 2, 3, 4, 5, 6))


def _steered(num_candidates, alpha, seed=0):
    x, info = _RUN(
        jax.random.key(seed), WALK, _value, NUM_PARTICLES, NUM_STEPS, num_candidates,
        alpha,
    )
    return np.asarray(x, np.float64), info


@pytest.mark.parametrize("alpha", [0.0, 0.5, 2.0])
def test_run_matches_exact_steered_law(alpha):
    x, info = _steered(2, alpha)
    m = _mean_increment(alpha)
    mean, var = NUM_STEPS * m, NUM_STEPS * (1 - m * m)
    testing.assert_mean_close(np.stack([x, (x - mean) ** 2], axis=1), [mean, var])
    # Info: the kept value is the particle itself (v(x) = x), never above the best.
    assert info.value.shape == (NUM_STEPS, NUM_PARTICLES)
    np.testing.assert_array_equal(np.asarray(info.value[-1], np.float64), x)
    assert (np.asarray(info.value) <= np.asarray(info.best)).all()
    if alpha == 0:
        np.testing.assert_array_equal(np.asarray(info.value), np.asarray(info.best))


def test_one_candidate_is_the_unsteered_walk():
    x, info = _steered(1, 0.5)
    testing.assert_mean_close(np.stack([x, x**2], axis=1), [0.0, NUM_STEPS])
    assert stats.kstest(x, stats.norm(scale=math.sqrt(NUM_STEPS)).cdf).pvalue > 1e-6
    np.testing.assert_array_equal(np.asarray(info.value), np.asarray(info.best))


def test_steering_raises_the_value():
    steered, _ = _steered(2, 0.5, seed=1)
    flat, _ = _steered(2, 1e6, seed=2)
    # The difference of two independent means, 5 standard errors.
    se = math.sqrt(steered.var(ddof=1) / len(steered) + flat.var(ddof=1) / len(flat))
    assert steered.mean() - flat.mean() > 5 * se
    # alpha -> infinity: unsteered (mean increment ~ 1 / (2 alpha) per step).
    testing.assert_mean_close(flat, 0.0)


def _tree_propose(k, t, p):
    step = jax.random.normal(k, p["x"].shape)
    return {"x": p["x"] + step, "y": p["y"] + step[:, None]}


@jax.jit
def _tree_step(key, particles):
    value = lambda t, p: -((p["x"] - 2.0) ** 2)
    return svdd.step(key, 1, particles, _tree_propose, value, 4, 0.5)


def test_step_keeps_whole_candidates_of_pytree_particles(key):
    # Every leaf of a particle comes from the same kept candidate.
    particles = {"x": jnp.arange(8.0), "y": jnp.tile(jnp.arange(8.0)[:, None], (1, 3))}
    kept, info = _tree_step(key, particles)
    assert kept["x"].shape == (8,) and kept["y"].shape == (8, 3)
    np.testing.assert_allclose(  # equal up to float rounding of the fused adds
        np.asarray(kept["y"]), np.tile(np.asarray(kept["x"])[:, None], 3), rtol=1e-6
    )
    expected = -((np.asarray(kept["x"]) - 2.0) ** 2)
    np.testing.assert_allclose(np.asarray(info.value), expected, rtol=1e-6)
    assert (np.asarray(info.value) <= np.asarray(info.best)).all()


@pytest.mark.parametrize("bad", [0, -1, 2.0])
def test_bad_num_candidates_raises(bad, key):
    with pytest.raises(ValueError, match="num_candidates"):
        svdd.run(key, WALK, _value, 8, 2, bad, 1.0)


def test_vmap_equals_per_key_loop_without_retrace():
    def fn(key):
        return svdd.run(key, WALK, _value, 64, 3, 3, 0.7)

    chex.clear_trace_counter()
    jitted = jax.jit(chex.assert_max_traces(fn, n=1))
    keys = jax.random.split(jax.random.key(7), 3)
    loop = [jitted(k) for k in keys]
    batched = jax.jit(jax.vmap(fn))(keys)
    for i, single in enumerate(loop):
        chex.assert_trees_all_close(jax.tree.map(lambda a: a[i], batched), single)
