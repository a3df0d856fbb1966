"""Tests for jaxsampling.kernels.smc.mcmc.

Invariance of the tempered target for both kernels (exact draws in, 20 moves,
moments within 5 standard errors; particles are independent chains), with a
check that the same test catches a kernel aimed at the wrong temperature;
``cloud_cholesky`` against a float64 numpy computation; exact behaviour at
zero step size; NaN and -inf proposals rejected; shapes, jit/vmap and retrace.
"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxsampling import testing
from jaxsampling.kernels.smc import mcmc, mixtures

KERNELS = {"random_walk": mcmc.random_walk, "mala": mcmc.mala}

# A correlated Gaussian prior and a Gaussian likelihood with another shape:
# pi_lambda is Gaussian with precision P0 + lambda R^-1 and mean
# Sigma_lambda lambda R^-1 b.
PRIOR_COV = np.array([[4.0, 1.2], [1.2, 1.0]])
LIK_PREC = np.diag([2.0, 0.5])
LIK_CENTRE = np.array([1.0, -0.5])


def _gaussian_target():
    prior_prec = jnp.asarray(np.linalg.inv(PRIOR_COV), jnp.float32)
    lik_prec = jnp.asarray(LIK_PREC, jnp.float32)
    centre = jnp.asarray(LIK_CENTRE, jnp.float32)
    return mcmc.Target(
        log_prior=lambda x: -0.5 * x @ prior_prec @ x,
        log_likelihood=lambda x: -0.5 * (x - centre) @ lik_prec @ (x - centre),
    )


# Module-level targets: a Target of fresh lambdas would be a new static argument
# (and a new compilation) on every call.
GAUSSIAN = _gaussian_target()


def _tempered_gaussian(temperature):
    """Exact mean and covariance of pi_lambda for the Gaussian target."""
    prec = np.linalg.inv(PRIOR_COV) + temperature * LIK_PREC
    cov = np.linalg.inv(prec)
    return cov @ (temperature * LIK_PREC @ LIK_CENTRE), cov


def _apply(kernel, key, position, target, temperature, chol, scale, num_steps):
    """``num_steps`` moves of every particle from ``position``."""

    def body(p, k):
        p, accepted = kernel(k, p, target, temperature, chol, scale)
        return p, accepted

    particles = mcmc.evaluate(target, position)
    return jax.lax.scan(body, particles, jax.random.split(key, num_steps))


# One compilation per (kernel, target): temperature, chol and scale are traced.
_APPLY = jax.jit(_apply, static_argnums=(0, 3, 7))
_EVAL = jax.jit(mcmc.evaluate, static_argnums=0)
_CHOL = jax.jit(mcmc.cloud_cholesky)


def _assert_gaussian_moments(x, mean, cov):
    """Mean, variances and covariance of independent draws within 5 SE."""
    x = np.asarray(x, np.float64)
    testing.assert_mean_close(x, mean)
    c = x - mean
    products = np.stack([c[:, 0] ** 2, c[:, 1] ** 2, c[:, 0] * c[:, 1]], axis=1)
    testing.assert_mean_close(products, [cov[0, 0], cov[1, 1], cov[0, 1]])


def _invariance_run(kernel, temperature, chain_temperature, scale, seed=0, n=20_000):
    """Exact draws of pi_temperature, then 20 moves aimed at chain_temperature."""
    mean, cov = _tempered_gaussian(temperature)
    move_key = jax.random.key(seed)
    z = np.random.default_rng(seed).standard_normal((n, 2))
    x0 = jnp.asarray(mean + z @ np.linalg.cholesky(cov).T, jnp.float32)
    # A fixed preconditioner (not computed from the cloud, so the chains stay
    # independent): the covariance's Cholesky, stretched along one axis.
    chol = jnp.asarray(np.linalg.cholesky(cov) @ np.diag([1.5, 0.7]), jnp.float32)
    particles, accepted = _APPLY(
        kernel, move_key, x0, GAUSSIAN, chain_temperature, chol, scale, 20
    )
    return particles, np.asarray(accepted), mean, cov


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("temperature,scale", [(0.3, 1.0), (1.0, 0.5)])
def test_kernel_leaves_tempered_gaussian_invariant(name, temperature, scale):
    particles, accepted, mean, cov = _invariance_run(
        KERNELS[name], temperature, temperature, scale
    )
    _assert_gaussian_moments(particles.position, mean, cov)
    rate = accepted.mean()
    assert 0.05 < rate < 0.98, rate
    # The cached values are those of the positions.
    fresh = _EVAL(GAUSSIAN, particles.position)
    np.testing.assert_allclose(
        particles.log_prior, fresh.log_prior, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        particles.log_likelihood, fresh.log_likelihood, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_invariance_check_has_power(name):
    # Start at pi_1 but move with a kernel aimed at pi_0.3: the same check fails.
    particles, _, mean, cov = _invariance_run(KERNELS[name], 1.0, 0.3, 1.0)
    with pytest.raises(AssertionError):
        _assert_gaussian_moments(particles.position, mean, cov)


# A bimodal pi_1: Gaussian prior times a two-component mixture likelihood;
# exact draws from mixtures.product.
MIX_PRIOR = mixtures.GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), jnp.full(1, 2.0))
MIX_LIKELIHOOD = mixtures.GaussianMixture(
    jnp.array([0.3, 0.7]), jnp.array([[-1.0, 0.0], [1.0, 0.5]]), jnp.array([0.9, 0.7])
)
MIXTURE_TARGET = mcmc.Target(MIX_PRIOR.log_density, MIX_LIKELIHOOD.log_density)


_PRODUCT = jax.jit(mixtures.product)


def _np_sample(mixture, n, rng):
    """Exact draws from an isotropic mixture, in numpy."""
    w = np.asarray(mixture.weights, np.float64)
    k = rng.choice(len(w), size=n, p=w / w.sum())
    mu, sd = np.asarray(mixture.means), np.asarray(mixture.sds)
    return mu[k] + sd[k][:, None] * rng.standard_normal((n, mu.shape[1]))


def _np_moments(mixture):
    w = np.asarray(mixture.weights, np.float64)
    w = w / w.sum()
    mu = np.asarray(mixture.means, np.float64)
    var = np.asarray(mixture.sds, np.float64) ** 2
    mean = w @ mu
    second = np.einsum("k,ki,kj->ij", w, mu, mu) + (w @ var) * np.eye(mu.shape[1])
    return mean, second


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_leaves_product_mixture_invariant(name):
    posterior = _PRODUCT(MIX_PRIOR, MIX_LIKELIHOOD)
    mean, second = _np_moments(posterior)
    n = 20_000
    x0 = _np_sample(posterior, n, np.random.default_rng(1))
    chol = np.linalg.cholesky(second - np.outer(mean, mean))
    particles, _ = _APPLY(
        KERNELS[name], jax.random.key(1), jnp.asarray(x0, jnp.float32), MIXTURE_TARGET,
        1.0, jnp.asarray(chol, jnp.float32), 1.0, 20,
    )
    x = np.asarray(particles.position, np.float64)
    testing.assert_mean_close(x, mean)
    outer = np.einsum("ni,nj->nij", x, x).reshape(n, 4)
    testing.assert_mean_close(outer, second.reshape(4))


def _half_space_log_likelihood(x):
    """``log x_0`` on ``x_0 > 0`` (NaN elsewhere); ``-inf`` where ``x_1 > 2``."""
    safe = jnp.where(x[0] > 0, x[0], 1.0)
    value = jnp.where(x[0] > 0, jnp.log(safe), jnp.nan)
    return jnp.where(x[1] > 2.0, -jnp.inf, value)


HALF_SPACE = mcmc.Target(lambda x: -0.5 * jnp.sum(x**2), _half_space_log_likelihood)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_nan_and_minus_inf_proposals_are_rejected(name):
    # pi_1(x) ∝ x_0 exp(-|x|^2 / 2) on {x_0 > 0, x_1 <= 2}: x_0 is Rayleigh
    # (E x_0 = sqrt(pi/2), E x_0^2 = 2) and x_1 a standard normal truncated to
    # (-inf, 2]. Proposals into x_0 <= 0 have a NaN log-likelihood and proposals
    # into x_1 > 2 a -inf one; both must be rejected.
    n = 20_000
    rng = np.random.default_rng(2)
    truncated = stats.truncnorm(-np.inf, 2.0)
    rayleigh = np.sqrt(-2.0 * np.log1p(-rng.uniform(size=n)))
    x0 = np.stack([rayleigh, truncated.rvs(n, random_state=rng)], axis=1)
    x0[:, 0] = np.maximum(x0[:, 0], 1e-6)
    particles, accepted = _APPLY(
        KERNELS[name], jax.random.key(2), jnp.asarray(x0, jnp.float32), HALF_SPACE, 1.0,
        jnp.eye(2), 1.5, 20,
    )
    x = np.asarray(particles.position, np.float64)
    assert (x[:, 0] > 0).all() and (x[:, 1] <= 2.0).all()
    assert np.isfinite(np.asarray(particles.log_likelihood)).all()
    assert 0.05 < np.asarray(accepted).mean() < 0.95
    testing.assert_mean_close(
        np.stack([x[:, 0], x[:, 0] ** 2, x[:, 1], x[:, 1] ** 2], axis=1),
        [math.sqrt(math.pi / 2), 2.0, truncated.mean(), truncated.moment(2)],
    )


# One move of every particle, compiled once per (kernel, target).
_MOVE = jax.jit(
    lambda kernel, target, key, p, temperature, chol, scale: kernel(
        key, p, target, temperature, chol, scale
    ),
    static_argnums=(0, 1),
)
def test_random_walk_zero_scale_accepts_everything(key):
    x0 = jnp.asarray(np.random.default_rng(3).standard_normal((8, 2)), jnp.float32)
    p = _EVAL(GAUSSIAN, x0)._replace(acceptance=jnp.zeros(8))
    moved, accepted = _MOVE(mcmc.random_walk, GAUSSIAN, key, p, 0.7, jnp.eye(2), 0.0)
    assert np.asarray(accepted).all()
    np.testing.assert_array_equal(np.asarray(moved.position), np.asarray(x0))


def test_cloud_cholesky_matches_weighted_covariance():
    rng = np.random.default_rng(0)
    mixing = np.array([[2.0, 0, 0], [0.5, 1.0, 0], [0.3, -0.2, 0.4]])
    x = rng.normal(size=(50, 3)) @ mixing
    w = rng.uniform(size=50)
    w /= w.sum()
    mean = w @ x
    cov = ((x - mean) * w[:, None]).T @ (x - mean)
    jitter = 1e-3
    expected = np.linalg.cholesky(cov + jitter * np.trace(cov) / 3 * np.eye(3))
    x32, w32 = jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32)
    chol = np.asarray(_CHOL(x32, w32, jitter))
    np.testing.assert_allclose(chol, expected, rtol=1e-4, atol=1e-5)
    assert np.allclose(np.triu(chol, 1), 0.0) and (np.diag(chol) > 0).all()
    # Default jitter (1e-6): L L^T is the weighted covariance.
    chol = np.asarray(_CHOL(x32, w32))
    np.testing.assert_allclose(chol @ chol.T, cov, rtol=1e-4, atol=1e-5)


def test_cloud_cholesky_ignores_zero_weights_and_survives_collapse():
    x = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 1.0], [100.0, -100.0]], np.float32)
    w = np.array([0.25, 0.5, 0.25, 0.0], np.float32)
    kept = _CHOL(x[:3], w[:3] / w[:3].sum())
    np.testing.assert_allclose(np.asarray(_CHOL(x, w)), np.asarray(kept), rtol=1e-6)
    collapsed = _CHOL(np.ones((5, 2), np.float32), np.full(5, 0.2, np.float32))
    assert np.isfinite(np.asarray(collapsed)).all()
    assert (np.diag(np.asarray(collapsed)) > 0).all()


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_shapes_dtypes_and_acceptance_passthrough(name, key):
    x0 = jnp.asarray(np.random.default_rng(4).standard_normal((8, 2)), jnp.float32)
    p = _EVAL(GAUSSIAN, x0)
    assert p.position.shape == (8, 2) and p.log_prior.shape == (8,)
    assert p.acceptance is None
    carried = p._replace(acceptance=jnp.full(8, 0.25))
    moved, accepted = _MOVE(KERNELS[name], GAUSSIAN, key, carried, 0.5, jnp.eye(2), 1.0)
    assert moved.position.shape == (8, 2) and moved.position.dtype == jnp.float32
    assert moved.log_prior.shape == (8,) and moved.log_likelihood.shape == (8,)
    assert accepted.shape == (8,) and accepted.dtype == jnp.bool_
    # The kernels carry ``acceptance`` unchanged.
    np.testing.assert_array_equal(np.asarray(moved.acceptance), 0.25)
    # Rejected particles keep their position exactly; accepted ones moved.
    acc = np.asarray(accepted)
    assert acc.any()
    same = np.all(np.asarray(moved.position) == np.asarray(p.position), axis=1)
    np.testing.assert_array_equal(same, ~acc)


def test_evaluate_rejects_bad_shapes():
    target = GAUSSIAN
    with pytest.raises(ValueError, match="position must have shape"):
        mcmc.evaluate(target, jnp.zeros(3))
    vector = mcmc.Target(lambda x: x, lambda x: jnp.sum(x))
    with pytest.raises(ValueError, match="log_prior"):
        mcmc.evaluate(vector, jnp.zeros((4, 2)))


def test_optimal_acceptance_table():
    assert mcmc.OPTIMAL_ACCEPTANCE == {mcmc.random_walk: 0.234, mcmc.mala: 0.574}


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_vmap_matches_jit_and_eager_without_retrace(name, key):
    kernel = KERNELS[name]

    def fn(k, x, temperature, chol, scale):
        return kernel(k, mcmc.evaluate(GAUSSIAN, x), GAUSSIAN, temperature, chol, scale)

    chex.clear_trace_counter()  # the footprint is shared by the parametrized cases
    jitted = jax.jit(chex.assert_max_traces(fn, n=1))
    keys = jax.random.split(key, 3)
    x = jnp.asarray(np.random.default_rng(5).standard_normal((3, 8, 2)), jnp.float32)
    temperature = jnp.array([0.5, 0.9, 1.0])
    prior_chol = jnp.asarray(np.linalg.cholesky(PRIOR_COV), jnp.float32)
    chol = jnp.stack([jnp.eye(2), 2.0 * jnp.eye(2), prior_chol])
    scale = jnp.array([1.0, 0.5, 2.0])
    args = (keys, x, temperature, chol, scale)
    batched = jax.jit(jax.vmap(fn))(*args)
    for i in range(3):  # new values, same shapes: one trace
        chex.assert_trees_all_close(
            jax.tree.map(lambda a: a[i], batched), jitted(*(a[i] for a in args)),
            rtol=1e-5, atol=1e-6,
        )
    if kernel is mcmc.random_walk:  # eager MALA costs seconds of op-by-op dispatch
        chex.assert_trees_all_close(
            jax.tree.map(lambda a: a[0], batched), fn(*(a[0] for a in args)),
            rtol=1e-5, atol=1e-6,
        )
