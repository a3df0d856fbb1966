"""Tests for jaxsampling.kernels.smc.mixtures.

Every closed form is checked against an independent float64 numpy computation:
the score against ``jax.grad`` of the log-density, ``noised`` against a
brute-force grid convolution, ``product`` pointwise and by quadrature, the
moments by quadrature; ``sample`` statistically (5 sigma, fixed keys) on the
moments and on exact quadrant probabilities.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxsampling import testing
from jaxsampling.kernels.smc import mixtures

# An unnormalised 2-D mixture (mass 2) with unequal weights and sds.
MIX = mixtures.GaussianMixture(
    jnp.array([0.4, 1.0, 0.6]),
    jnp.array([[-1.0, 0.5], [1.2, -0.3], [0.0, 1.5]]),
    jnp.array([0.5, 0.8, 0.4]),
)
OTHER = mixtures.GaussianMixture(
    jnp.array([0.7, 0.3]),
    jnp.array([[0.5, 0.5], [-1.5, -0.5]]),
    jnp.array([0.6, 1.1]),
)


# Jitted entry points: one compilation per shape (the mixture is a pytree
# argument), much cheaper than eager op-by-op dispatch on CPU.
_LOG_DENSITY = jax.jit(lambda m, x: m.log_density(x))
_SCORE = jax.jit(lambda m, x: m.score(x))
_GRAD = jax.jit(lambda m, x: jax.vmap(jax.grad(m.log_density))(x))
_RESPONSIBILITIES = jax.jit(lambda m, x: m.responsibilities(x))
_NOISED = jax.jit(lambda m, sigma: m.noised(sigma))
_PRODUCT = jax.jit(mixtures.product)
_MOMENTS = jax.jit(lambda m: (m.mean(), m.second_moment(), m.mass))
_SAMPLE = jax.jit(lambda m, key, n: m.sample(key, n), static_argnums=2)


def _np_density(mixture, x):
    """float64 ``sum_k w_k N(x; mu_k, s_k^2 I)`` for x of shape [n, d]."""
    w = np.asarray(mixture.weights, np.float64)
    mu = np.asarray(mixture.means, np.float64)
    var = np.asarray(mixture.sds, np.float64) ** 2
    x = np.asarray(x, np.float64)
    d = mu.shape[1]
    sq = np.sum((x[:, None, :] - mu[None]) ** 2, axis=-1)
    return np.sum(w * np.exp(-0.5 * sq / var) / (2 * math.pi * var) ** (d / 2), axis=-1)


def _np_grid(low, high, size, dim):
    axis = np.linspace(low, high, size)
    mesh = np.stack(np.meshgrid(*([axis] * dim), indexing="ij"), -1).reshape(-1, dim)
    return mesh, (axis[1] - axis[0]) ** dim


def _random_points(seed, n, d, scale=2.0):
    x = scale * np.random.default_rng(seed).standard_normal((n, d))
    return x.astype(np.float32)


def test_log_density_matches_formula():
    x = _random_points(0, 64, 2)
    np.testing.assert_allclose(
        np.asarray(_LOG_DENSITY(MIX, x)),
        np.log(_np_density(MIX, x)),
        rtol=1e-5,
        atol=1e-5,
    )
    # Batch dimensions broadcast: [4, 16, d] -> [4, 16].
    assert _LOG_DENSITY(MIX, x.reshape(4, 16, 2)).shape == (4, 16)
    r = np.asarray(_RESPONSIBILITIES(MIX, x))
    np.testing.assert_allclose(r.sum(-1), 1.0, rtol=1e-6)


def test_mass_is_the_integral():
    points, volume = _np_grid(-7.0, 7.0, 281, 2)
    integral = np.sum(_np_density(MIX, points)) * volume
    np.testing.assert_allclose(float(MIX.mass), 2.0, rtol=1e-7)
    np.testing.assert_allclose(integral, 2.0, rtol=1e-6)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_score_equals_grad_of_log_density(dim):
    rng = np.random.default_rng(dim)
    mixture = mixtures.GaussianMixture(
        jnp.asarray(rng.uniform(0.2, 1.0, 4), jnp.float32),
        jnp.asarray(rng.normal(size=(4, dim)), jnp.float32),
        jnp.asarray(rng.uniform(0.3, 1.0, 4), jnp.float32),
    )
    x = _random_points(10 + dim, 50, dim)
    grad = _GRAD(mixture, x)
    score = _SCORE(mixture, x)
    assert score.shape == (50, dim)
    np.testing.assert_allclose(
        np.asarray(score), np.asarray(grad), rtol=1e-4, atol=1e-4
    )
    # The documented doctest value: a symmetric mixture has zero score at 0.
    sym = mixtures.GaussianMixture(
        jnp.array([0.5, 0.5]), jnp.array([[-1.0], [1.0]]), jnp.array([0.3, 0.3])
    )
    assert float(sym.score(jnp.zeros((1, 1)))[0, 0]) == 0.0


@pytest.mark.parametrize("sigma", [0.3, 1.0])
def test_noised_equals_grid_convolution(sigma):
    # q(x) = int p(y) N(x - y; sigma^2 I) dy by a Riemann sum on a fine grid
    # (spectrally accurate for these smooth, fast-decaying integrands).
    y, volume = _np_grid(-8.0, 8.0, 321, 2)
    p_y = _np_density(MIX, y)
    x = _random_points(1, 12, 2, scale=1.5).astype(np.float64)
    sq = np.sum((x[:, None, :] - y[None]) ** 2, axis=-1)
    kernel = np.exp(-0.5 * sq / sigma**2) / (2 * math.pi * sigma**2)
    brute = kernel @ p_y * volume
    noised = _NOISED(MIX, sigma)
    np.testing.assert_allclose(
        np.exp(np.asarray(_LOG_DENSITY(noised, x))), brute, rtol=1e-5
    )
    np.testing.assert_allclose(float(noised.mass), float(MIX.mass), rtol=1e-7)


def test_noised_semigroup_and_identity():
    x = _random_points(2, 16, 2)
    twice = _NOISED(_NOISED(MIX, 0.6), 0.8)
    once = _NOISED(MIX, 1.0)  # 0.6^2 + 0.8^2 = 1
    np.testing.assert_allclose(
        np.asarray(_LOG_DENSITY(twice, x)), np.asarray(_LOG_DENSITY(once, x)), rtol=1e-5
    )
    np.testing.assert_array_equal(
        np.asarray(_NOISED(MIX, 0.0).sds), np.asarray(MIX.sds)
    )


def test_product_is_pointwise_product():
    pq = _PRODUCT(MIX, OTHER)
    assert pq.weights.shape == (6,) and pq.sds.shape == (6,)
    assert pq.means.shape == (6, 2)
    x = _random_points(3, 64, 2, scale=1.5)
    np.testing.assert_allclose(
        np.asarray(_LOG_DENSITY(pq, x)),
        np.log(_np_density(MIX, x) * _np_density(OTHER, x)),
        rtol=1e-5,
        atol=1e-5,
    )


def test_product_mass_and_moments_by_quadrature():
    pq = _PRODUCT(MIX, OTHER)
    mean, second_moment, pq_mass = _MOMENTS(pq)
    points, volume = _np_grid(-7.0, 7.0, 281, 2)
    dens = _np_density(MIX, points) * _np_density(OTHER, points)
    mass = dens.sum() * volume
    np.testing.assert_allclose(float(pq_mass), mass, rtol=1e-5)
    prob = dens / dens.sum()
    np.testing.assert_allclose(np.asarray(mean), prob @ points, rtol=1e-4, atol=1e-5)
    second = np.einsum("n,ni,nj->ij", prob, points, points)
    np.testing.assert_allclose(np.asarray(second_moment), second, rtol=1e-4, atol=1e-5)


def test_product_with_a_gaussian_matches_the_doctest_case():
    g = mixtures.GaussianMixture(jnp.ones(1), jnp.zeros((1, 1)), jnp.ones(1))
    pq = _PRODUCT(g, g)
    # N(x; 0, 1)^2 = N(0; 0, 2) N(x; 0, 1/2).
    np.testing.assert_allclose(float(pq.mass), 1 / math.sqrt(4 * math.pi), rtol=1e-6)
    np.testing.assert_allclose(float(pq.sds[0]) ** 2, 0.5, rtol=1e-6)


def test_mean_and_second_moment_by_quadrature():
    points, volume = _np_grid(-7.0, 7.0, 281, 2)
    prob = _np_density(MIX, points)
    prob /= prob.sum()
    mean, second_moment, _ = _MOMENTS(MIX)
    np.testing.assert_allclose(np.asarray(mean), prob @ points, rtol=1e-5, atol=1e-6)
    second = np.einsum("n,ni,nj->ij", prob, points, points)
    np.testing.assert_allclose(np.asarray(second_moment), second, rtol=1e-5)


def _quadrant_probs(mixture):
    """Exact P(quadrant) of an isotropic 2-D mixture: (+,+), (-,+), (-,-), (+,-)."""
    w = np.asarray(mixture.weights, np.float64)
    w = w / w.sum()
    mu = np.asarray(mixture.means, np.float64)
    sd = np.asarray(mixture.sds, np.float64)
    px = stats.norm.cdf(mu[:, 0] / sd)  # P(x > 0)
    py = stats.norm.cdf(mu[:, 1] / sd)
    return np.array(
        [
            w @ (px * py),
            w @ ((1 - px) * py),
            w @ ((1 - px) * (1 - py)),
            w @ (px * (1 - py)),
        ]
    )


def _quadrants(x):
    x = np.asarray(x)
    right, up = x[:, 0] > 0, x[:, 1] > 0
    return np.stack([right & up, ~right & up, ~right & ~up, right & ~up], axis=1)


@pytest.fixture(scope="module")
def draws():
    x = _SAMPLE(MIX, jax.random.key(0), 200_000)
    assert x.shape == (200_000, 2) and x.dtype == jnp.float32
    return np.asarray(x, np.float64)


def test_sample_law(draws):
    x = draws
    mean, second_moment, _ = _MOMENTS(MIX)
    testing.assert_mean_close(x, np.asarray(mean))
    outer = np.einsum("ni,nj->nij", x, x).reshape(len(x), 4)
    testing.assert_mean_close(outer, np.asarray(second_moment).reshape(4))
    testing.assert_chi_square(_quadrants(x).sum(0), _quadrant_probs(MIX))


def test_sample_detects_a_wrong_law(draws):
    # The same checks have power: another mixture's moments and quadrants fail.
    other = MIX._replace(weights=jnp.array([0.5, 1.0, 0.5]))
    with pytest.raises(AssertionError):
        testing.assert_mean_close(draws, np.asarray(_MOMENTS(other)[0]))
    with pytest.raises(AssertionError):
        testing.assert_chi_square(_quadrants(draws).sum(0), _quadrant_probs(other))


def test_grid():
    points, volume = mixtures.grid(-1.0, 1.0, 5, dim=2)
    assert points.shape == (25, 2)
    assert volume == pytest.approx(0.25)
    np.testing.assert_allclose(np.asarray(points[:2]), [[-1.0, -1.0], [-1.0, -0.5]])
    points3, volume3 = mixtures.grid(0.0, 1.0, 3, dim=3)
    assert points3.shape == (27, 3) and volume3 == pytest.approx(0.125)


def test_eager_jit_and_vmap_agree():
    x = _random_points(4, 8, 2)
    eager = MIX.score(x)
    np.testing.assert_allclose(
        np.asarray(_SCORE(MIX, x)), np.asarray(eager), rtol=1e-6, atol=1e-6
    )
    # vmap over noise levels: one noised mixture per sigma.
    sigmas = jnp.array([0.1, 0.5, 2.0])
    batched = jax.jit(jax.vmap(lambda s: MIX.noised(s).log_density(x)))(sigmas)
    for i, s in enumerate(sigmas):
        np.testing.assert_allclose(
            np.asarray(batched[i]),
            np.asarray(_LOG_DENSITY(_NOISED(MIX, s), x)),
            rtol=1e-6,
        )
