"""Tests for jaxsampling.kernels.smc.correctors (Feynman-Kac correctors).

Three layers:

1. **Exact, per step.** The drift, noise and weight rate of one step against
   scores computed independently with ``jax.grad`` of the noised log-densities.
2. **Exact, whole sampler (1-D Gaussians).** With a Gaussian data density the
   Euler-Maruyama Feynman-Kac model is linear-Gaussian with quadratic
   log-potentials, so the law of the weighted particles after K steps and its
   normalising constant are computed exactly (a numpy recursion, below). The
   sampler's weighted mean, second moment and ``Z_hat`` (natural scale) must
   match within 5 standard errors estimated from 32 vmapped seeds. This is free
   of discretisation error; the recursion is itself checked to converge to the
   continuous-time target ``q_{sigma_min}^beta`` (or ``q1 q2``) as K grows.
3. **Statistical, 2-D mixtures.** Annealing a 4-mode mixture with unequal
   weights, and a product of two 2-mode experts: mode weights and first two
   moments against grid quadrature / the exact product mixture, 5 SE over
   vmapped seeds. The same assertion applied to the uncorrected sampler
   (``corrected=False``) must fail.

**Why beta = 1.5 and not larger.** For a Gaussian ``q`` and the drift
``beta s``, the expected future weight ``h(x) = E[exp(int g) | x]`` grows like
``exp((beta - 1) |x - mu|^2 / (2 a))`` (``a = s0^2 + sigma^2``, the self-similar
solution of the backward Riccati equation), while the particles spread like
``N(mu, a / beta)``. ``E[h^2]`` is then finite only for ``beta < 2``: above that
the FKC weights have infinite variance, the estimates' seed-to-seed spread does
not shrink like ``1 / sqrt(N)`` (measured: beta = 10, mode-weight seed sd 0.29
at N = 1024 and 0.26 at N = 4096) and no 5-sigma test is valid. The product of
experts behaves like beta = 2 while ``sigma >> s_k`` (borderline), so its paths
start at ``sigma_max = 1`` (from 1.5, pooled over 320 seeds, one 2-D mode
weight was 3.1 SE off and 32-seed batches reached |z| = 3.6). The criterion
``4 k v < 1`` is evaluated exactly for the discrete 1-D models in
:func:`test_finite_variance_criterion`.
"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxsampling import testing
from jaxsampling.kernels import smc
from jaxsampling.kernels.smc import correctors, mixtures

NUM_SEEDS = 32

# ----------------------------------------------------------------------------
# Exact 1-D Gaussian Feynman-Kac recursion (numpy, float64).
# ----------------------------------------------------------------------------


def _gaussian_fk(initial, steps):
    """Exact law of a 1-D linear-Gaussian Feynman-Kac model.

    Args:
      initial: ``(log_z, mean, var)`` of the weighted initial measure
        ``exp(log_z) N(mean, var)``.
      steps: ``(c2, c1, c0, A, B, D)`` per step: the potential
        ``log G = c2 x^2 + c1 x + c0`` of ``x_{t-1}``, then
        ``x_t = A x_{t-1} + B + sqrt(D) z``.

    Returns:
      ``(log_z, mean, var)`` after the last step.
    """
    log_z, m, v = initial
    for c2, c1, c0, a, b, d in steps:
        precision = 1.0 / v - 2.0 * c2
        if precision <= 0:
            raise ValueError("the potential is not integrable against the measure")
        new_m = (m / v + c1) / precision
        log_z += c0 + 0.5 * math.log(1.0 / (v * precision)) + 0.5 * (
            new_m**2 * precision - m**2 / v
        )
        m, v = a * new_m + b, a * a / precision + d
    return log_z, m, v


def _log_normal(x, mean, var):
    return -0.5 * (x - mean) ** 2 / var - 0.5 * math.log(2 * math.pi * var)


def _annealing_fk(mu, s0, beta, sigmas, init_sd, corrected=True):
    """The exact ``(log_z, mean, var)`` of correctors.annealing in 1-D."""
    sigmas = np.asarray(sigmas, np.float64)
    a0 = s0**2 + sigmas[0] ** 2
    if corrected:
        # int N(x; mu, a0)^beta dx, and the measure's normalised law.
        log_z0 = -0.5 * beta * math.log(2 * math.pi * a0) + 0.5 * math.log(
            2 * math.pi * a0 / beta
        )
        initial = (log_z0, mu, a0 / beta)
    else:
        initial = (0.0, 0.0, init_sd**2)
    steps = []
    for prev, cur in zip(sigmas[:-1], sigmas[1:]):
        a, d = s0**2 + prev**2, prev**2 - cur**2
        c2 = d * 0.5 * beta * (beta - 1) / a**2 if corrected else 0.0
        drift = (1 - d * beta / a, d * beta * mu / a, d)
        steps.append((c2, -2 * mu * c2, mu * mu * c2) + drift)
    return _gaussian_fk(initial, steps)


def _product_fk(m1, s1, m2, s2, sigmas, init_sd, corrected=True):
    """The exact ``(log_z, mean, var)`` of correctors.product_of_experts in 1-D."""
    sigmas = np.asarray(sigmas, np.float64)
    a1, a2 = s1**2 + sigmas[0] ** 2, s2**2 + sigmas[0] ** 2
    if corrected:
        initial = (
            _log_normal(m1, m2, a1 + a2),
            (m1 * a2 + m2 * a1) / (a1 + a2),
            a1 * a2 / (a1 + a2),
        )
    else:
        initial = (0.0, 0.0, init_sd**2)
    steps = []
    for prev, cur in zip(sigmas[:-1], sigmas[1:]):
        a1, a2, d = s1**2 + prev**2, s2**2 + prev**2, prev**2 - cur**2
        k = d / (a1 * a2) if corrected else 0.0
        steps.append(
            (k, -k * (m1 + m2), k * m1 * m2, 1 - d * (1 / a1 + 1 / a2),
             d * (m1 / a1 + m2 / a2), d)
        )
    return _gaussian_fk(initial, steps)


def _gaussian(mu, sd):
    return mixtures.GaussianMixture(jnp.ones(1), jnp.full((1, 1), mu), jnp.full(1, sd))


# The 1-D cases (float64 parameters for the recursion).
ANNEAL_1D = dict(mu=0.7, s0=0.5, beta=1.5, sigma_max=3.0, init_sd=2.0)
PRODUCT_1D = dict(m1=-0.5, s1=0.8, m2=1.0, s2=0.6, sigma_max=1.0, init_sd=1.5)
K_1D = 100
N_1D = 512


def test_recursion_converges_to_the_continuous_target():
    # The discrete scheme's exact law tends to q_{sigma_min}^beta (resp. q1 q2)
    # as K grows: the weight rates are right in the continuous limit.
    c = ANNEAL_1D
    a_min = c["s0"] ** 2 + 0.01**2
    beta = c["beta"]
    z_cont = -0.5 * beta * math.log(2 * math.pi * a_min) + 0.5 * math.log(
        2 * math.pi * a_min / beta
    )
    errors = []
    for k in (250, 1000, 4000):
        sig = np.geomspace(c["sigma_max"], 0.01, k + 1)
        log_z, m, v = _annealing_fk(c["mu"], c["s0"], beta, sig, c["init_sd"])
        v_cont = a_min / beta
        errors.append((abs(log_z - z_cont), abs(m - c["mu"]), abs(v / v_cont - 1)))
    errors = np.array(errors)
    assert (errors[-1] < [2e-3, 1e-6, 2e-3]).all(), errors
    # First order: 4x more steps, about 4x smaller error.
    assert (errors[1, [0, 2]] / errors[2, [0, 2]] > 3).all(), errors
    p = PRODUCT_1D
    b1, b2 = p["s1"] ** 2 + 1e-4, p["s2"] ** 2 + 1e-4
    sig = np.geomspace(p["sigma_max"], 0.01, 4001)
    log_z, m, v = _product_fk(p["m1"], p["s1"], p["m2"], p["s2"], sig, p["init_sd"])
    np.testing.assert_allclose(log_z, _log_normal(p["m1"], p["m2"], b1 + b2), atol=2e-3)
    np.testing.assert_allclose(m, (p["m1"] * b2 + p["m2"] * b1) / (b1 + b2), atol=2e-3)
    np.testing.assert_allclose(v, b1 * b2 / (b1 + b2), rtol=2e-3)


def _variance_criterion(drift_prec, rate_c2, sigmas, v0):
    """max_t 4 k_t v_t: the FK estimates have finite variance iff it is < 1.

    ``h_t(x) = E[prod_{s > t} G_s | x_t = x] ∝ exp(k_t x^2)`` by the backward
    recursion; ``v_t`` is the variance of the particles' predictive law at t.
    ``E[h_t^2]`` under it is finite iff ``4 k_t v_t < 1``.
    """
    s = np.asarray(sigmas, np.float64)
    steps = [(rate_c2(p, q), 1 - (p**2 - q**2) * drift_prec(p), p**2 - q**2)
             for p, q in zip(s[:-1], s[1:])]
    v = [v0]
    for c2, a, d in steps:
        v.append(a * a / (1 / v[-1] - 2 * c2) + d)
    k = [0.0] * len(v)
    for t in range(len(steps), 0, -1):
        c2, a, d = steps[t - 1]
        k[t - 1] = c2 + k[t] * a * a / (1 - 2 * k[t] * d)
    return max(4 * kk * vv for kk, vv in zip(k[1:], v[1:]))


def _annealing_criterion(s0, beta, sigmas):
    return _variance_criterion(
        lambda p: beta / (s0**2 + p**2),
        lambda p, q: (p**2 - q**2) * 0.5 * beta * (beta - 1) / (s0**2 + p**2) ** 2,
        sigmas,
        (s0**2 + sigmas[0] ** 2) / beta,
    )


def test_finite_variance_criterion():
    sig = lambda smax, k: np.geomspace(smax, 0.01, k + 1)
    # The tested settings have finite-variance weights ...
    assert _annealing_criterion(0.5, 1.5, sig(3.0, K_1D)) < 0.75
    assert _annealing_criterion(0.4, 1.5, sig(5.0, 100)) < 0.75
    p = PRODUCT_1D
    product = _variance_criterion(
        lambda q: 1 / (p["s1"] ** 2 + q**2) + 1 / (p["s2"] ** 2 + q**2),
        lambda q, r: (q**2 - r**2) / ((p["s1"] ** 2 + q**2) * (p["s2"] ** 2 + q**2)),
        sig(p["sigma_max"], K_1D),
        1 / sum(1 / (s**2 + p["sigma_max"] ** 2) for s in (p["s1"], p["s2"])),
    )
    assert product < 0.85
    # ... while annealing at beta = 4 or 10 does not, however fine the steps.
    for beta in (4.0, 10.0):
        assert _annealing_criterion(0.4, beta, sig(5.0, 1000)) > 1.0


def _summaries(model, num_particles, num_steps, ess_threshold):
    """Per-seed weighted E[x], E[x^2] and log Z_hat of a 1-D model (vmapped).

    The vmapped program is traced once and then called again with new keys: no
    retrace (``chex.assert_max_traces``).
    """

    def one(key):
        state, info, _ = smc.run(
            key, model, num_particles, num_steps, ess_threshold=ess_threshold
        )
        w = jnp.exp(state.log_weights)
        x = state.particles[:, 0]
        return jnp.stack([w @ x, w @ x**2]), state.log_normalizer, info.valid.all()

    chex.clear_trace_counter()
    run = jax.jit(jax.vmap(chex.assert_max_traces(one, n=1)))
    moments, log_z, valid = run(jax.random.split(jax.random.key(1), NUM_SEEDS))
    again = run(jax.random.split(jax.random.key(11), NUM_SEEDS))
    assert np.asarray(valid).all() and np.asarray(again[2]).all()
    assert not np.array_equal(np.asarray(again[0]), np.asarray(moments))
    return np.asarray(moments, np.float64), np.asarray(log_z, np.float64)


def _assert_exact_1d(moments, log_z, exact):
    exact_log_z, m, v = exact
    testing.assert_mean_close(moments, [m, m * m + v])
    testing.assert_mean_close(np.exp(log_z - exact_log_z), 1.0)


def test_annealing_1d_matches_exact_discrete_law():
    c = ANNEAL_1D
    sig = correctors.geometric_sigmas(c["sigma_max"], 0.01, K_1D)
    sig64 = np.geomspace(c["sigma_max"], 0.01, K_1D + 1)
    data = _gaussian(c["mu"], c["s0"])
    corrected = _summaries(
        correctors.annealing(data, c["beta"], sig, c["init_sd"]), N_1D, K_1D, 1.0
    )
    exact = _annealing_fk(c["mu"], c["s0"], c["beta"], sig64, c["init_sd"])
    _assert_exact_1d(*corrected, exact)
    # Uncorrected: the plain annealed-score SDE, exact for its own (wrong) law,
    # and Z_hat = 1; the corrected law's check fails on it.
    plain = _summaries(
        correctors.annealing(data, c["beta"], sig, c["init_sd"], corrected=False),
        N_1D, K_1D, 0.0,
    )
    _, m, v = _annealing_fk(c["mu"], c["s0"], c["beta"], sig64, c["init_sd"], False)
    testing.assert_mean_close(plain[0], [m, m * m + v])
    np.testing.assert_allclose(plain[1], 0.0, atol=1e-5)
    with pytest.raises(AssertionError):
        testing.assert_mean_close(plain[0], [exact[1], exact[1] ** 2 + exact[2]])


def test_product_of_experts_1d_matches_exact_discrete_law():
    p = PRODUCT_1D
    sig = correctors.geometric_sigmas(p["sigma_max"], 0.01, K_1D)
    sig64 = np.geomspace(p["sigma_max"], 0.01, K_1D + 1)
    first, second = _gaussian(p["m1"], p["s1"]), _gaussian(p["m2"], p["s2"])
    corrected = _summaries(
        correctors.product_of_experts(first, second, sig, p["init_sd"]), N_1D, K_1D, 1.0
    )
    exact = _product_fk(p["m1"], p["s1"], p["m2"], p["s2"], sig64, p["init_sd"])
    _assert_exact_1d(*corrected, exact)
    plain = _summaries(
        correctors.product_of_experts(
            first, second, sig, p["init_sd"], corrected=False
        ),
        N_1D, K_1D, 0.0,
    )
    experts = (p["m1"], p["s1"], p["m2"], p["s2"])
    _, m, v = _product_fk(*experts, sig64, p["init_sd"], False)
    testing.assert_mean_close(plain[0], [m, m * m + v])
    with pytest.raises(AssertionError):
        testing.assert_mean_close(plain[0], [exact[1], exact[1] ** 2 + exact[2]])


# ----------------------------------------------------------------------------
# 2-D mixtures: annealing and product of experts.
# ----------------------------------------------------------------------------

ANNEAL_BETA = 1.5
ANNEAL_MIX = mixtures.GaussianMixture(
    jnp.array([1.0, 0.93, 0.87, 0.80]) / 3.6,
    jnp.array([[1.5, 1.5], [-1.5, 1.5], [-1.5, -1.5], [1.5, -1.5]]),
    jnp.full(4, 0.4),
)
FIRST = mixtures.GaussianMixture(
    jnp.array([0.5, 0.5]), jnp.array([[-1.5, 0.0], [1.5, 0.0]]), jnp.full(2, 0.8)
)
SECOND = mixtures.GaussianMixture(
    jnp.array([0.3, 0.7]), jnp.array([[-1.0, -1.0], [1.0, 1.0]]), jnp.full(2, 0.8)
)
SIGMA_MIN = 0.01


def _features(x):
    """Quadrant indicators (+,+), (-,+), (-,-), (+,-), x, x^2, y^2, x y."""
    right, up = x[..., 0] > 0, x[..., 1] > 0
    quadrants = [right & up, ~right & up, ~right & ~up, right & ~up]
    return jnp.stack(
        [q.astype(x.dtype) for q in quadrants]
        + [x[..., 0], x[..., 1], x[..., 0] ** 2, x[..., 1] ** 2, x[..., 0] * x[..., 1]],
        axis=-1,
    )


def _np_mixture_density(mixture, x):
    w = np.asarray(mixture.weights, np.float64)
    mu = np.asarray(mixture.means, np.float64)
    var = np.asarray(mixture.sds, np.float64) ** 2
    sq = ((x[:, None, :] - mu[None]) ** 2).sum(-1)
    return (w * np.exp(-0.5 * sq / var) / (2 * math.pi * var)).sum(-1)


def _annealing_exact():
    """E[features] under q_{sigma_min}^beta by quadrature on mixtures.grid."""
    points, _ = mixtures.grid(-4.0, 4.0, 801)
    points = np.asarray(points, np.float64)
    noised = ANNEAL_MIX._replace(sds=jnp.sqrt(ANNEAL_MIX.sds**2 + SIGMA_MIN**2))
    dens = _np_mixture_density(noised, points) ** ANNEAL_BETA
    dens /= dens.sum()
    return dens @ np.asarray(_features(points))


def _product_exact():
    """E[features] under q1 q2 at sigma_min, exactly (a product mixture)."""
    noised = lambda m: m.noised(SIGMA_MIN)
    pq = jax.jit(lambda: mixtures.product(noised(FIRST), noised(SECOND)))()
    w = np.asarray(pq.weights / pq.mass, np.float64)
    mu = np.asarray(pq.means, np.float64)
    sd = np.asarray(pq.sds, np.float64)
    px, py = stats.norm.cdf(mu[:, 0] / sd), stats.norm.cdf(mu[:, 1] / sd)
    quadrants = [px * py, (1 - px) * py, (1 - px) * (1 - py), px * (1 - py)]
    second = mu[:, :, None] * mu[:, None, :] + (sd**2)[:, None, None] * np.eye(2)
    return np.array(
        [w @ q for q in quadrants]
        + [w @ mu[:, 0], w @ mu[:, 1], w @ second[:, 0, 0], w @ second[:, 1, 1],
           w @ second[:, 0, 1]]
    )


def _features_per_seed(model, num_particles, num_steps, ess_threshold, scheme, seeds):
    def one(key):
        state, info, _ = smc.run(
            key, model, num_particles, num_steps,
            ess_threshold=ess_threshold, scheme=scheme,
        )
        return jnp.exp(state.log_weights) @ _features(state.particles), info.valid.all()

    keys = jax.random.split(jax.random.key(2), seeds)
    estimates, valid = jax.jit(jax.vmap(one))(keys)
    assert np.asarray(valid).all()
    return np.asarray(estimates, np.float64)


def _annealing_estimates(
    corrected, num_particles, num_steps, seeds, scheme="systematic"
):
    sig = correctors.geometric_sigmas(5.0, SIGMA_MIN, num_steps)
    model = correctors.annealing(ANNEAL_MIX, ANNEAL_BETA, sig, 3.0, corrected=corrected)
    # Uncorrected particles carry no weights: resampling would be a no-op.
    threshold = 1.0 if corrected else 0.0
    return _features_per_seed(model, num_particles, num_steps, threshold, scheme, seeds)


def _product_estimates(corrected, num_particles, num_steps, seeds, scheme="systematic"):
    sig = correctors.geometric_sigmas(1.0, SIGMA_MIN, num_steps)
    model = correctors.product_of_experts(FIRST, SECOND, sig, 1.5, corrected=corrected)
    threshold = 1.0 if corrected else 0.0
    return _features_per_seed(model, num_particles, num_steps, threshold, scheme, seeds)


def _assert_target(estimates, exact):
    """Mode weights and first two moments within 5 SE over the seeds."""
    testing.assert_mean_close(estimates, exact)


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["systematic", "killing"])
def test_annealing_2d_corrected_passes_uncorrected_fails(scheme):
    exact = _annealing_exact()
    _assert_target(_annealing_estimates(True, 512, 100, NUM_SEEDS, scheme), exact)
    if scheme == "systematic":
        plain = _annealing_estimates(False, 512, 100, NUM_SEEDS)
        with pytest.raises(AssertionError):
            _assert_target(plain, exact)


def _annealing_exact_at(beta):
    """E[features] under q_{sigma_min}^beta by quadrature on mixtures.grid."""
    points, _ = mixtures.grid(-4.0, 4.0, 801)
    points = np.asarray(points, np.float64)
    noised = ANNEAL_MIX._replace(sds=jnp.sqrt(ANNEAL_MIX.sds**2 + SIGMA_MIN**2))
    log_dens = beta * np.log(_np_mixture_density(noised, points))
    dens = np.exp(log_dens - log_dens.max())
    dens /= dens.sum()
    return dens @ np.asarray(_features(points))


@pytest.mark.parametrize(
    "scheme",
    ["systematic", pytest.param("killing", marks=pytest.mark.slow)],
)
def test_annealing_beta_10_tempered_noise(scheme):
    """The issue's beta = 10 on the FKC toy (4 modes, sd 0.4), 512 particles.

    With drift ``s`` and noise ``Delta / beta`` the weights (rate
    ``(1/2)(1 - beta) Laplacian log q``) only vary between modes, so their
    variance stays finite at beta = 10; the same assertion rejects the
    unweighted sampler (its second moments are ~50 SE off).
    """
    beta, num_steps = 10.0, 200
    exact = _annealing_exact_at(beta)
    sig = correctors.geometric_sigmas(5.0, SIGMA_MIN, num_steps)

    def estimates(corrected):
        model = correctors.annealing(
            ANNEAL_MIX, beta, sig, 3.0, corrected=corrected, noise="tempered"
        )
        return _features_per_seed(
            model, 512, num_steps, 1.0 if corrected else 0.0, scheme, NUM_SEEDS
        )

    _assert_target(estimates(True), exact)
    if scheme == "systematic":
        with pytest.raises(AssertionError):
            _assert_target(estimates(False), exact)


def test_tempered_noise_rate_is_the_laplacian():
    x = jax.random.normal(jax.random.key(5), (6, 2))
    hessian_trace = jax.vmap(lambda y: jnp.trace(jax.hessian(ANNEAL_MIX.log_density)(y)))
    np.testing.assert_allclose(
        ANNEAL_MIX.laplacian_log_density(x), hessian_trace(x), rtol=1e-4, atol=1e-4
    )
    with pytest.raises(ValueError, match="noise"):
        correctors.annealing(ANNEAL_MIX, 2.0, jnp.array([1.0, 0.1]), 1.0, noise="bad")


@pytest.mark.slow
def test_annealing_2d_more_particles_and_seeds():
    exact = _annealing_exact()
    _assert_target(_annealing_estimates(True, 2048, 200, 64), exact)
    _assert_target(_annealing_estimates(True, 2048, 200, 64, "killing"), exact)


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["systematic", "killing"])
def test_product_of_experts_2d_corrected_passes_uncorrected_fails(scheme):
    exact = _product_exact()
    _assert_target(_product_estimates(True, 512, 100, NUM_SEEDS, scheme), exact)
    if scheme == "systematic":
        plain = _product_estimates(False, 512, 100, NUM_SEEDS)
        with pytest.raises(AssertionError):
            _assert_target(plain, exact)


# ----------------------------------------------------------------------------
# One step, exactly.
# ----------------------------------------------------------------------------


def _noised_score(mixture, sigma):
    """The score of the noised mixture by autodiff (independent of .score)."""
    return jax.vmap(jax.grad(lambda x: mixture.noised(sigma).log_density(x)))


@jax.jit
def _annealing_step_parts(x, key):
    sig = correctors.geometric_sigmas(5.0, SIGMA_MIN, 10)
    model = correctors.annealing(ANNEAL_MIX, ANNEAL_BETA, sig, 3.0)
    t = jnp.int32(4)
    delta = sig[3] ** 2 - sig[4] ** 2
    s = _noised_score(ANNEAL_MIX, sig[3])(x)
    drift = delta * ANNEAL_BETA * s
    moved = model.mutate(key, t, x)
    noise = (moved - x - drift) / jnp.sqrt(delta)
    rate = delta * 0.5 * ANNEAL_BETA * (ANNEAL_BETA - 1) * jnp.sum(s**2, axis=-1)
    initial = ANNEAL_BETA * ANNEAL_MIX.noised(sig[0]).log_density(x) - (
        -0.5 * jnp.sum(x**2, axis=-1) / 9.0 - jnp.log(2 * jnp.pi * 9.0)
    )
    return (
        model.log_potential(t, x, moved), rate, noise,
        model.initial_log_potential(x), initial,
        model.init(key, 7),
    )


def test_annealing_step_is_exact():
    x = np.random.default_rng(0).normal(scale=2.0, size=(20_000, 2))
    x = jnp.asarray(x, jnp.float32)
    log_g, rate, noise, initial, expected_initial, init = _annealing_step_parts(
        x, jax.random.key(3)
    )
    np.testing.assert_allclose(
        np.asarray(log_g), np.asarray(rate), rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(initial), np.asarray(expected_initial), rtol=1e-5, atol=1e-4
    )
    # The noise (x_t - x_{t-1} - drift) / sqrt(Delta) is standard normal.
    z = np.asarray(noise, np.float64)
    testing.assert_mean_close(np.concatenate([z, z**2], axis=1), [0.0, 0.0, 1.0, 1.0])
    assert init.shape == (7, 2)


@jax.jit
def _product_step_parts(x, key):
    sig = correctors.geometric_sigmas(1.5, SIGMA_MIN, 10)
    model = correctors.product_of_experts(FIRST, SECOND, sig, 2.0)
    t = jnp.int32(7)
    delta = sig[6] ** 2 - sig[7] ** 2
    s1, s2 = _noised_score(FIRST, sig[6])(x), _noised_score(SECOND, sig[6])(x)
    moved = model.mutate(key, t, x)
    noise = (moved - x - delta * (s1 + s2)) / jnp.sqrt(delta)
    rate = delta * jnp.sum(s1 * s2, axis=-1)
    initial = (
        FIRST.noised(sig[0]).log_density(x) + SECOND.noised(sig[0]).log_density(x)
        - (-0.5 * jnp.sum(x**2, axis=-1) / 4.0 - jnp.log(2 * jnp.pi * 4.0))
    )
    log_g = model.log_potential(t, x, moved)
    return log_g, rate, noise, model.initial_log_potential(x), initial


def test_product_of_experts_step_is_exact():
    x = np.random.default_rng(1).normal(scale=2.0, size=(20_000, 2))
    parts = _product_step_parts(jnp.asarray(x, jnp.float32), jax.random.key(4))
    log_g, rate, noise, initial, expected_initial = parts
    np.testing.assert_allclose(
        np.asarray(log_g), np.asarray(rate), rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(initial), np.asarray(expected_initial), rtol=1e-5, atol=1e-4
    )
    z = np.asarray(noise, np.float64)
    testing.assert_mean_close(np.concatenate([z, z**2], axis=1), [0.0, 0.0, 1.0, 1.0])


@jax.jit
def _uncorrected_potentials(x):
    sig = correctors.geometric_sigmas(5.0, SIGMA_MIN, 10)
    plain = (
        correctors.annealing(ANNEAL_MIX, 3.0, sig, 3.0, corrected=False),
        correctors.product_of_experts(FIRST, SECOND, sig, 3.0, corrected=False),
    )
    # beta = 1 is the exact reverse SDE: the weight rate vanishes.
    exact = correctors.annealing(ANNEAL_MIX, 1.0, sig, 3.0)
    return [m.log_potential(2, x, x) for m in plain + (exact,)], [
        m.initial_log_potential is None for m in plain
    ]


def test_uncorrected_models_have_no_weights():
    potentials, no_initial = _uncorrected_potentials(jnp.ones((3, 2)))
    assert all(no_initial)
    for log_g in potentials:
        np.testing.assert_array_equal(np.asarray(log_g), 0.0)


@pytest.mark.slow
def test_same_key_same_paths_with_and_without_correction():
    # Never resampling, the corrected sampler moves the particles exactly as the
    # uncorrected one; only the weights differ.
    sig = correctors.geometric_sigmas(5.0, SIGMA_MIN, 5)

    def paths(corrected):
        model = correctors.annealing(ANNEAL_MIX, 2.0, sig, 3.0, corrected=corrected)
        state, _, _ = smc.run(jax.random.key(5), model, 16, 5, ess_threshold=0.0)
        return state

    with_weights, without = jax.jit(lambda: (paths(True), paths(False)))()
    np.testing.assert_array_equal(
        np.asarray(with_weights.particles), np.asarray(without.particles)
    )
    assert np.ptp(np.asarray(with_weights.log_weights)) > 0
    np.testing.assert_allclose(
        np.asarray(without.log_weights), -math.log(16), rtol=1e-6
    )


def test_geometric_sigmas():
    sig = np.asarray(correctors.geometric_sigmas(5.0, 0.01, 4))
    np.testing.assert_allclose(sig, 5.0 * (0.002 ** (np.arange(5) / 4)), rtol=1e-5)
    assert (np.diff(sig) < 0).all()
    for bad in [(0.01, 5.0, 4), (1.0, 1.0, 4), (1.0, 0.0, 4), (1.0, -0.1, 4),
                (1.0, 0.1, 0), (1.0, 0.1, 2.0)]:
        with pytest.raises(ValueError):
            correctors.geometric_sigmas(*bad)


def test_experts_must_share_dimension():
    one_d = _gaussian(0.0, 1.0)
    with pytest.raises(ValueError, match="dimension"):
        correctors.product_of_experts(one_d, FIRST, jnp.array([1.0, 0.5]), 1.0)
