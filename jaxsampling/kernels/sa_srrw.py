"""SA-SRRW: stochastic approximation driven by a self-repellent random walk.

Hu, Doshi & Eun (ICLR 2024), "Accelerating Distributed Stochastic
Optimization via Self-Repellent Random Walks". A token walks a graph whose
node ``i`` holds a local loss ``f_i(theta)``; the goal is
``theta* = argmin sum_i mu_i f_i(theta)``. Each step moves the token by the
SRRW kernel (:mod:`jaxsampling.kernels.srrw`) and updates ``theta`` with the
gradient at the node reached:

.. math::

   X_{n+1} \\sim K_{X_n, \\cdot}[x_n], \\quad
   x_{n+1} = x_n + \\gamma_{n+1} (\\delta_{X_{n+1}} - x_n), \\quad
   \\theta_{n+1} = \\theta_n + \\beta_{n+1} H(\\theta_n, X_{n+1}),

with ``H = -grad f_{X_{n+1}}``. The ``theta`` update is any optax
transformation of that gradient: ``optax.sgd(beta)`` with a schedule ``beta``
is the paper's iteration; momentum, Adam or clipping compose as usual.

Step sizes ``gamma_n ~ n^{-a}``, ``beta_n ~ n^{-b}`` set three regimes
(:func:`regime_schedules`): ``beta = o(gamma)`` (``b > a``: ``theta`` sees an
almost converged ``x``; the covariance of ``theta`` falls like ``O(1/alpha)``
but a finite-time bias can dominate the MSE), ``beta = gamma`` (``a = b``,
a smaller gain), ``gamma = o(beta)`` (``a > b``: no gain from ``alpha``).
Report bias and MSE as well as the variance of ``theta_n`` across runs.

Example:
  >>> import jax, jax.numpy as jnp, optax
  >>> from jaxsampling.kernels import graphs, sa_srrw, srrw
  >>> chain = srrw.metropolis_hastings_chain(graphs.karate_club())
  >>> centres = jnp.arange(34.0)                   # f_i = (theta - c_i)^2 / 2
  >>> loss = lambda theta, i: 0.5 * (theta - centres[i]) ** 2
  >>> opt = optax.sgd(srrw.power_schedule(1.0))     # beta = gamma = 1 / (n + 2)
  >>> state = sa_srrw.init(chain, 0, jnp.float32(0.0), opt)
  >>> state, info = sa_srrw.run(jax.random.key(0), state, chain, loss, opt, 3000, alpha=5.0)
  >>> bool(abs(state.params - 16.5) < 0.5), info.node.shape
  (True, (3000,))
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxsampling import sharding
from jaxsampling.kernels import _args, srrw
from jaxsampling.types import Array, ArrayLike, ArrayTree, PRNGKey

__all__ = ["Info", "State", "init", "regime_schedules", "run", "run_chains", "step"]

LossFn = Callable[[ArrayTree, Array], Array]

#: (gamma exponent a, beta exponent b) of each step-size regime.
REGIMES = {
    "beta_slower": (0.6, 0.9),  # beta = o(gamma)
    "equal": (0.8, 0.8),  # beta = gamma
    "gamma_slower": (0.9, 0.6),  # gamma = o(beta)
}


class State(NamedTuple):
    """SA-SRRW state.

    Attributes:
      walk: the token's :class:`~jaxsampling.kernels.srrw.State`.
      params: ``theta``, any pytree.
      opt_state: the optax state of the ``theta`` update.
    """

    walk: srrw.State
    params: ArrayTree
    opt_state: optax.OptState


class Info(NamedTuple):
    """Per-step diagnostics.

    Attributes:
      node: ``int32[]``, ``X_{n+1}``, the node whose loss was used.
      loss: ``float[]``, ``f_{X_{n+1}}(theta_n)``.
      gamma: ``float[]``, the walk's step size ``gamma_{n+1}``.
    """

    node: Array
    loss: Array
    gamma: Array


def regime_schedules(
    regime: str, *, gamma_scale: float = 1.0, beta_scale: float = 1.0
) -> tuple[srrw.PowerSchedule, srrw.PowerSchedule]:
    """``(gamma, beta)`` power schedules of one regime of :data:`REGIMES`.

    ``gamma_{n+1} = gamma_scale (n + 2)^{-a}``, ``beta_{n+1} = beta_scale (n + 2)^{-b}``;
    pass ``optax.sgd(beta)`` (or any optax chain using ``beta``) as the optimiser.

    Example:
      >>> from jaxsampling.kernels import sa_srrw
      >>> gamma, beta = sa_srrw.regime_schedules("beta_slower")
      >>> (gamma.exponent, beta.exponent)
      (0.6, 0.9)
    """
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {sorted(REGIMES)}, got {regime!r}")
    a, b = REGIMES[regime]
    return srrw.power_schedule(a, gamma_scale), srrw.power_schedule(b, beta_scale)


def init(
    chain: srrw.BaseChain,
    node: ArrayLike,
    params: ArrayTree,
    optimizer: optax.GradientTransformation,
    x0: ArrayLike | None = None,
) -> State:
    """The state at ``n = 0``: the token at ``node``, ``theta_0 = params``.

    Raises:
      ValueError: as :func:`jaxsampling.kernels.srrw.init`.
    """
    return State(srrw.init(chain, node, x0), params, optimizer.init(params))


def _check_loss(loss_fn: Any) -> None:
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable (params, node) -> scalar, got {loss_fn!r}")


@functools.partial(jax.jit, static_argnames=("loss_fn", "optimizer", "gamma", "hdt"))
def _step(key, state, chain, alpha, loss_fn, optimizer, gamma, hdt):
    g = gamma(state.walk.step).astype(state.walk.visits.dtype)
    kernel = srrw._hdt_step if hdt else srrw._step
    walk, _ = kernel(key, state.walk, chain, alpha, g)
    loss, grads = jax.value_and_grad(loss_fn)(state.params, walk.node)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return State(walk, params, opt_state), Info(walk.node, loss, g)


def step(
    key: PRNGKey,
    state: State,
    chain: srrw.BaseChain,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    alpha: float | Array,
    gamma: srrw.Schedule = srrw.power_schedule(),
    hdt: bool = False,
) -> tuple[State, Info]:
    """One SA-SRRW step: move the token, update ``x``, then ``theta`` with ``grad f_{X_{n+1}}``.

    Args:
      key: a PRNG key.
      state: the current :class:`State`.
      chain: the base chain of the walk.
      loss_fn: ``(params, node) -> scalar``, the local loss of a node
        (static: build it once; it is hashed by identity).
      optimizer: an optax transformation of the gradient (static, hashed by
        identity; its learning rate is ``beta``).
      alpha: repulsion strength ``>= 0``.
      gamma: the walk's step-size schedule (static).
      hdt: move the token by :func:`~jaxsampling.kernels.srrw.hdt_step`.

    Returns:
      ``(new_state, info)``.
    """
    _check_loss(loss_fn)
    srrw._check_alpha(alpha)
    return _step(key, state, chain, jnp.asarray(alpha, state.walk.visits.dtype), loss_fn,
                 optimizer, gamma, hdt)


@functools.partial(
    jax.jit, static_argnames=("loss_fn", "optimizer", "num_steps", "gamma", "hdt", "every")
)
def _run(key, state, chain, alpha, loss_fn, optimizer, num_steps, gamma, hdt, every):
    def inner(state, step_key):
        return _step(step_key, state, chain, alpha, loss_fn, optimizer, gamma, hdt)

    def outer(state, block_key):
        state, info = lax.scan(inner, state, jax.random.split(block_key, every))
        return state, (state.params, jax.tree.map(lambda x: x[-1], info))

    keys = jax.random.split(key, num_steps // every)
    return lax.scan(outer, state, keys)


def run(
    key: PRNGKey,
    state: State,
    chain: srrw.BaseChain,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    num_steps: int,
    *,
    alpha: float | Array,
    gamma: srrw.Schedule = srrw.power_schedule(),
    hdt: bool = False,
    every: int = 1,
) -> tuple[State, Info]:
    """``num_steps`` steps of :func:`step` under ``lax.scan``.

    Args:
      key, state, chain, loss_fn, optimizer, alpha, gamma, hdt: as :func:`step`.
      num_steps: number of steps (static), a multiple of ``every``.
      every: record ``theta`` and the :class:`Info` of every ``every``-th step.

    Returns:
      ``(final_state, info)`` with ``info`` stacked over the
      ``num_steps // every`` recorded steps (:func:`run_chains` also
      returns the recorded ``theta``).
    """
    state, (_, info) = _checked_run(key, state, chain, loss_fn, optimizer, num_steps, alpha,
                                    gamma, hdt, every)
    return state, info


def _checked_run(key, state, chain, loss_fn, optimizer, num_steps, alpha, gamma, hdt, every):
    _check_loss(loss_fn)
    _args.check_int(num_steps, "num_steps", minimum=0)
    _args.check_int(every, "every")
    if num_steps % every:
        raise ValueError(f"num_steps = {num_steps} must be a multiple of every = {every}")
    srrw._check_alpha(alpha)
    return _run(key, state, chain, jnp.asarray(alpha, state.walk.visits.dtype), loss_fn,
                optimizer, num_steps, gamma, hdt, every)


def run_chains(
    keys: Array,
    starts: ArrayLike,
    chain: srrw.BaseChain,
    params: ArrayTree,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    num_steps: int,
    *,
    alpha: float | Array,
    gamma: srrw.Schedule = srrw.power_schedule(),
    hdt: bool = False,
    every: int = 1,
) -> tuple[State, ArrayTree]:
    """Independent SA-SRRW runs from the same ``theta_0``, one per key (vmapped).

    The runs' spread measures the variance of ``theta_n``, their mean its
    bias. With ``keys`` and ``starts`` sharded over an explicit mesh axis each
    device runs its own runs (``jax.shard_map``, no collective).

    Args:
      keys: ``key[num_runs]``.
      starts: ``int[num_runs]`` start nodes of the token.
      chain: the base chain.
      params: ``theta_0``, shared by all runs.
      loss_fn, optimizer, alpha, gamma, hdt: as :func:`step`.
      num_steps: steps per run (static), a multiple of ``every``.
      every: record ``theta`` every ``every`` steps.

    Returns:
      ``(states, trace)``: final states with a leading ``num_runs`` axis and
      ``theta`` recorded every ``every`` steps, ``[num_runs, num_steps // every, ...]``.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxsampling.kernels import graphs, sa_srrw, srrw
      >>> chain = srrw.metropolis_hastings_chain(graphs.karate_club())
      >>> loss = lambda theta, i: 0.5 * (theta - i) ** 2
      >>> keys = jax.random.split(jax.random.key(0), 4)
      >>> _, trace = sa_srrw.run_chains(keys, jnp.zeros(4, int), chain, jnp.float32(0.0), loss,
      ...                               optax.sgd(0.05), 100, alpha=1.0, every=10)
      >>> trace.shape
      (4, 10)
    """
    starts = srrw.check_starts(keys, starts, chain)
    _check_loss(loss_fn)

    def runs(batched, chain, params, alpha):
        keys, starts = batched

        def one(key, start):
            state = init(chain, start, params, optimizer)
            state, (trace, _) = _checked_run(key, state, chain, loss_fn, optimizer, num_steps,
                                             alpha, gamma, hdt, every)
            return state, trace

        return jax.vmap(one)(keys, starts)

    return sharding.map_batch(runs, (keys, starts), chain, params,
                              jnp.asarray(alpha, chain.target.dtype))
