"""Reward steering by soft value-based decoding (SVDD).

At every step of a sampler (a :class:`~jaxsampling.kernels.smc.engine.FeynmanKac`
model's ``mutate``, e.g. a diffusion's Euler-Maruyama step), each of the N
particles draws M candidate next states, scores them with a soft value
``v(t, x)`` (an estimate of the expected terminal reward) and keeps one:

.. math::

    P(\\text{keep candidate } j \\text{ of particle } i)
      = \\frac{\\exp(v(t, x_{ij}) / \\alpha)}{\\sum_{k=1}^M \\exp(v(t, x_{ik}) / \\alpha)}.

This is grouped resampling: multinomial resampling of one particle within
each group of M candidates, drawn exactly by the Gumbel-max trick. It
targets ``p(x) exp(r(x) / alpha)`` as M grows when ``v`` is the exact soft
value; ``alpha = 0`` keeps the argmax (greedy steering). Weights are not
carried: every particle is kept with weight 1.

References:
  Li, Zhao, Venkataraman, Scalia, Chen et al. (2024), Derivative-free
  guidance in continuous and discrete diffusion models with soft
  value-based decoding.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxsampling.kernels.smc import engine
from jaxsampling.types import Array, ArrayTree, PRNGKey

__all__ = ["Info", "run", "select", "step"]

Value = Callable[[Any, ArrayTree], Array]


class Info(NamedTuple):
    """What one SVDD step kept.

    Attributes:
      value: float32[N], the value of each kept candidate.
      best: float32[N], the largest candidate value of each particle.
    """

    value: Array  # float32[N]
    best: Array  # float32[N]


def select(key: PRNGKey, values: Array, alpha: float) -> Array:
    """Grouped resampling: one index in ``[0, M)`` per column of ``values[M, N]``.

    Index ``j`` is drawn with probability ``softmax(values[:, i] / alpha)_j``;
    ``alpha = 0`` (a Python number) takes the argmax. NaN values count as
    ``-inf``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels.smc import svdd
      >>> v = jnp.array([[0.0, 5.0], [1.0, 0.0]])
      >>> svdd.select(jax.random.key(0), v, 0.0).tolist()
      [1, 0]
    """
    values = jnp.where(jnp.isnan(values), -jnp.inf, values)
    if alpha == 0:
        return jnp.argmax(values, axis=0).astype(jnp.int32)
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha!r}")
    return jax.random.categorical(key, values / alpha, axis=0).astype(jnp.int32)


def step(
    key: PRNGKey,
    t: Any,
    particles: ArrayTree,
    propose: Callable[[PRNGKey, Any, ArrayTree], ArrayTree],
    value: Value,
    num_candidates: int,
    alpha: float,
) -> tuple[ArrayTree, Info]:
    """One SVDD step: M proposals per particle, keep one by ``exp(v / alpha)``.

    Args:
      key: a PRNG key.
      t: the step input passed to ``propose`` and ``value``.
      particles: pytree with leading axis N.
      propose: ``(key, t, particles) -> particles``, e.g. ``model.mutate``.
      value: ``(t, particles) -> float[N]``, the soft value.
      num_candidates: M, a Python int.
      alpha: temperature >= 0 (0: argmax).

    Returns:
      ``(particles, info)``.
    """
    if not isinstance(num_candidates, int) or num_candidates < 1:
        raise ValueError(f"num_candidates must be a positive int, got {num_candidates!r}")
    propose_key, select_key = jax.random.split(key)
    keys = jax.random.split(propose_key, num_candidates)
    candidates = jax.vmap(lambda k: propose(k, t, particles))(keys)  # leaves [M, N, ...]
    values = jax.vmap(lambda c: value(t, c))(candidates)  # [M, N]
    n = values.shape[1]
    choice = select(select_key, values, alpha)
    columns = jnp.arange(n)
    kept = jax.tree.map(lambda c: c[choice, columns], candidates)
    return kept, Info(values[choice, columns], jnp.max(values, axis=0))


def run(
    key: PRNGKey,
    model: engine.FeynmanKac,
    value: Value,
    num_particles: int,
    num_steps: int,
    num_candidates: int,
    alpha: float,
) -> tuple[ArrayTree, Info]:
    """Steers ``model``'s sampler: ``model.init``, then ``num_steps`` SVDD steps.

    ``model.log_potential`` is not used: steering replaces weighting.

    Returns:
      ``(particles, info)`` with ``info`` fields of leading axis
      ``num_steps``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import smc
      >>> from jaxsampling.kernels.smc import svdd
      >>> model = smc.FeynmanKac(
      ...     init=lambda key, n: jnp.zeros(n),
      ...     mutate=lambda key, t, x: x + jax.random.normal(key, x.shape),
      ...     log_potential=None)
      >>> x, info = svdd.run(jax.random.key(0), model, lambda t, x: x, 1000, 5, 8, 0.0)
      >>> bool(x.mean() > 5.0)
      True
    """
    init_key, steps_key = jax.random.split(key)
    particles = model.init(init_key, num_particles)

    def body(particles, t):
        return step(
            jax.random.fold_in(steps_key, t),
            t,
            particles,
            model.mutate,
            value,
            num_candidates,
            alpha,
        )

    return jax.lax.scan(body, particles, jnp.arange(1, num_steps + 1, dtype=jnp.int32))
