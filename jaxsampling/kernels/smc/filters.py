"""Particle filters for state-space models, as Feynman-Kac models.

A state-space model has hidden states ``x_0, x_1, ...`` and observations
``y_t``:

.. math::

    x_0 \\sim \\mu_0, \\quad x_t \\mid x_{t-1} \\sim f_t(x_{t-1}, \\cdot), \\quad
    y_t \\mid x_t \\sim g_t(\\cdot \\mid x_t).

The **bootstrap filter** moves particles with ``f_t`` and weights them by
``g_t(y_t | x_t)``. A **guided filter** moves them with a proposal
``q_t(x_t | x_{t-1})`` that may look at ``y_t`` and weights them by
``f_t(x_{t-1}, x_t) g_t(y_t | x_t) / q_t(x_t | x_{t-1})``. Both are
:class:`~jaxsampling.kernels.smc.engine.FeynmanKac` models, so
``state.log_normalizer`` after step ``T`` is the log-likelihood estimate
``log p_hat(y_{0:T})``, unbiased on the natural scale.

The observations live in the model's closures: index them with ``t`` (an
int32 scalar, ``0`` for the initial step). To vmap filters over data sets,
build the model inside the vmapped function.

References:
  Gordon, Salmond & Smith (1993), Novel approach to nonlinear/non-Gaussian
  Bayesian state estimation. Chopin & Papaspiliopoulos (2020), ch. 10.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsampling.kernels import resampling
from jaxsampling.kernels.smc import engine
from jaxsampling.types import Array, ArrayTree, PRNGKey

__all__ = [
    "Proposal",
    "StateSpaceModel",
    "bootstrap",
    "filter",
    "guided",
    "weighted_mean",
]


class StateSpaceModel(NamedTuple):
    """A state-space model as pure, batched functions of the particles.

    Attributes:
      initial_sample: ``(key, num_particles) -> x_0``, draws from ``mu_0``.
      initial_log_density: ``x_0 -> float[N]``, ``log mu_0(x_0)`` (only the
        guided filter needs it; ``None`` otherwise).
      transition_sample: ``(key, t, x_prev) -> x``, draws from ``f_t``.
      transition_log_density: ``(t, x_prev, x) -> float[N]``,
        ``log f_t(x_prev, x)`` (only the guided filter needs it).
      observation_log_density: ``(t, x) -> float[N]``, ``log g_t(y_t | x)``.
    """

    initial_sample: Callable[[PRNGKey, int], ArrayTree]
    transition_sample: Callable[[PRNGKey, Any, ArrayTree], ArrayTree]
    observation_log_density: Callable[[Any, ArrayTree], Array]
    initial_log_density: Callable[[ArrayTree], Array] | None = None
    transition_log_density: Callable[[Any, ArrayTree, ArrayTree], Array] | None = None


class Proposal(NamedTuple):
    """A guided filter's proposal ``q_0(x_0)``, ``q_t(x_t | x_{t-1})``.

    Attributes:
      initial_sample: ``(key, num_particles) -> x_0``.
      initial_log_density: ``x_0 -> float[N]``.
      sample: ``(key, t, x_prev) -> x``.
      log_density: ``(t, x_prev, x) -> float[N]``.
    """

    initial_sample: Callable[[PRNGKey, int], ArrayTree]
    initial_log_density: Callable[[ArrayTree], Array]
    sample: Callable[[PRNGKey, Any, ArrayTree], ArrayTree]
    log_density: Callable[[Any, ArrayTree, ArrayTree], Array]


def bootstrap(ssm: StateSpaceModel) -> engine.FeynmanKac:
    """The bootstrap filter: ``M_t = f_t``, ``G_t = g_t(y_t | x_t)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels.smc import filters
      >>> ys = jnp.array([0.1, -0.3, 0.4])
      >>> normal = lambda z: -0.5 * z**2 - 0.5 * jnp.log(2 * jnp.pi)
      >>> ssm = filters.StateSpaceModel(
      ...     initial_sample=lambda key, n: jax.random.normal(key, (n,)),
      ...     transition_sample=lambda key, t, x: 0.9 * x + jax.random.normal(key, x.shape),
      ...     observation_log_density=lambda t, x: normal(ys[t] - x))
      >>> model = filters.bootstrap(ssm)
      >>> model.log_potential(1, jnp.zeros(2), jnp.zeros(2)).shape
      (2,)
    """
    return engine.FeynmanKac(
        init=ssm.initial_sample,
        mutate=ssm.transition_sample,
        log_potential=lambda t, previous, x: ssm.observation_log_density(t, x),
        initial_log_potential=lambda x: ssm.observation_log_density(jnp.int32(0), x),
    )


def guided(ssm: StateSpaceModel, proposal: Proposal) -> engine.FeynmanKac:
    """A guided filter: moves with ``q_t``, weights by ``f_t g_t / q_t``.

    .. math::

        G_0(x_0) = \\frac{\\mu_0(x_0) g_0(y_0 | x_0)}{q_0(x_0)}, \\quad
        G_t(x_{t-1}, x_t) = \\frac{f_t(x_{t-1}, x_t) g_t(y_t | x_t)}
            {q_t(x_t | x_{t-1})}.

    With the locally optimal proposal ``q_t \\propto f_t g_t`` the weights
    no longer depend on ``x_t``.

    Raises:
      ValueError: ``ssm`` lacks ``initial_log_density`` or
        ``transition_log_density``.
    """
    if ssm.initial_log_density is None or ssm.transition_log_density is None:
        raise ValueError(
            "guided filters need ssm.initial_log_density and "
            "ssm.transition_log_density"
        )

    def initial_log_potential(x: ArrayTree) -> Array:
        return (
            ssm.initial_log_density(x)
            + ssm.observation_log_density(jnp.int32(0), x)
            - proposal.initial_log_density(x)
        )

    def log_potential(t: Any, previous: ArrayTree, x: ArrayTree) -> Array:
        return (
            ssm.transition_log_density(t, previous, x)
            + ssm.observation_log_density(t, x)
            - proposal.log_density(t, previous, x)
        )

    return engine.FeynmanKac(
        init=proposal.initial_sample,
        mutate=proposal.sample,
        log_potential=log_potential,
        initial_log_potential=initial_log_potential,
    )


def weighted_mean(particles: ArrayTree, weights: Array) -> ArrayTree:
    """``sum_i W_i x_i`` for every leaf: the filtering mean (a ``track``).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxsampling.kernels.smc import filters
      >>> float(filters.weighted_mean(jnp.array([0.0, 2.0]), jnp.array([0.25, 0.75])))
      1.5
    """
    # A broadcast product and a sum, not a tensordot: on an explicit mesh a
    # contraction over the sharded particle axis needs an output sharding,
    # while a sum reduces to a replicated result (an all-reduce).
    def mean(x: Array) -> Array:
        return jnp.sum(weights.reshape(weights.shape + (1,) * (x.ndim - 1)) * x, axis=0)

    return jax.tree.map(mean, particles)


def filter(
    key: PRNGKey,
    model: engine.FeynmanKac,
    num_particles: int,
    num_observations: int,
    *,
    scheme: str | resampling.Scheme = "systematic",
    ess_threshold: float = 0.5,
) -> tuple[engine.State, engine.Info, ArrayTree]:
    """Filters ``num_observations`` observations ``y_0 .. y_{T-1}``.

    A thin wrapper of :func:`~jaxsampling.kernels.smc.engine.run` with
    ``num_steps = num_observations - 1`` and the filtering mean tracked.

    Returns:
      ``(state, info, means)``: ``state.log_normalizer`` is the
      log-likelihood estimate, ``info`` has leading axis T, and ``means``
      the filtering means ``E[x_t | y_{0:t}]`` (leaves with leading axis T).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels.smc import filters
      >>> ys = jnp.array([0.1, -0.3, 0.4])
      >>> normal = lambda z: -0.5 * z**2 - 0.5 * jnp.log(2 * jnp.pi)
      >>> ssm = filters.StateSpaceModel(
      ...     initial_sample=lambda key, n: jax.random.normal(key, (n,)),
      ...     transition_sample=lambda key, t, x: 0.9 * x + jax.random.normal(key, x.shape),
      ...     observation_log_density=lambda t, x: normal(ys[t] - x))
      >>> state, info, means = filters.filter(
      ...     jax.random.key(0), filters.bootstrap(ssm), 1000, 3)
      >>> means.shape, info.ess.shape
      ((3,), (3,))
    """
    if not isinstance(num_observations, (int, np.integer)) or num_observations < 1:
        raise ValueError(
            f"num_observations must be a positive int, got {num_observations!r}"
        )
    return engine.run(
        key,
        model,
        num_particles,
        num_observations - 1,
        scheme=scheme,
        ess_threshold=ess_threshold,
        track=weighted_mean,
    )
