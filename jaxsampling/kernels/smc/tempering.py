"""Adaptive tempered SMC, built on the Feynman-Kac engine.

The sampler moves particles through ``pi_lambda(x) ∝ prior(x) L(x)^lambda``
from ``lambda_0 = 0`` (the prior) to ``lambda = 1`` (the posterior). At each
step it

1. chooses ``lambda_t`` by bisection so that the conditional ESS of the
   incremental weights ``G_i = L(x_i)^{lambda_t - lambda_{t-1}}`` is
   ``target_ess``:

   .. math::

       \\mathrm{CESS}(\\delta) = \\frac{(\\sum_i W_i G_i)^2}{\\sum_i W_i G_i^2}
       = \\text{target\\_ess}

   (Zhou, Johansen & Aston 2016; it equals ESS/N after resampling);
2. runs one :func:`~jaxsampling.kernels.smc.engine.step` of the
   Feynman-Kac model with ``M_t`` = ``num_mcmc_steps`` MCMC moves that keep
   ``pi_{lambda_t}`` invariant, preconditioned by the weighted particle
   covariance (:mod:`~jaxsampling.kernels.smc.mcmc`), and
   ``G_t(x_{t-1}, x_t) = L(x_{t-1})^{lambda_t - lambda_{t-1}}``.

Since ``G_t`` only depends on ``x_{t-1}``, moving before reweighting is
exact: ``(x_{t-1}, W G_t)`` targets ``pi_{lambda_t}`` and the move keeps it.
``state.log_normalizer`` estimates ``log ∫ prior(x) L(x) dx`` (the prior
normalised), unbiased on the natural scale.

**Waste-free** (Dau & Chopin 2022): with ``chain_length = P``, each step
resamples ``M = N / P`` ancestors and runs a ``P``-state MCMC chain from
each; all ``N`` states are kept.

The loop is a ``lax.while_loop`` that stops when ``lambda = 1`` or after
``max_steps`` steps; per-step diagnostics are written to buffers of length
``max_steps + 1`` (entry 0 is the initial draw).

References:
  Del Moral, Doucet & Jasra (2006), Sequential Monte Carlo samplers.
  Jasra, Stephens, Doucet & Tsagaris (2011), Inference for Levy-driven
  stochastic volatility models via adaptive SMC. Zhou, Johansen & Aston
  (2016), Toward automatic model comparison. Dau & Chopin (2022),
  Waste-free sequential Monte Carlo.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsampling.kernels import resampling
from jaxsampling.kernels.smc import engine, mcmc
from jaxsampling.types import Array, PRNGKey

__all__ = ["StepInput", "TemperingInfo", "model", "next_temperature", "run"]


class StepInput(NamedTuple):
    """The engine's step input ``t`` for one tempering step.

    Attributes:
      previous: float32[], ``lambda_{t-1}``.
      temperature: float32[], ``lambda_t``.
      chol: float32[d, d], the MCMC preconditioner.
      scale: float32[], the MCMC step-size multiplier.
    """

    previous: Array  # float32[]
    temperature: Array  # float32[]
    chol: Array  # float32[d, d]
    scale: Array  # float32[]


class TemperingInfo(NamedTuple):
    """Per-step diagnostics; every field has leading axis ``max_steps + 1``.

    Entries after ``num_steps`` are padding (temperature 1, ESS NaN,
    acceptance NaN, increment 0, resampled False, valid True).

    Attributes:
      temperature: float32[S], ``lambda_t`` (0 at entry 0).
      ess: float32[S], ESS after the step's reweighting.
      resampled: bool[S].
      acceptance: float32[S], mean MCMC acceptance rate of the step.
      scale: float32[S], the MCMC step-size multiplier the step used.
      log_normalizer_increment: float32[S].
      valid: bool[S], see :class:`~jaxsampling.kernels.smc.engine.Info`.
      num_steps: int32[], steps taken (``lambda`` reached 1 if
        ``temperature[num_steps] == 1``).
    """

    temperature: Array  # float32[S]
    ess: Array  # float32[S]
    resampled: Array  # bool[S]
    acceptance: Array  # float32[S]
    scale: Array  # float32[S]
    log_normalizer_increment: Array  # float32[S]
    valid: Array  # bool[S]
    num_steps: Array  # int32[]


def next_temperature(
    log_weights: Array,
    log_likelihood: Array,
    current: Array,
    target_ess: float,
    num_iterations: int = 40,
) -> Array:
    """The largest ``lambda <= 1`` whose conditional ESS is >= ``target_ess``.

    Bisection on ``delta = lambda - current`` in ``[0, 1 - current]``; the
    CESS decreases with ``delta``. Returns 1 when the whole remaining step
    keeps the CESS above the target.

    Args:
      log_weights: float[N] normalised log-weights ``log W``.
      log_likelihood: float[N] ``log L(x_i)``.
      current: ``lambda_{t-1}``.
      target_ess: a fraction in (0, 1).
      num_iterations: bisection iterations (40 halve the interval to float32
        resolution).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxsampling.kernels.smc import tempering
      >>> lw = jnp.full(4, -jnp.log(4.0))
      >>> float(tempering.next_temperature(lw, jnp.zeros(4), 0.0, 0.5))
      1.0
    """
    current = jnp.asarray(current, log_weights.dtype)

    def cess(delta):
        # A zero-likelihood particle has G = 0 for delta > 0, G = 1 at delta = 0.
        scaled = mcmc._tempered(delta, log_likelihood)
        a = jax.nn.logsumexp(log_weights + scaled)
        b = jax.nn.logsumexp(log_weights + 2.0 * scaled)
        return jnp.exp(2.0 * a - b)

    hi = 1.0 - current

    def bisect(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        ok = cess(mid) >= target_ess
        return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid)

    lo, _ = jax.lax.fori_loop(0, num_iterations, bisect, (jnp.zeros_like(hi), hi))
    return jnp.where(cess(hi) >= target_ess, 1.0, current + lo)


def model(
    target: mcmc.Target,
    prior_sample: Callable[[PRNGKey, int], Array],
    *,
    kernel: mcmc.Kernel = mcmc.random_walk,
    num_mcmc_steps: int = 5,
    chain_length: int | None = None,
) -> engine.FeynmanKac:
    """The tempering Feynman-Kac model; its step input is a :class:`StepInput`.

    ``particles`` are :class:`~jaxsampling.kernels.smc.mcmc.Particles` whose
    ``acceptance`` field holds each particle's acceptance rate over its last
    move (its chain's, when waste-free).

    Args:
      target: prior and log-likelihood.
      prior_sample: ``(key, n) -> float[n, d]`` draws from the prior.
      kernel: an MCMC kernel (:func:`mcmc.random_walk`, :func:`mcmc.mala`,
        or a ``functools.partial`` of them).
      num_mcmc_steps: MCMC moves per step (ignored when waste-free).
      chain_length: waste-free chain length ``P``; ``None`` for standard SMC.
    """

    def init(key, n):
        particles = mcmc.evaluate(target, prior_sample(key, n))
        return particles._replace(acceptance=jnp.zeros_like(particles.log_prior))

    def move(key, t: StepInput, particles):
        return _move(key, t, particles, target, kernel, num_mcmc_steps, chain_length)

    return engine.FeynmanKac(
        init=init,
        mutate=move,
        log_potential=lambda t, previous, x: _log_potential(t, previous, x),
    )


def _log_potential(t: StepInput, previous: mcmc.Particles, x: mcmc.Particles) -> Array:
    delta = t.temperature - t.previous
    ll = previous.log_likelihood
    if ll.shape != x.log_likelihood.shape:  # waste-free: chains of P states
        reps = x.log_likelihood.shape[0] // ll.shape[0]
        ll = jnp.tile(ll, reps)
    return mcmc._tempered(delta, ll)


def _move(key, t, particles, target, kernel, num_mcmc_steps, chain_length):
    """``num_mcmc_steps`` moves, or a waste-free chain of ``chain_length`` states."""

    def one(particles, key):
        particles, accepted = kernel(key, particles, target, t.temperature, t.chol, t.scale)
        return particles, (particles, accepted.astype(particles.log_prior.dtype))

    if chain_length is None:
        keys = jax.random.split(key, num_mcmc_steps)
        particles, (_, accepted) = jax.lax.scan(one, particles, keys)
        return particles._replace(acceptance=jnp.mean(accepted, axis=0))
    keys = jax.random.split(key, chain_length - 1)
    _, (states, accepted) = jax.lax.scan(one, particles, keys)
    # Chain states in order: the start, then P - 1 moves; flattened state-major
    # (index p * M + m is state p of the chain started at ancestor m).
    chains = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), particles, states)
    flat = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), chains)
    acceptance = jnp.mean(accepted, axis=0) if chain_length > 1 else jnp.zeros_like(
        particles.log_prior
    )
    return flat._replace(acceptance=jnp.tile(acceptance, chain_length))


def run(
    key: PRNGKey,
    target: mcmc.Target,
    prior_sample: Callable[[PRNGKey, int], Array],
    num_particles: int,
    *,
    kernel: mcmc.Kernel = mcmc.random_walk,
    num_mcmc_steps: int = 5,
    target_ess: float = 0.5,
    ess_threshold: float = 1.0,
    scheme: str | resampling.Scheme = "systematic",
    max_steps: int = 100,
    chain_length: int | None = None,
    target_acceptance: float | None = None,
) -> tuple[engine.State, TemperingInfo]:
    """Adaptive tempered SMC from the prior (lambda = 0) to the posterior.

    Args:
      key: a PRNG key.
      target: prior and log-likelihood (:class:`mcmc.Target`).
      prior_sample: ``(key, n) -> float[n, d]``.
      num_particles: N, a Python int.
      kernel: MCMC kernel, see :mod:`~jaxsampling.kernels.smc.mcmc`.
      num_mcmc_steps: MCMC moves per tempering step.
      target_ess: the conditional ESS fraction each step aims at.
      ess_threshold: resample when ``ESS < ess_threshold * N`` (>= 1: every
        step, the usual choice here). Ignored when waste-free (always).
      scheme: resampling scheme.
      max_steps: a bound on the number of tempering steps (buffers size).
      chain_length: waste-free chain length ``P`` dividing N, or ``None``.
      target_acceptance: after each step the step-size multiplier becomes
        ``scale * exp(2 (acceptance - target_acceptance))``; ``None`` uses
        :data:`mcmc.OPTIMAL_ACCEPTANCE` for the provided kernels and no
        adaptation for others.

    Returns:
      ``(state, info)``: the final weighted particles
      (``state.particles`` is :class:`mcmc.Particles`), the log-evidence
      estimate ``state.log_normalizer``, and a :class:`TemperingInfo`.
      Check ``info.temperature[info.num_steps] == 1``: the run stops short
      after ``max_steps`` steps, or stalls (``lambda`` stops rising) when
      particles of zero likelihood hold more than ``1 - target_ess`` of the
      weight; the particles then target an intermediate temperature.

    Raises:
      ValueError: bad sizes or fractions; ``chain_length`` not dividing N.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels.smc import mcmc, tempering
      >>> target = mcmc.Target(
      ...     log_prior=lambda x: -0.5 * jnp.sum(x**2) - jnp.log(2 * jnp.pi),
      ...     log_likelihood=lambda x: -2.0 * jnp.sum((x - 1.0) ** 2))
      >>> prior = lambda key, n: jax.random.normal(key, (n, 2))
      >>> state, info = tempering.run(jax.random.key(0), target, prior, 1000)
      >>> float(info.temperature[info.num_steps])
      1.0
    """
    for name, value in (("num_particles", num_particles), ("max_steps", max_steps)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not 0.0 < target_ess < 1.0:
        raise ValueError(f"target_ess must be in (0, 1), got {target_ess!r}")
    num_ancestors = None
    if chain_length is not None:
        if not isinstance(chain_length, int) or chain_length < 1 or num_particles % chain_length:
            raise ValueError(
                f"chain_length must be a positive int dividing num_particles "
                f"({num_particles}), got {chain_length!r}"
            )
        num_ancestors = num_particles // chain_length
    fk = model(
        target,
        prior_sample,
        kernel=kernel,
        num_mcmc_steps=num_mcmc_steps,
        chain_length=chain_length,
    )
    init_key, loop_key = jax.random.split(key)
    state, info0 = engine.init(init_key, fk, num_particles)
    dtype = state.log_weights.dtype
    size = max_steps + 1

    def put(buffer, i, value):
        return buffer.at[i].set(value)

    buffers = TemperingInfo(
        temperature=jnp.ones(size, dtype).at[0].set(0.0),
        ess=jnp.full(size, jnp.nan, dtype).at[0].set(info0.ess),
        resampled=jnp.zeros(size, bool),
        acceptance=jnp.full(size, jnp.nan, dtype),
        scale=jnp.full(size, jnp.nan, dtype),
        log_normalizer_increment=jnp.zeros(size, dtype).at[0].set(
            info0.log_normalizer_increment
        ),
        valid=jnp.ones(size, bool).at[0].set(info0.valid),
        num_steps=jnp.int32(0),
    )

    if target_acceptance is None:
        base = kernel.func if isinstance(kernel, functools.partial) else kernel
        target_acceptance = mcmc.OPTIMAL_ACCEPTANCE.get(base)

    def cond(carry):
        _, current, _, info = carry
        return (current < 1.0) & (info.num_steps < max_steps) & info.valid[info.num_steps]

    def body(carry):
        state, current, scale, info = carry
        i = info.num_steps + 1
        temperature = next_temperature(
            state.log_weights, state.particles.log_likelihood, current, target_ess
        )
        delta = temperature - current
        scaled = mcmc._tempered(delta, state.particles.log_likelihood)
        weights = jax.nn.softmax(state.log_weights + scaled)
        chol = mcmc.cloud_cholesky(state.particles.position, weights)
        t = StepInput(current, temperature, chol, scale)
        state, step_info = engine.step(
            jax.random.fold_in(loop_key, i),
            state,
            fk,
            t,
            scheme=scheme,
            ess_threshold=ess_threshold,
            num_ancestors=num_ancestors,
        )
        acceptance = jnp.mean(state.particles.acceptance)
        info = TemperingInfo(
            temperature=put(info.temperature, i, temperature),
            ess=put(info.ess, i, step_info.ess),
            resampled=put(info.resampled, i, step_info.resampled),
            acceptance=put(info.acceptance, i, acceptance),
            scale=put(info.scale, i, scale),
            log_normalizer_increment=put(
                info.log_normalizer_increment, i, step_info.log_normalizer_increment
            ),
            valid=put(info.valid, i, step_info.valid),
            num_steps=i,
        )
        if target_acceptance is not None:
            scale = scale * jnp.exp(2.0 * (acceptance - target_acceptance))
        return state, temperature, scale, info

    zero, one = jnp.zeros((), dtype), jnp.ones((), dtype)
    state, _, _, info = jax.lax.while_loop(cond, body, (state, zero, one, buffers))
    return state, info
