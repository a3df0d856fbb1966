"""SMC suite: jaxsampling's particle filter and tempered SMC against their anchors.

Cases (every anchor gets the same model, the same N and the same data):

* ``filter``: one bootstrap particle filter on the 1-D linear-Gaussian model
  ``kalman.LGSSM(0.9, 1.0, 1.0)`` with ``T = NUM_OBS`` observations and ``N = FILTER_N``
  particles, ESS-adaptive (``ESS < 0.5 N``) systematic resampling. jaxsampling
  (``filters.filter`` of ``filters.bootstrap``, jitted) against ``particles``
  (``particles.SMC`` on a matching ``StateSpaceModel``) and a BlackJAX-based filter
  (:func:`blackjax_filter`; BlackJAX has no particle filter). Accuracy: RMSE of the
  log-likelihood estimate against the exact (Kalman, float64) value over
  ``FILTER_RUNS`` independent runs per implementation.
* ``filter batch``: ``BATCH`` independent filters of the same model (one key each),
  ``jax.jit(jax.vmap(...))``: jaxsampling against the BlackJAX-based filter. Accuracy:
  the log-likelihood RMSE over the ``BATCH`` filters of the first call.
* ``tempering``: adaptive tempered SMC with ``N = TEMPER_N`` particles from the prior
  ``N(0, 3^2 I_2)`` to the posterior whose likelihood is a 4-mode Gaussian mixture,
  ``NUM_MCMC_STEPS`` random-walk Metropolis moves per step, target (conditional) ESS
  0.5, systematic resampling at every step: jaxsampling (``tempering.run``) against
  ``blackjax.adaptive_tempered_smc`` (driven to lambda = 1 by a ``lax.while_loop``) and
  ``particles`` (``smc_samplers.AdaptiveTempering``, standard, not waste-free).
  Accuracy: RMS error of the posterior mode weights against the exact ones
  (``mixtures.product(prior, likelihood)``) over ``TEMPER_SEEDS`` runs.

Times are per call, after compilation and warm-up (``benchmarks.timing``); the
accuracy runs are separate calls made after the timing. An anchor that raises, or
whose output fails its check, is recorded with its error instead of a time.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import blackjax
import blackjax.smc.resampling as bj_resampling
import jax
import jax.numpy as jnp
import numpy as np
import particles
import particles.distributions as pt_dists
import particles.smc_samplers as pt_samplers
import particles.state_space_models as pt_ssms
from scipy.special import logsumexp

from benchmarks import timing
from jaxsampling.kernels.smc import filters, mcmc, mixtures, tempering
from jaxsampling.train import kalman

OURS = "jaxsampling"
BLACKJAX = "blackjax"
PARTICLES = "particles"
ANCHORS = (BLACKJAX, PARTICLES)

SEED = 20240601
#: The linear-Gaussian state-space model and its number of observations.
PARAMS = kalman.LGSSM(rho=0.9, sigma_x=1.0, sigma_y=1.0)
NUM_OBS = 100
ESS_THRESHOLD = 0.5
FILTER_N = 10**4
QUICK_FILTER_N = 10**3
FILTER_RUNS = 50
QUICK_FILTER_RUNS = 5
BATCH = 100
BATCH_N = 10**4
QUICK_BATCH_N = 10**3
#: Tempering target: prior N(0, PRIOR_SD^2 I_2), likelihood a mixture of isotropic
#: Gaussians with these weights, means and standard deviation.
TEMPER_N = 5000
QUICK_TEMPER_N = 1000
TEMPER_SEEDS = 30
QUICK_TEMPER_SEEDS = 3
PRIOR_SD = 3.0
MODE_WEIGHTS = (0.1, 0.2, 0.3, 0.4)
MODE_MEANS = ((2.0, 2.0), (-2.0, 2.0), (-2.0, -2.0), (2.0, -2.0))
MODE_SD = 0.4
NUM_MCMC_STEPS = 5
TARGET_ESS = 0.5
MAX_TEMPER_STEPS = 100
#: Per-coordinate standard deviation of BlackJAX's (fixed) random-walk proposal.
BLACKJAX_RW_SIGMA = 0.5
QUICK_REPEATS = 3


def _slow_repeats(repeats: int) -> int:
    """Timed repeats for an implementation that takes ~0.1-1 s per call."""
    return max(3, repeats // 3)


def _batch_repeats(repeats: int) -> int:
    """Timed repeats for the batch case (several seconds per call)."""
    return max(3, repeats // 7)


WORKLOAD = (
    f"Linear-Gaussian state-space model kalman.LGSSM(rho={PARAMS.rho}, "
    f"sigma_x={PARAMS.sigma_x}, sigma_y={PARAMS.sigma_y}): x_1 stationary, "
    "x_t = rho x_{t-1} + sigma_x e_t, y_t = x_t + sigma_y n_t; "
    f"T = {NUM_OBS} observations simulated once (kalman.simulate, key {SEED}, float32; "
    "particles gets them as float64). Bootstrap filters resample (systematic) when "
    f"ESS < {ESS_THRESHOLD} N. Log-likelihood error is against the float64 Kalman value. "
    f"Tempering: prior N(0, {PRIOR_SD:g}^2 I_2), likelihood sum_k w_k N(m_k, {MODE_SD}^2 I) "
    f"with w = {MODE_WEIGHTS}, m = {MODE_MEANS}; exact posterior mode weights from "
    "mixtures.product(prior, likelihood); a particle belongs to the mode of the nearest "
    "mean (the posterior mass across cell borders is ~1e-7). JAX implementations are "
    "float32 and jitted with every size static; JAX keys are typed (jax.random.key)."
)


@dataclasses.dataclass
class Impl:
    """One implementation of a case.

    Attributes:
        kind: ``"jax"`` (timed with ``time_jax``) or ``"python"`` (``time_python``).
        fn: The function to time.
        args: Its arguments.
        check: Validation of the first call's output (raises on a bad output).
        accuracy: Called after the timing; returns the accuracy record.
        repeats: Timed repeats.
        warmup: Untimed warm-up calls.
    """

    kind: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    check: Callable[[Any], None] | None
    accuracy: Callable[[], dict[str, Any]] | None
    repeats: int
    warmup: int = timing.DEFAULT_WARMUP


# ----------------------------------------------------------------------------
# Linear-Gaussian model: data, exact log-likelihood, the three filters.
# ----------------------------------------------------------------------------


def simulate_data() -> jax.Array:
    """The observations ``y_1..y_T`` (float32), fixed seed."""
    _, ys = kalman.simulate(jax.random.key(SEED), PARAMS, NUM_OBS)
    return ys


def kalman_log_likelihood64(ys: np.ndarray) -> float:
    """Exact ``log p(y_{1:T})`` by the Kalman filter, in float64 numpy."""
    rho, sx2, sy2 = PARAMS.rho, PARAMS.sigma_x**2, PARAMS.sigma_y**2
    m, p, ll = 0.0, PARAMS.stationary_var, 0.0
    for t, y in enumerate(np.asarray(ys, np.float64)):
        if t > 0:  # x_1 is stationary; later states are predicted from the last.
            m, p = rho * m, rho**2 * p + sx2
        s = p + sy2
        ll += -0.5 * (math.log(2 * math.pi * s) + (y - m) ** 2 / s)
        gain = p / s
        m, p = m + gain * (y - m), (1.0 - gain) * p
    return ll


def ours_filter(ys: jax.Array, n: int) -> Callable[[jax.Array], jax.Array]:
    """jaxsampling's bootstrap filter: key -> log-likelihood estimate."""
    model = filters.bootstrap(kalman.state_space_model(PARAMS, ys))

    def run(key: jax.Array) -> jax.Array:
        state, _, _ = filters.filter(
            key, model, n, NUM_OBS, scheme="systematic", ess_threshold=ESS_THRESHOLD
        )
        return state.log_normalizer

    return run


def blackjax_filter(ys: jax.Array, n: int) -> Callable[[jax.Array], jax.Array]:
    """A bootstrap filter as a BlackJAX user writes it (BlackJAX has none).

    ``lax.scan`` over the observations; the ESS test picks, in a ``lax.cond``,
    ``blackjax.smc.resampling.systematic`` on the normalised weights or nothing;
    propagation, weighting and the log-likelihood increments are ``jnp`` ops.
    """
    sd0 = math.sqrt(PARAMS.stationary_var)
    var_y = PARAMS.sigma_y**2

    def log_g(y: jax.Array, x: jax.Array) -> jax.Array:
        return -0.5 * (math.log(2 * math.pi * var_y) + (y - x) ** 2 / var_y)

    def run(key: jax.Array) -> jax.Array:
        init_key, steps_key = jax.random.split(key)
        x = sd0 * jax.random.normal(init_key, (n,))
        g = log_g(ys[0], x)
        total = jax.scipy.special.logsumexp(g)
        log_lik = total - math.log(n)
        log_w = g - total  # normalised

        def step(carry, inputs):
            x, log_w, log_lik = carry
            key, y = inputs
            resample_key, move_key = jax.random.split(key)
            w = jnp.exp(log_w)
            ess = 1.0 / jnp.sum(w**2)

            def resample(_):
                idx = bj_resampling.systematic(resample_key, w, n)
                return x[idx], jnp.full((n,), -math.log(n))

            x, log_w = jax.lax.cond(ess < ESS_THRESHOLD * n, resample, lambda _: (x, log_w), None)
            x = PARAMS.rho * x + PARAMS.sigma_x * jax.random.normal(move_key, (n,))
            g = log_g(y, x)
            increment = jax.scipy.special.logsumexp(log_w + g)
            return (x, log_w + g - increment, log_lik + increment), None

        keys = jax.random.split(steps_key, NUM_OBS - 1)
        (_, _, log_lik), _ = jax.lax.scan(step, (x, log_w, log_lik), (keys, ys[1:]))
        return log_lik

    return run


class LinearGaussSSM(pt_ssms.StateSpaceModel):
    """The linear-Gaussian model for ``particles`` (x_0 here is our x_1)."""

    default_params = {"rho": PARAMS.rho, "sigma_x": PARAMS.sigma_x, "sigma_y": PARAMS.sigma_y}

    def PX0(self):  # noqa: N802 (particles' API)
        return pt_dists.Normal(loc=0.0, scale=self.sigma_x / math.sqrt(1.0 - self.rho**2))

    def PX(self, t, xp):  # noqa: N802
        return pt_dists.Normal(loc=self.rho * xp, scale=self.sigma_x)

    def PY(self, t, xp, x):  # noqa: N802
        return pt_dists.Normal(loc=x, scale=self.sigma_y)


def particles_filter(ys: np.ndarray, n: int) -> Callable[[], float]:
    """``particles``' bootstrap filter: () -> log-likelihood (global numpy RNG)."""
    ssm = LinearGaussSSM()

    def run() -> float:
        alg = particles.SMC(
            fk=pt_ssms.Bootstrap(ssm=ssm, data=ys),
            N=n,
            resampling="systematic",
            ESSrmin=ESS_THRESHOLD,
            store_history=False,
            collect=None,
            verbose=False,
        )
        alg.run()
        return float(alg.logLt)

    return run


def _finite_check(shape: tuple[int, ...]) -> Callable[[Any], None]:
    def check(out: Any) -> None:
        arr = np.asarray(out)
        if arr.shape != shape:
            raise ValueError(f"output shape {arr.shape}, expected {shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"non-finite log-likelihood estimate: {arr}")

    return check


def _loglik_accuracy(estimates: np.ndarray, exact: float) -> dict[str, Any]:
    err = np.asarray(estimates, np.float64) - exact
    return {
        "metric": "log-likelihood RMSE",
        "value": float(np.sqrt(np.mean(err**2))),
        "bias": float(np.mean(err)),
        "sd": float(np.std(err, ddof=1)) if err.size > 1 else 0.0,
        "runs": int(err.size),
    }


def _filter_impls(ys: jax.Array, exact: float, n: int, runs: int, repeats: int) -> dict[str, Impl]:
    key = jax.random.key(SEED)
    run_keys = [jax.random.fold_in(jax.random.key(SEED + 1), k) for k in range(runs)]
    impls: dict[str, Impl] = {}
    for name, build in ((OURS, ours_filter), (BLACKJAX, blackjax_filter)):
        fn = build(ys, n)

        def accuracy(fn: Callable[..., Any] = fn) -> dict[str, Any]:
            jitted = jax.jit(fn)  # same function object: reuses the compiled program
            return _loglik_accuracy(np.array([float(jitted(k)) for k in run_keys]), exact)

        impls[name] = Impl("jax", fn, (key,), _finite_check(()), accuracy, repeats)
    pt_fn = particles_filter(np.asarray(ys, np.float64), n)

    def pt_accuracy() -> dict[str, Any]:
        estimates = []
        for k in range(runs):
            np.random.seed(SEED + 1 + k)
            estimates.append(pt_fn())
        return _loglik_accuracy(np.array(estimates), exact)

    impls[PARTICLES] = Impl(
        "python", pt_fn, (), _finite_check(()), pt_accuracy, _slow_repeats(repeats)
    )
    return impls


def _batch_impls(ys: jax.Array, exact: float, n: int, repeats: int) -> dict[str, Impl]:
    keys = jax.random.split(jax.random.key(SEED), BATCH)
    impls: dict[str, Impl] = {}
    for name, build in ((OURS, ours_filter), (BLACKJAX, blackjax_filter)):
        first: dict[str, np.ndarray] = {}
        finite = _finite_check((BATCH,))

        def check(out: Any, first: dict[str, np.ndarray] = first, finite=finite) -> None:
            finite(out)
            first["estimates"] = np.asarray(out)

        def accuracy(first: dict[str, np.ndarray] = first) -> dict[str, Any]:
            return _loglik_accuracy(first["estimates"], exact)

        impls[name] = Impl(
            "jax", jax.vmap(build(ys, n)), (keys,), check, accuracy,
            _batch_repeats(repeats), warmup=1,
        )
    return impls


# ----------------------------------------------------------------------------
# Tempering: target, exact mode weights, the three samplers.
# ----------------------------------------------------------------------------


def temper_target() -> tuple[mixtures.GaussianMixture, mixtures.GaussianMixture]:
    """The prior and the likelihood, as mixtures."""
    prior = mixtures.GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), jnp.full(1, PRIOR_SD))
    likelihood = mixtures.GaussianMixture(
        jnp.array(MODE_WEIGHTS), jnp.array(MODE_MEANS), jnp.full(len(MODE_WEIGHTS), MODE_SD)
    )
    return prior, likelihood


def exact_mode_weights() -> np.ndarray:
    """Posterior weight of each likelihood mode (normalised product weights)."""
    prior, likelihood = temper_target()
    w = np.asarray(mixtures.product(prior, likelihood).weights, np.float64)
    return w / w.sum()


def mode_weights(x: Any, w: Any) -> np.ndarray:
    """Weighted mass of the particles nearest to each mode mean."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    nearest = np.argmin(((x[:, None, :] - np.asarray(MODE_MEANS)) ** 2).sum(-1), axis=1)
    return np.bincount(nearest, weights=w / w.sum(), minlength=len(MODE_WEIGHTS))


def _prior_sample(key: jax.Array, n: int) -> jax.Array:
    return PRIOR_SD * jax.random.normal(key, (n, 2))


def ours_tempering(n: int) -> Callable[[jax.Array], tuple[jax.Array, ...]]:
    """jaxsampling's adaptive tempered SMC: key -> (x, W, num_steps, final lambda)."""
    prior, likelihood = temper_target()
    target = mcmc.Target(log_prior=prior.log_density, log_likelihood=likelihood.log_density)

    def run(key: jax.Array) -> tuple[jax.Array, ...]:
        state, info = tempering.run(
            key,
            target,
            _prior_sample,
            n,
            kernel=mcmc.random_walk,
            num_mcmc_steps=NUM_MCMC_STEPS,
            target_ess=TARGET_ESS,
            scheme="systematic",
            max_steps=MAX_TEMPER_STEPS,
        )
        final = info.temperature[info.num_steps]
        return state.particles.position, jnp.exp(state.log_weights), info.num_steps, final

    return run


def blackjax_tempering(n: int) -> Callable[[jax.Array], tuple[jax.Array, ...]]:
    """``blackjax.adaptive_tempered_smc`` with a Gaussian random walk, to lambda = 1.

    The MCMC kernel is ``additive_step_random_walk`` with a fixed
    ``normal(sigma)`` proposal (``sigma`` a shared MCMC parameter); the steps run
    in a ``lax.while_loop`` until the tempering parameter reaches 1 (at most
    ``MAX_TEMPER_STEPS``).
    """
    prior, likelihood = temper_target()
    rw_kernel = blackjax.additive_step_random_walk.build_kernel()

    def rw_step(key, state, logdensity_fn, sigma):
        return rw_kernel(key, state, logdensity_fn, blackjax.mcmc.random_walk.normal(sigma))

    algorithm = blackjax.adaptive_tempered_smc(
        prior.log_density,
        likelihood.log_density,
        rw_step,
        blackjax.rmh.init,
        blackjax.smc.extend_params({"sigma": jnp.full(2, BLACKJAX_RW_SIGMA)}),
        bj_resampling.systematic,
        TARGET_ESS,
        num_mcmc_steps=NUM_MCMC_STEPS,
    )

    def run(key: jax.Array) -> tuple[jax.Array, ...]:
        init_key, loop_key = jax.random.split(key)
        state = algorithm.init(_prior_sample(init_key, n))

        def cond(carry):
            _, state, i = carry
            return (state.tempering_param < 1.0) & (i < MAX_TEMPER_STEPS)

        def body(carry):
            key, state, i = carry
            key, step_key = jax.random.split(key)
            state, _ = algorithm.step(step_key, state)
            return key, state, i + 1

        _, state, steps = jax.lax.while_loop(cond, body, (loop_key, state, 0))
        return state.particles, state.weights, steps, state.tempering_param

    return run


class MixtureModel(pt_samplers.StaticModel):
    """The tempering target for ``particles``: the mixture log-likelihood."""

    def loglik(self, theta, t=None):
        sq = ((theta[:, None, :] - np.asarray(MODE_MEANS)) ** 2).sum(-1)
        var = MODE_SD**2
        return logsumexp(
            np.log(np.asarray(MODE_WEIGHTS)) - 0.5 * sq / var - math.log(2 * math.pi * var),
            axis=1,
        )


def particles_tempering(n: int) -> Callable[[], tuple[Any, ...]]:
    """``particles``' AdaptiveTempering (standard SMC, default random-walk move)."""
    model = MixtureModel(prior=pt_dists.MvNormal(scale=PRIOR_SD, cov=np.eye(2)))

    def run() -> tuple[Any, ...]:
        fk = pt_samplers.AdaptiveTempering(
            model=model,
            wastefree=False,
            len_chain=NUM_MCMC_STEPS + 1,
            ESSrmin=TARGET_ESS,
            max_iter=MAX_TEMPER_STEPS,
        )
        alg = particles.SMC(
            fk=fk, N=n, resampling="systematic", store_history=False, collect=None,
            verbose=False,
        )
        alg.run()
        return alg.X.theta, alg.W, alg.t, alg.X.shared["exponents"][-1]

    return run


def _temper_check(n: int) -> Callable[[Any], None]:
    def check(out: Any) -> None:
        x, w, steps, final = out
        x, w = np.asarray(x), np.asarray(w)
        if x.shape != (n, 2) or w.shape != (n,):
            raise ValueError(f"output shapes {x.shape}, {w.shape}, expected ({n}, 2), ({n},)")
        if not float(final) >= 1.0:
            raise ValueError(
                f"tempering stopped at lambda = {float(final):.4g} after {int(steps)} steps"
            )
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(w)) and w.sum() > 0):
            raise ValueError("non-finite particles or weights")

    return check


def _mode_accuracy(outputs: list[Any], exact: np.ndarray) -> dict[str, Any]:
    check_n = np.asarray(outputs[0][0]).shape[0]
    check = _temper_check(check_n)
    estimates, steps = [], []
    for out in outputs:
        check(out)
        estimates.append(mode_weights(out[0], out[1]))
        steps.append(int(out[2]))
    err = np.array(estimates) - exact
    return {
        "metric": "mode-weight RMS error",
        "value": float(np.sqrt(np.mean(err**2))),
        "mean_mode_weights": np.mean(estimates, axis=0).tolist(),
        "exact_mode_weights": exact.tolist(),
        "mean_num_steps": float(np.mean(steps)),
        "runs": len(outputs),
    }


def _temper_impls(n: int, seeds: int, repeats: int) -> dict[str, Impl]:
    exact = exact_mode_weights()
    key = jax.random.key(SEED)
    run_keys = [jax.random.fold_in(jax.random.key(SEED + 1), s) for s in range(seeds)]
    impls: dict[str, Impl] = {}
    for name, build in ((OURS, ours_tempering), (BLACKJAX, blackjax_tempering)):
        fn = build(n)

        def accuracy(fn: Callable[..., Any] = fn) -> dict[str, Any]:
            jitted = jax.jit(fn)
            return _mode_accuracy([jax.device_get(jitted(k)) for k in run_keys], exact)

        impls[name] = Impl("jax", fn, (key,), _temper_check(n), accuracy, repeats)
    pt_fn = particles_tempering(n)

    def pt_accuracy() -> dict[str, Any]:
        outputs = []
        for s in range(seeds):
            np.random.seed(SEED + 1 + s)
            outputs.append(pt_fn())
        return _mode_accuracy(outputs, exact)

    impls[PARTICLES] = Impl(
        "python", pt_fn, (), _temper_check(n), pt_accuracy, _slow_repeats(repeats)
    )
    return impls


# ----------------------------------------------------------------------------
# Timing.
# ----------------------------------------------------------------------------


def _time_case(name: str, workload: str, impls: dict[str, Impl]) -> dict[str, Any]:
    """Times every implementation, then measures its accuracy; computes the ratios.

    ``ratios``: anchor median / jaxsampling median. ``equal_error_ratios``: the same
    with each time multiplied by its squared error, i.e. the ratio of the times to
    reach equal error if the squared error falls as 1 / N and the time grows as N.
    """
    print(f"[smc] {name}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    for impl_name, impl in impls.items():
        np.random.seed(SEED)  # particles draws from the global numpy RNG.
        timer = timing.time_jax if impl.kind == "jax" else timing.time_python
        try:
            result = timer(
                impl.fn, impl.args, repeats=impl.repeats, warmup=impl.warmup, check=impl.check
            ).to_json()
            if impl.accuracy is not None:
                result["accuracy"] = impl.accuracy()
        except Exception as err:  # An anchor's own failure is a result; ours is not.
            if impl_name == OURS:
                raise
            results[impl_name] = {"error": f"{type(err).__name__}: {err}"}
            print(f"    {impl_name:12s} FAILED: {err}", flush=True)
            continue
        results[impl_name] = result
        acc = result.get("accuracy")
        acc_text = f"  {acc['metric']} {acc['value']:.4g}" if acc else ""
        print(
            f"    {impl_name:12s} median {result['median_s'] * 1e3:9.2f} ms"
            f"  compile {result['compile_s']:7.2f} s{acc_text}",
            flush=True,
        )
    ratios: dict[str, float] = {}
    equal_error: dict[str, float] = {}
    if OURS in results:
        ours = results[OURS]
        for anchor in ANCHORS:
            other = results.get(anchor, {})
            if "median_s" not in other:
                continue
            ratios[anchor] = other["median_s"] / ours["median_s"]
            if "accuracy" in other and "accuracy" in ours and ours["accuracy"]["value"] > 0:
                equal_error[anchor] = ratios[anchor] * (
                    other["accuracy"]["value"] / ours["accuracy"]["value"]
                ) ** 2
    return {
        "name": name,
        "workload": workload,
        "implementations": results,
        "ratios": ratios,
        "equal_error_ratios": equal_error,
    }


def run(quick: bool = False, repeats: int | None = None) -> dict[str, Any]:
    """Runs the SMC suite.

    Args:
        quick: Smoke mode: smaller N, few runs and repeats.
        repeats: Timed repeats of the fast implementations; the slow ones get fewer
            (``_slow_repeats``, ``_batch_repeats``). Default depends on ``quick``.

    Returns:
        The suite's results: ``workload``, ``notes`` and ``cases``.
    """
    if repeats is None:
        repeats = QUICK_REPEATS if quick else timing.DEFAULT_REPEATS
    filter_n = QUICK_FILTER_N if quick else FILTER_N
    filter_runs = QUICK_FILTER_RUNS if quick else FILTER_RUNS
    batch_n = QUICK_BATCH_N if quick else BATCH_N
    temper_n = QUICK_TEMPER_N if quick else TEMPER_N
    temper_seeds = QUICK_TEMPER_SEEDS if quick else TEMPER_SEEDS

    ys = simulate_data()
    exact = kalman_log_likelihood64(np.asarray(ys))
    ours_kalman = float(kalman.kalman_log_likelihood(PARAMS, ys))
    if abs(ours_kalman - exact) > 1e-2:
        raise AssertionError(f"Kalman log-likelihood mismatch: {ours_kalman} vs {exact}")
    notes = [
        f"Exact log-likelihood of the data (float64 Kalman): {exact:.4f} "
        f"(jaxsampling's float32 kalman_log_likelihood: {ours_kalman:.4f}).",
        "The BlackJAX filter is a lax.scan written for this benchmark around "
        "blackjax.smc.resampling.systematic (BlackJAX 1.7.1 has no particle filter); "
        f"BlackJAX's tempering uses a fixed random-walk proposal N(0, {BLACKJAX_RW_SIGMA}^2 I) "
        "and moves at the previous temperature before reweighting; jaxsampling and "
        "particles scale their random walk by the weighted particle covariance "
        "(2.38 / sqrt(d) times its Cholesky factor).",
        "equal_error_ratios = ratio * (anchor error / jaxsampling error)^2: the time "
        "ratio at equal error, assuming error^2 ~ 1/N and time ~ N.",
    ]

    filter_workload = (
        f"one bootstrap filter, T = {NUM_OBS}, N = {filter_n}, systematic resampling when "
        f"ESS < {ESS_THRESHOLD} N; jaxsampling filters.filter(filters.bootstrap("
        "kalman.state_space_model)) (it also tracks the filtering means), BlackJAX-based "
        "lax.scan filter, particles.SMC(Bootstrap, resampling='systematic', ESSrmin=0.5, "
        f"store_history=False, collect=None); accuracy over {filter_runs} runs each"
    )
    batch_workload = (
        f"{BATCH} independent bootstrap filters (one key each), T = {NUM_OBS}, "
        f"N = {batch_n}, jax.jit(jax.vmap(filter)); accuracy over the {BATCH} filters "
        "of the first call"
    )
    temper_workload = (
        f"adaptive tempered SMC, N = {temper_n}, d = 2, {NUM_MCMC_STEPS} random-walk "
        f"Metropolis steps per tempering step, target ESS {TARGET_ESS}, systematic "
        "resampling at every step; jaxsampling tempering.run(kernel=mcmc.random_walk), "
        "blackjax.adaptive_tempered_smc(additive_step_random_walk) in a lax.while_loop, "
        f"particles AdaptiveTempering(wastefree=False, len_chain={NUM_MCMC_STEPS + 1}); "
        f"accuracy over {temper_seeds} seeds each"
    )
    cases = [
        _time_case(
            f"filter N={filter_n}",
            filter_workload,
            _filter_impls(ys, exact, filter_n, filter_runs, repeats),
        ),
        _time_case(
            f"filter batch {BATCH}x{batch_n}",
            batch_workload,
            _batch_impls(ys, exact, batch_n, repeats),
        ),
        _time_case(
            f"tempering N={temper_n}",
            temper_workload,
            _temper_impls(temper_n, temper_seeds, repeats),
        ),
    ]
    return {"workload": WORKLOAD, "notes": notes, "cases": cases}
