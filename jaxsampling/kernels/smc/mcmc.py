"""MCMC moves for SMC samplers, tuned from the particle cloud.

The tempered targets are ``pi_lambda(x) ∝ prior(x) L(x)^lambda`` on
``R^d``. Every move keeps ``pi_lambda`` invariant and is preconditioned by a
Cholesky factor ``C`` of the weighted particle covariance
(:func:`cloud_cholesky`), so it adapts to the target's scale and
correlations as the temperature rises (Chopin 2002; Dau & Chopin 2022).

A kernel has the signature ``kernel(key, particles, target, temperature,
chol, scale) -> (particles, accepted)`` and moves every particle one step;
``accepted`` is ``bool[N]`` and ``scale`` multiplies the kernel's default
step size (samplers adapt it from the acceptance rate).
:func:`random_walk` and :func:`mala` are provided.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxsampling.kernels.smc import mcmc
  >>> target = mcmc.Target(
  ...     log_prior=lambda x: -0.5 * jnp.sum(x**2),
  ...     log_likelihood=lambda x: -0.5 * jnp.sum((x - 1.0) ** 2))
  >>> p = mcmc.evaluate(target, jnp.zeros((8, 2)))
  >>> p2, accepted = mcmc.random_walk(jax.random.key(0), p, target, 1.0, jnp.eye(2), 1.0)
  >>> p2.position.shape, accepted.shape
  ((8, 2), (8,))
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxsampling.types import Array, PRNGKey

__all__ = [
    "OPTIMAL_ACCEPTANCE",
    "Kernel",
    "Particles",
    "Target",
    "cloud_cholesky",
    "evaluate",
    "mala",
    "random_walk",
]


class Target(NamedTuple):
    """The tempered family ``log pi_lambda(x) = log_prior(x) + lambda log_likelihood(x)``.

    Attributes:
      log_prior: ``x[d] -> scalar``, unnormalised log prior density.
      log_likelihood: ``x[d] -> scalar``, log-likelihood (``-inf`` allowed).
    """

    log_prior: Callable[[Array], Array]
    log_likelihood: Callable[[Array], Array]


class Particles(NamedTuple):
    """Positions with their cached prior and likelihood values.

    Attributes:
      position: float32[N, d].
      log_prior: float32[N].
      log_likelihood: float32[N].
      acceptance: float32[N] or None: each particle's acceptance rate over
        its last move (set by SMC samplers; kernels carry it unchanged).
    """

    position: Array  # float32[N, d]
    log_prior: Array  # float32[N]
    log_likelihood: Array  # float32[N]
    acceptance: Array | None = None  # float32[N]


Kernel = Callable[[PRNGKey, Particles, Target, Array, Array, Array], tuple[Particles, Array]]


def evaluate(target: Target, position: Array) -> Particles:
    """Evaluates the prior and likelihood at every position ``float[N, d]``."""
    position = jnp.asarray(position)
    if position.ndim != 2:
        raise ValueError(f"position must have shape (N, d), got {position.shape}")
    log_prior = jax.vmap(target.log_prior)(position)
    log_likelihood = jax.vmap(target.log_likelihood)(position)
    for name, value in (("log_prior", log_prior), ("log_likelihood", log_likelihood)):
        if value.shape != position.shape[:1]:
            raise ValueError(
                f"target.{name} must return a scalar per position, got shape "
                f"{value.shape[1:]}"
            )
    return Particles(position, log_prior, log_likelihood)


def cloud_cholesky(position: Array, weights: Array, jitter: float = 1e-6) -> Array:
    """Cholesky factor of the weighted covariance of the cloud.

    ``Sigma = sum_i W_i (x_i - m)(x_i - m)^T + jitter * mean(diag) * I`` with
    ``m = sum_i W_i x_i``; the jitter keeps a collapsed cloud positive
    definite.

    Args:
      position: float[N, d].
      weights: float[N], normalised.
      jitter: relative diagonal jitter.

    Returns:
      float[d, d], lower triangular.
    """
    mean = weights @ position
    centred = position - mean
    cov = (centred * weights[:, None]).T @ centred
    d = cov.shape[0]
    scale = jnp.maximum(jnp.trace(cov) / d, 1e-12)
    return jnp.linalg.cholesky(cov + jitter * scale * jnp.eye(d, dtype=cov.dtype))


def _tempered(temperature: Array, log_likelihood: Array) -> Array:
    """``temperature * log_likelihood``, 0 at temperature 0 (never ``0 * -inf``).

    Shared with :mod:`~jaxsampling.kernels.smc.tempering` (its increments).
    """
    return jnp.where(temperature > 0, temperature * log_likelihood, 0.0)


def _accept(key: PRNGKey, log_ratio: Array, current: Particles, proposed: Particles):
    log_u = jnp.log(jax.random.uniform(key, log_ratio.shape, log_ratio.dtype))
    accepted = log_u < jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
    pick = lambda new, old: jnp.where(
        accepted.reshape(accepted.shape + (1,) * (new.ndim - 1)), new, old
    )
    moved = Particles(
        pick(proposed.position, current.position),
        pick(proposed.log_prior, current.log_prior),
        pick(proposed.log_likelihood, current.log_likelihood),
        current.acceptance,
    )
    return moved, accepted


def random_walk(
    key: PRNGKey,
    particles: Particles,
    target: Target,
    temperature: Array,
    chol: Array,
    scale: Array = 1.0,
) -> tuple[Particles, Array]:
    """One preconditioned random-walk Metropolis step for every particle.

    Proposal ``x' = x + s C z`` with ``z ~ N(0, I)``; accept with probability
    ``min(1, pi_lambda(x') / pi_lambda(x))``. ``s = scale * 2.38 / sqrt(d)``;
    ``scale = 1`` is optimal for Gaussian targets (Roberts, Gelman & Gilks
    1997), with acceptance rate 0.234.

    Args:
      key: a PRNG key.
      particles: :class:`Particles`.
      target: the :class:`Target`.
      temperature: lambda in [0, 1].
      chol: float[d, d] preconditioner, e.g. :func:`cloud_cholesky`.
      scale: multiplier of the default step size.

    Returns:
      ``(particles, accepted)``.
    """
    n, d = particles.position.shape
    s = scale * 2.38 / math.sqrt(d)
    noise_key, accept_key = jax.random.split(key)
    z = jax.random.normal(noise_key, (n, d), particles.position.dtype)
    proposed = evaluate(target, particles.position + s * z @ chol.T)
    log_target = lambda p: p.log_prior + _tempered(temperature, p.log_likelihood)
    return _accept(accept_key, log_target(proposed) - log_target(particles), particles, proposed)


def mala(
    key: PRNGKey,
    particles: Particles,
    target: Target,
    temperature: Array,
    chol: Array,
    scale: Array = 1.0,
) -> tuple[Particles, Array]:
    """One preconditioned Metropolis-adjusted Langevin step for every particle.

    With ``Sigma = C C^T`` and ``g(x) = grad log pi_lambda(x)``:
    ``x' = x + (h^2 / 2) Sigma g(x) + h C z`` and the Metropolis-Hastings
    ratio includes the Gaussian proposal densities
    ``q(x | x') / q(x' | x)``. ``h = scale * 1.65 d^{-1/6}``; ``scale = 1``
    is the optimal scaling for Gaussian targets (Roberts & Rosenthal 1998),
    with acceptance rate 0.574.

    Args: as :func:`random_walk`.

    Returns:
      ``(particles, accepted)``.
    """
    n, d = particles.position.shape
    h = scale * 1.65 * d ** (-1.0 / 6.0)
    noise_key, accept_key = jax.random.split(key)

    def log_target(x):
        return target.log_prior(x) + _tempered(temperature, target.log_likelihood(x))

    grad = jax.vmap(jax.grad(log_target))
    cov = chol @ chol.T

    def forward_mean(x):
        return x + 0.5 * h**2 * grad(x) @ cov.T

    def log_q(to, frm_mean):
        # log N(to; mean, h^2 Sigma) up to a constant shared by both directions.
        r = jax.scipy.linalg.solve_triangular(chol, (to - frm_mean).T, lower=True)
        return -0.5 * jnp.sum(r**2, axis=0) / h**2

    x = particles.position
    mean_x = forward_mean(x)
    z = jax.random.normal(noise_key, (n, d), x.dtype)
    proposed = evaluate(target, mean_x + h * z @ chol.T)
    mean_y = forward_mean(proposed.position)
    lt = lambda p: p.log_prior + _tempered(temperature, p.log_likelihood)
    log_ratio = (
        lt(proposed) - lt(particles) + log_q(x, mean_y) - log_q(proposed.position, mean_x)
    )
    return _accept(accept_key, log_ratio, particles, proposed)


OPTIMAL_ACCEPTANCE = {random_walk: 0.234, mala: 0.574}
"""The acceptance rate each kernel's step-size adaptation aims at."""
