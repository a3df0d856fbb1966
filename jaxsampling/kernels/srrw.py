"""The self-repellent random walk (SRRW) of Doshi et al. (ICML 2023).

A nonlinear Markov chain on a graph that is pushed away from the nodes it has
visited often. Given a base chain ``P`` reversible with respect to a target
``mu`` (:class:`BaseChain`) and the walk's empirical measure ``x_n``:

.. math::

   K_{ij}[x] = \\frac{P_{ij} (x_j / \\mu_j)^{-\\alpha}}
                     {\\sum_{k \\in N(i) \\cup \\{i\\}} P_{ik} (x_k / \\mu_k)^{-\\alpha}},
   \\qquad
   x_{n+1} = x_n + \\gamma_{n+1} (\\delta_{X_{n+1}} - x_n).

``alpha = 0`` is the base chain; larger ``alpha`` lowers the asymptotic
covariance of ``x_n`` (with ``gamma_n = 1/(n + 1)``, Doshi et al. Thm 3.3)

.. math::

   V(\\alpha) = \\sum_{i \\ge 2} \\frac{1 + \\lambda_i}{(2 \\alpha (1 + \\lambda_i) + 1)(1 - \\lambda_i)}
               u_i u_i^T

over the eigenpairs of ``P`` (:func:`asymptotic_covariance`), ``O(1/alpha)``.

**Cost of a step: ``O(degree)``.** ``K`` is invariant to rescaling ``x``, so
the state keeps ``x_n = c_n s_n`` with unnormalised ``s`` (``visits``) and
``log c_n``: the update adds ``gamma_{n+1} / c_{n+1}`` to one entry of ``s``
(renormalised, ``O(num_nodes)``, only when that increment passes ``1e18``;
never with the default ``gamma_n = 1 / (n + 1)``, where it is 1: ``s`` is the
visit counts). The next node is a Gumbel-max over the row read
:data:`CHUNK` entries at a time, so a hub costs its degree and other nodes
are not padded to it.

:func:`hdt_step` is the follow-up method with ``O(log degree)`` steps
(history-driven target; Doshi et al. 2024): propose ``j ~ P(i, .)``, accept
with ``min(1, (x_j / mu_j)^{-alpha} / (x_i / mu_i)^{-alpha})``, a
Metropolis-Hastings step toward ``pi ∝ mu (x / mu)^{-alpha}``; its asymptotic
covariance is ``V(0) / (2 alpha + 1)``.

Many independent chains: ``jax.vmap`` :func:`init` / :func:`step` or
:func:`run` over keys and start nodes.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxsampling.kernels import graphs, srrw
  >>> chain = srrw.metropolis_hastings_chain(graphs.karate_club())  # uniform mu
  >>> state = srrw.init(chain, 0)
  >>> state, nodes = srrw.run(jax.random.key(0), state, chain, 2000, alpha=5.0)
  >>> x = srrw.empirical_measure(state)
  >>> bool(jnp.abs(x - 1 / 34).max() < 0.01), nodes.shape
  (True, (2000,))
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxsampling import sharding
from jaxsampling.kernels import _args, graphs, walks
from jaxsampling.kernels.graphs import CSRGraph
from jaxsampling.types import Array, ArrayLike, PRNGKey

__all__ = [
    "CHUNK",
    "BaseChain",
    "Info",
    "Schedule",
    "State",
    "asymptotic_covariance",
    "asymptotic_variance",
    "check_starts",
    "empirical_measure",
    "hdt_step",
    "init",
    "metropolis_hastings_chain",
    "PowerSchedule",
    "power_schedule",
    "run",
    "run_chains",
    "simple_random_walk_chain",
    "step",
    "transition_matrix",
]

#: Row entries scored per iteration of the exact step.
CHUNK = 16

#: Increment of ``visits`` above which the state is renormalised.
_RENORMALISE_ABOVE = 1e18

Schedule = Callable[[Array], Array]


class BaseChain(NamedTuple):
    """A base Markov chain on a graph, reversible with respect to ``target``.

    Attributes:
      graph: the graph (undirected: both directions stored).
      edge_probs: ``float[num_edges]``, ``P_ij`` for the edge ``i -> j``.
      stay_probs: ``float[num_nodes]``, ``P_ii``.
      target: ``float[num_nodes]``, the stationary law ``mu`` (sums to 1).
      cdf: ``float[num_edges]``, per-row running sums of ``edge_probs``
        (:func:`~jaxsampling.kernels.walks.cumulative_weights`), for :func:`hdt_step`.
    """

    graph: CSRGraph
    edge_probs: Array
    stay_probs: Array
    target: Array
    cdf: Array


class State(NamedTuple):
    """The SRRW state after ``n`` steps.

    Attributes:
      node: ``int32[]``, ``X_n``.
      visits: ``float[num_nodes]``, ``s_n > 0`` with ``x_n = exp(log_scale) s_n``.
      log_scale: ``float[]``, ``log c_n``.
      step: ``int32[]``, ``n``.
    """

    node: Array
    visits: Array
    log_scale: Array
    step: Array


class Info(NamedTuple):
    """Per-step diagnostics.

    Attributes:
      gamma: ``float[]``, the step size ``gamma_{n+1}`` used.
      accepted: ``bool[]``, whether the walk moved off ``X_n`` (for
        :func:`hdt_step`: whether the proposal was accepted).
    """

    gamma: Array
    accepted: Array


@dataclasses.dataclass(frozen=True)
class PowerSchedule:
    """``gamma_{n+1} = scale (n + 2)^{-exponent}`` at step counter ``n``; hashable, so
    equal schedules passed to :func:`run` share one compilation."""

    exponent: float = 1.0
    scale: float = 1.0

    def __post_init__(self):
        if not self.scale > 0 or not self.exponent >= 0:
            raise ValueError(
                f"need scale > 0 and exponent >= 0, got {self.scale}, {self.exponent}"
            )

    def __call__(self, n: Array) -> Array:
        return self.scale * (jnp.asarray(n, jnp.float32) + 2.0) ** (-self.exponent)


def power_schedule(exponent: float = 1.0, scale: float = 1.0) -> PowerSchedule:
    """``gamma_{n+1} = scale (n + 2)^{-exponent}`` at step counter ``n``.

    As an SRRW step size it must stay in ``(0, 1)`` (``scale <= 1`` and
    ``exponent > 0``; a step of 1 or more makes ``x`` NaN). The default ``exponent = scale = 1`` makes ``x_n`` the empirical measure
    of ``X_1..X_n`` with ``x_0`` counted once. Any optax schedule (a function
    of the step count) works in its place if it stays in ``(0, 1)``.

    Example:
      >>> from jaxsampling.kernels import srrw
      >>> float(srrw.power_schedule()(0)), float(srrw.power_schedule(0.5, 0.5)(2))
      (0.5, 0.25)
    """
    return PowerSchedule(float(exponent), float(scale))


# --------------------------------------------------------------------------- #
# Base chains.
# --------------------------------------------------------------------------- #


def _check_target(target, graph) -> Array:
    if target is None:
        return jnp.full(graph.num_nodes, 1.0 / graph.num_nodes, jnp.float32)
    target = jnp.asarray(target)
    if target.shape != (graph.num_nodes,) or not jnp.issubdtype(target.dtype, jnp.floating):
        raise ValueError(
            f"target must be a float array of shape ({graph.num_nodes},), got "
            f"{target.dtype}{target.shape}"
        )
    if not _args.is_tracer(target):
        values = np.asarray(target)
        if not np.all(np.isfinite(values)) or np.any(values <= 0):
            raise ValueError("target must be finite and positive on every node")
    return target / jnp.sum(target)


def _check_graph(graph) -> None:
    walks._check_graph(graph)
    if not _args.is_tracer(graph.indptr) and np.any(np.diff(np.asarray(graph.indptr)) == 0):
        node = int(np.flatnonzero(np.diff(np.asarray(graph.indptr)) == 0)[0])
        raise ValueError(f"graph has a dangling node ({node}): an SRRW needs every node connected")


def metropolis_hastings_chain(graph: CSRGraph, target: ArrayLike | None = None) -> BaseChain:
    """The Metropolis-Hastings base chain toward ``target`` (uniform by default).

    ``P_ij = min(1/d_i, mu_j / (mu_i d_j))`` on edges, the rest on ``P_ii``
    (:func:`~jaxsampling.kernels.walks.metropolis_hastings_probabilities`).

    Raises:
      ValueError: a dangling node, a target of the wrong shape or not positive.
    """
    _check_graph(graph)
    mu = _check_target(target, graph)
    edge, stay = walks.metropolis_hastings_probabilities(graph, jnp.log(mu))
    return BaseChain(graph, edge, stay, mu, walks.cumulative_weights(graph._replace(weights=edge)))


def simple_random_walk_chain(graph: CSRGraph) -> BaseChain:
    """The (weighted) simple random walk ``P_ij = w_ij / w_i``, ``mu_i ∝ w_i``.

    Reversible when the weights are symmetric; ``mu`` is degree-proportional
    on an unweighted graph.

    Raises:
      ValueError: a dangling node.
    """
    _check_graph(graph)
    strength = graphs.weighted_degrees(graph)
    rows = walks._row_ids(graph)
    weights = jnp.ones(graph.num_edges, jnp.float32) if graph.weights is None else graph.weights
    edge = weights / strength[rows]
    return BaseChain(graph, edge, jnp.zeros(graph.num_nodes, edge.dtype),
                     strength / jnp.sum(strength), walks.cumulative_weights(graph._replace(weights=edge)))


def transition_matrix(chain: BaseChain) -> np.ndarray:
    """The dense ``P`` of a (small) base chain, float64 numpy."""
    n = chain.graph.num_nodes
    indptr = np.asarray(chain.graph.indptr)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    P = np.zeros((n, n))
    np.add.at(P, (rows, np.asarray(chain.graph.indices)), np.asarray(chain.edge_probs, np.float64))
    return P + np.diag(np.asarray(chain.stay_probs, np.float64))


def _spectrum(chain: BaseChain) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues ``l_2 >= l_3 >= ...`` of ``P`` (the 1 dropped) and ``u_i = D^{1/2} v_i``."""
    P = transition_matrix(chain)
    mu = np.asarray(chain.target, np.float64)
    root = np.sqrt(mu)
    S = root[:, None] * P / root[None, :]
    lam, v = np.linalg.eigh((S + S.T) / 2)
    order = np.argsort(-lam)
    return lam[order][1:], (root[:, None] * v[:, order])[:, 1:]


def _factor(lam: np.ndarray, alpha: float, hdt: bool) -> np.ndarray:
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if hdt:
        return (1 + lam) / (1 - lam) / (2 * alpha + 1)
    return (1 + lam) / ((2 * alpha * (1 + lam) + 1) * (1 - lam))


def asymptotic_covariance(chain: BaseChain, alpha: float, *, hdt: bool = False) -> np.ndarray:
    """``V(alpha)``, the limit of ``n Cov(x_n)`` for ``gamma_n = 1/(n + 1)`` (float64).

    ``sum_{i >= 2} (1 + l_i) / ((2 alpha (1 + l_i) + 1)(1 - l_i)) u_i u_i^T`` over
    the eigenvalues ``l_i`` of ``P`` and ``u_i = D_mu^{1/2} v_i`` (``v_i`` the
    orthonormal eigenvectors of ``D^{1/2} P D^{-1/2}``); at ``alpha = 0`` the
    usual Markov-chain CLT covariance. With ``hdt=True``: ``V(0) / (2 alpha + 1)``,
    the covariance of :func:`hdt_step`. ``f^T V f`` is the asymptotic ``n Var``
    of the running average of ``f`` (:func:`asymptotic_variance`).

    Example:
      >>> from jaxsampling.kernels import graphs, srrw
      >>> chain = srrw.metropolis_hastings_chain(graphs.karate_club())
      >>> f = graphs.degrees(chain.graph).astype(float)
      >>> v = [f @ srrw.asymptotic_covariance(chain, a) @ f for a in (0.0, 1.0)]
      >>> round(float(v[1] / v[0]), 3)
      0.25
    """
    lam, u = _spectrum(chain)
    return (u * _factor(lam, alpha, hdt)) @ u.T


def asymptotic_variance(
    chain: BaseChain, f: ArrayLike, alphas: ArrayLike, *, hdt: bool = False
) -> np.ndarray:
    """``f^T V(alpha) f`` for every ``alpha`` of ``alphas``, one eigendecomposition (float64).

    Example:
      >>> from jaxsampling.kernels import graphs, srrw
      >>> chain = srrw.metropolis_hastings_chain(graphs.karate_club())
      >>> v = srrw.asymptotic_variance(chain, graphs.degrees(chain.graph), [0, 1, 5, 10])
      >>> (v / v[0]).round(3).tolist()
      [1.0, 0.25, 0.064, 0.033]
    """
    lam, u = _spectrum(chain)
    proj = (np.asarray(f, np.float64) @ u) ** 2
    return np.array([proj @ _factor(lam, float(a), hdt) for a in np.atleast_1d(alphas)])


# --------------------------------------------------------------------------- #
# The chain.
# --------------------------------------------------------------------------- #


def _check_node(node, graph) -> Array:
    node = jnp.asarray(node)
    if node.shape != () or not jnp.issubdtype(node.dtype, jnp.integer):
        raise ValueError(f"node must be an integer scalar (vmap for many chains), got "
                         f"{node.dtype}{node.shape}")
    if not _args.is_tracer(node) and not 0 <= int(node) < graph.num_nodes:
        raise ValueError(f"node must lie in [0, num_nodes = {graph.num_nodes}), got {int(node)}")
    return node.astype(jnp.int32)


def init(chain: BaseChain, node: ArrayLike, x0: ArrayLike | None = None) -> State:
    """The state at ``n = 0``: ``X_0 = node``, ``x_0 = x0`` (default ``mu``).

    Args:
      chain: the base chain.
      node: the start node, an integer scalar.
      x0: ``float[num_nodes]`` positive initial measure (normalised here).

    Raises:
      ValueError: a node out of range, ``x0`` of the wrong shape or not positive.
    """
    node = _check_node(node, chain.graph)
    x0 = chain.target if x0 is None else _check_target(x0, chain.graph)
    return State(node, x0 / jnp.sum(x0), jnp.zeros((), x0.dtype), jnp.zeros((), jnp.int32))


def empirical_measure(state: State) -> Array:
    """``x_n = c_n s_n``, normalised (``float[num_nodes]``, sums to 1)."""
    return state.visits / jnp.sum(state.visits, axis=-1, keepdims=True)


def _check_alpha(alpha) -> None:
    if not _args.is_tracer(alpha) and not float(alpha) >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")


def _update(state: State, nxt: Array, gamma: Array) -> State:
    """``x_{n+1} = (1 - gamma) x_n + gamma delta_{nxt}`` on ``s`` and ``log c``."""
    log_scale = state.log_scale + jnp.log1p(-gamma)
    increment = gamma * jnp.exp(-log_scale)
    visits = state.visits.at[nxt].add(increment)

    def renormalise(args):
        visits, log_scale = args
        return visits * jnp.exp(log_scale), jnp.zeros_like(log_scale)

    visits, log_scale = lax.cond(increment > _RENORMALISE_ABOVE, renormalise, lambda a: a,
                                 (visits, log_scale))
    return State(nxt, visits, log_scale, state.step + 1)


def _log_repulsion(state: State, chain: BaseChain, nodes: Array, alpha) -> Array:
    """``-alpha log(s_j / mu_j)``: the log factor ``(x_j / mu_j)^{-alpha}`` up to a constant."""
    return -alpha * (jnp.log(state.visits[nodes]) - jnp.log(chain.target[nodes]))


def _next_node(key: PRNGKey, state: State, chain: BaseChain, alpha) -> Array:
    """``X_{n+1} ~ K_{X_n, .}[x_n]`` by a Gumbel-max over ``{X_n} ∪ N(X_n)``, chunk by chunk."""
    graph = walks._padded(chain.graph)
    edge_probs = chain.edge_probs if chain.graph.num_edges else jnp.zeros(1)
    node = state.node
    lo = graph.indptr[node]
    degree = graph.indptr[node + 1] - lo
    last = graph.indices.shape[0] - 1
    offsets = jnp.arange(CHUNK, dtype=jnp.int32)
    stay_key, row_key = jax.random.split(key)
    stay_score = (jnp.log(chain.stay_probs[node]) + _log_repulsion(state, chain, node, alpha)
                  + jax.random.gumbel(stay_key, dtype=state.visits.dtype))

    def body(carry):
        j, best, best_score = carry
        slots = lo + j * CHUNK + offsets
        valid = slots < lo + degree
        slots = jnp.minimum(slots, last)
        neighbours = graph.indices[slots]
        log_w = jnp.log(edge_probs[slots]) + _log_repulsion(state, chain, neighbours, alpha)
        gumbel = jax.random.gumbel(jax.random.fold_in(row_key, j), (CHUNK,), state.visits.dtype)
        score = jnp.where(valid, log_w + gumbel, -jnp.inf)
        at = jnp.argmax(score)
        better = score[at] > best_score
        return j + 1, jnp.where(better, neighbours[at], best), jnp.maximum(score[at], best_score)

    _, best, _ = lax.while_loop(lambda c: c[0] * CHUNK < degree, body,
                                (jnp.zeros((), jnp.int32), node, stay_score))
    return best


@jax.jit
def _step(key, state, chain, alpha, gamma):
    nxt = _next_node(key, state, chain, alpha)
    return _update(state, nxt, gamma), Info(gamma, nxt != state.node)


def step(
    key: PRNGKey,
    state: State,
    chain: BaseChain,
    *,
    alpha: float | Array,
    gamma: Schedule = power_schedule(),
) -> tuple[State, Info]:
    """One SRRW step: draw ``X_{n+1} ~ K_{X_n, .}[x_n]``, then update ``x``.

    Args:
      key: a PRNG key.
      state: the current :class:`State` (one chain; ``jax.vmap`` for many).
      chain: the base chain.
      alpha: repulsion strength ``>= 0`` (0 is the base chain).
      gamma: step-size schedule, ``n -> gamma_{n+1}`` in ``(0, 1)``.

    Returns:
      ``(new_state, info)``.

    Raises:
      ValueError: ``alpha < 0`` (concrete).
    """
    _check_alpha(alpha)
    return _step(key, state, chain, jnp.asarray(alpha, state.visits.dtype),
                 gamma(state.step).astype(state.visits.dtype))


def _sample_base(key: PRNGKey, node: Array, chain: BaseChain) -> Array:
    """``j ~ P(node, .)``: the stay mass first, then inverse CDF in the row."""
    graph = walks._padded(chain.graph)
    cdf = chain.cdf if chain.graph.num_edges else jnp.zeros(1)
    u = jax.random.uniform(key, dtype=cdf.dtype)
    stay = chain.stay_probs[node]
    lo = graph.indptr[node]
    hi = graph.indptr[node + 1]
    total = jnp.where(hi > lo, cdf[jnp.maximum(hi - 1, 0)], 0)
    target = jnp.minimum((u - stay) / jnp.maximum(1 - stay, 1e-30) * total,
                         jnp.nextafter(total, jnp.zeros_like(total)))
    at = walks._first_above(cdf, lo[None], hi[None], target[None], walks._Layout(None),
                            strict=True)[0]
    move = (u >= stay) & (total > 0)
    return jnp.where(move, graph.indices[jnp.minimum(at, graph.indices.shape[0] - 1)], node)


@jax.jit
def _hdt_step(key, state, chain, alpha, gamma):
    propose_key, accept_key = jax.random.split(key)
    proposal = _sample_base(propose_key, state.node, chain)
    log_ratio = (_log_repulsion(state, chain, proposal, alpha)
                 - _log_repulsion(state, chain, state.node, alpha))
    accept = jnp.log(jax.random.uniform(accept_key, dtype=state.visits.dtype)) < log_ratio
    nxt = jnp.where(accept, proposal, state.node)
    return _update(state, nxt, gamma), Info(gamma, accept & (proposal != state.node))


def hdt_step(
    key: PRNGKey,
    state: State,
    chain: BaseChain,
    *,
    alpha: float | Array,
    gamma: Schedule = power_schedule(),
) -> tuple[State, Info]:
    """One step of the history-driven-target walk (the ``O(log degree)`` follow-up).

    Propose ``j ~ P(X_n, .)`` (inverse CDF in the row), accept with
    ``min(1, (x_j / mu_j)^{-alpha} / (x_i / mu_i)^{-alpha})``: since ``P`` is
    ``mu``-reversible this is Metropolis-Hastings toward
    ``pi ∝ mu (x / mu)^{-alpha}``, the repulsion moved from the kernel into the
    target. Same arguments and state as :func:`step`.
    """
    _check_alpha(alpha)
    return _hdt_step(key, state, chain, jnp.asarray(alpha, state.visits.dtype),
                     gamma(state.step).astype(state.visits.dtype))


@functools.partial(jax.jit, static_argnames=("num_steps", "gamma", "hdt"))
def _run(key, state, chain, num_steps, alpha, gamma, hdt):
    kernel = _hdt_step if hdt else _step

    def body(state, step_key):
        state, _ = kernel(step_key, state, chain, alpha, gamma(state.step).astype(alpha.dtype))
        return state, state.node

    return lax.scan(body, state, jax.random.split(key, num_steps))


def run(
    key: PRNGKey,
    state: State,
    chain: BaseChain,
    num_steps: int,
    *,
    alpha: float | Array,
    gamma: Schedule = power_schedule(),
    hdt: bool = False,
) -> tuple[State, Array]:
    """``num_steps`` steps of :func:`step` (or :func:`hdt_step`) under ``lax.scan``.

    Args:
      key: a PRNG key.
      state: the start state.
      chain: the base chain.
      num_steps: number of steps (static).
      alpha: repulsion strength ``>= 0``.
      gamma: step-size schedule (static; a function, hashed by identity).
      hdt: use :func:`hdt_step`.

    Returns:
      ``(final_state, nodes int32[num_steps])`` with ``nodes[n] = X_{n+1}``.
    """
    _args.check_int(num_steps, "num_steps", minimum=0)
    _check_alpha(alpha)
    return _run(key, state, chain, num_steps, jnp.asarray(alpha, state.visits.dtype), gamma, hdt)


def run_chains(
    keys: Array,
    starts: ArrayLike,
    chain: BaseChain,
    num_steps: int,
    *,
    alpha: float | Array,
    gamma: Schedule = power_schedule(),
    hdt: bool = False,
) -> tuple[State, Array]:
    """Independent chains, one per key: :func:`init` and :func:`run`, vmapped.

    With ``keys`` and ``starts`` sharded over an explicit mesh axis each device
    runs its own chains (``jax.shard_map``, the base chain replicated, no
    collective); the results keep the sharding and equal the unsharded ones.

    Args:
      keys: ``key[num_chains]``, e.g. ``jax.random.split(key, num_chains)``.
      starts: ``int[num_chains]`` start nodes.
      chain: the base chain.
      num_steps: steps per chain (static).
      alpha: repulsion strength ``>= 0``.
      gamma: step-size schedule (static).
      hdt: use :func:`hdt_step`.

    Returns:
      ``(states, nodes)``: a :class:`State` with a leading ``num_chains`` axis
      and ``int32[num_chains, num_steps]``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxsampling.kernels import graphs, srrw
      >>> chain = srrw.metropolis_hastings_chain(graphs.karate_club())
      >>> keys = jax.random.split(jax.random.key(0), 8)
      >>> states, nodes = srrw.run_chains(keys, jnp.zeros(8, int), chain, 100, alpha=1.0)
      >>> states.visits.shape, nodes.shape
      ((8, 34), (8, 100))
    """
    starts = check_starts(keys, starts, chain)
    _args.check_int(num_steps, "num_steps", minimum=0)
    _check_alpha(alpha)
    alpha = jnp.asarray(alpha, chain.target.dtype)

    def chains(batched, chain, alpha):
        keys, starts = batched

        def one(key, start):
            return _run(key, init(chain, start), chain, num_steps, alpha, gamma, hdt)

        return jax.vmap(one)(keys, starts)

    return sharding.map_batch(chains, (keys, starts), chain, alpha)


def check_starts(keys: Array, starts: ArrayLike, chain: BaseChain) -> Array:
    """``starts`` as ``int32[num_chains]``, one per key; ``ValueError`` on a bad shape
    or dtype, and (concrete) on a node out of range."""
    starts = jnp.asarray(starts)
    if starts.ndim != 1 or not jnp.issubdtype(starts.dtype, jnp.integer):
        raise ValueError(f"starts must be a 1-D integer array, got {starts.dtype}{starts.shape}")
    if jnp.shape(keys)[:1] != starts.shape:
        raise ValueError(f"keys must have one key per start, got {jnp.shape(keys)} and "
                         f"{starts.shape}")
    if not _args.is_tracer(starts) and starts.size and not (
        0 <= int(starts.min()) and int(starts.max()) < chain.graph.num_nodes
    ):
        raise ValueError(f"starts must lie in [0, num_nodes = {chain.graph.num_nodes})")
    return starts.astype(jnp.int32)
