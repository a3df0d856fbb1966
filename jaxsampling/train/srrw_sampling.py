r"""Sampling variance of self-repellent random walks against the repulsion ``alpha``.

Reproduces the central figure of Doshi et al. (ICML 2023): the asymptotic
variance of the running average ``f^T x_n`` of a self-repellent random walk
(:mod:`jaxsampling.kernels.srrw`) falls with ``alpha`` like
``f^T V(alpha) f`` (``O(1/alpha)``), against the base Markov chain
(``alpha = 0``). Also runs the follow-up history-driven-target walk
(``hdt``, ``V(0) / (2 alpha + 1)``) on the same grid.

One block per (graph, method, alpha): ``num_chains`` independent chains of
``num_steps`` steps from start nodes drawn from the target ``mu``, with
``gamma_n = 1/(n + 1)`` (``x_n`` the empirical measure). Every
``record_every`` steps each chain's estimate ``f^T x_n`` is recorded;
reported per record time ``n``: ``n Var`` across chains (with its standard
error ``n Var sqrt(2 / (C - 1))``), the bias of the mean, ``n MSE``; and at
the end the theory ``f^T V(alpha) f`` and the ratios to ``alpha = 0`` (the
figure: simulated vs theoretical ratio against ``alpha``).

Graphs (shipped, nothing downloaded): ``karate`` (Zachary's club, 34
nodes), ``grid`` (``grid_size x grid_size`` lattice), ``barabasi_albert``
(``ba_nodes`` nodes, ``ba_m`` edges per new node, seed ``ba_seed``). Base
chain: Metropolis-Hastings toward the uniform law (``metropolis_hastings``)
or the simple random walk (``simple_random_walk``, degree-proportional
``mu``). Test function ``f``: the node degree.

Run it from the repository root::

    python -m jaxsampling.main --config=configs/srrw_sampling.py --workdir=runs/srrw_sampling

Example:
    >>> summary = train_and_evaluate(config, "/tmp/srrw")  # doctest: +SKIP
    >>> [(r["alpha"], r["ratio"], r["theory_ratio"]) for r in summary["results"]]  # doctest: +SKIP

Reference:
    Doshi, Hu & Eun (2023), Self-repellent random walks on general graphs:
    achieving minimal sampling variance via nonlinear Markov chains.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsampling.kernels import graphs, srrw
from jaxsampling.train import _blocks
from jaxsampling.types import Array

GRAPHS = ("karate", "grid", "barabasi_albert")
METHODS = ("srrw", "hdt")
BASE_CHAINS = ("metropolis_hastings", "simple_random_walk")
#: alpha grid of the theoretical curves written with every block.
CURVE_ALPHAS = tuple(float(a) for a in np.round(np.geomspace(0.1, 30.0, 25), 3))


class Cell(NamedTuple):
    """One block: a graph, a walk and a repulsion strength."""

    graph: str
    method: str
    alpha: float


class ExperimentState(NamedTuple):
    """Results so far (``B`` blocks, ``C`` chains, ``R`` record times).

    Attributes:
        next_block: index of the first block not yet run.
        estimates: ``f^T x_n`` of every chain at every record time.
    """

    next_block: Array  # int32[]
    estimates: Array  # float32[B, C, R]


def make_cells(config: Any) -> list[Cell]:
    """Every (graph, method, alpha) block, graph-major.

    Raises:
        ValueError: an unknown graph, method or base chain; alphas not
            distinct and >= 0; bad chain, step or record counts.
    """
    graph_names = _blocks.check_choices("graph", config.graphs, GRAPHS)
    methods = _blocks.check_choices("method", config.methods, METHODS)
    if config.base_chain not in BASE_CHAINS:
        raise ValueError(f"unknown base_chain {config.base_chain!r}; known: {list(BASE_CHAINS)}")
    alphas = _blocks.check_alphas(config.alphas)
    if int(config.num_chains) < 2:
        raise ValueError(f"num_chains must be >= 2, got {config.num_chains}")
    _blocks.check_record_schedule(config.num_steps, config.record_every)
    return [Cell(g, m, a) for g in graph_names for m in methods for a in alphas]


@functools.partial(jax.jit, static_argnames=("num_records", "every", "hdt"))
def trajectories(
    keys: Array, chain: srrw.BaseChain, f: Array, alpha: Array, *, num_records: int,
    every: int, hdt: bool,
) -> Array:
    """``f^T x_n`` at ``n = every, 2 every, ...`` for one chain per key: ``[C, R]``.

    Each chain starts at a node drawn from ``mu``; all chains run vmapped,
    ``every`` steps at a time (:func:`~jaxsampling.kernels.srrw.run`).
    """

    def one(key):
        start_key, walk_key = jax.random.split(key)
        start = jax.random.choice(start_key, chain.graph.num_nodes, p=chain.target)
        state = srrw.init(chain, start)

        def segment(state, segment_key):
            state, _ = srrw.run(segment_key, state, chain, every, alpha=alpha, hdt=hdt)
            return state, srrw.empirical_measure(state) @ f

        _, values = jax.lax.scan(segment, state, jax.random.split(walk_key, num_records))
        return values

    return jax.vmap(one)(keys)


def record_stats(values: np.ndarray, steps: np.ndarray, truth: float) -> dict:
    """Per record time: ``n Var``, its standard error, bias and ``n MSE`` (float64)."""
    values = np.asarray(values, np.float64)
    num = values.shape[0]
    n_var = steps * values.var(axis=0, ddof=1)
    bias = values.mean(axis=0) - truth
    return {
        "n": steps.tolist(),
        "n_var": n_var.tolist(),
        "n_var_se": (n_var * np.sqrt(2.0 / (num - 1))).tolist(),
        "bias": bias.tolist(),
        "n_mse": (steps * np.mean((values - truth) ** 2, axis=0)).tolist(),
    }


class GraphSetup(NamedTuple):
    """A graph's base chain, test function, its mean and the theory's curve."""

    chain: srrw.BaseChain
    f: np.ndarray  # float64[N], the degrees
    truth: float  # mu^T f
    curves: dict  # method -> f^T V(alpha) f on CURVE_ALPHAS


@functools.lru_cache(maxsize=None)
def _setup(name: str, base_chain: str, grid_size: int, ba: tuple[int, int, int]) -> GraphSetup:
    if name == "karate":
        graph = graphs.karate_club()
    elif name == "grid":
        graph = graphs.grid_2d(grid_size, grid_size)
    else:
        graph = graphs.barabasi_albert(*ba)
    if base_chain == "metropolis_hastings":
        chain = srrw.metropolis_hastings_chain(graph)
    else:
        chain = srrw.simple_random_walk_chain(graph)
    f = np.asarray(graphs.degrees(graph), np.float64)
    curves = {
        m: srrw.asymptotic_variance(chain, f, (0.0,) + CURVE_ALPHAS, hdt=m == "hdt")
        for m in METHODS
    }
    return GraphSetup(chain, f, float(np.asarray(chain.target, np.float64) @ f), curves)


def setup(name: str, config: Any) -> GraphSetup:
    """The graph ``name`` of ``config`` (shipped or generated) with its base chain."""
    ba = (int(config.ba_nodes), int(config.ba_m), int(config.ba_seed))
    return _setup(name, str(config.base_chain), int(config.grid_size), ba)


def block_row(cells: list[Cell], config: Any, state: ExperimentState, b: int) -> dict:
    """Block ``b``'s final statistics, its records, and the ratios to its alpha = 0 block
    (when that one is done)."""
    every = int(config.record_every)
    steps = every * np.arange(1, int(config.num_steps) // every + 1)
    cell = cells[b]
    graph = setup(cell.graph, config)
    stats = record_stats(state.estimates[b], steps, graph.truth)
    exact = srrw.asymptotic_variance(graph.chain, graph.f, [0.0, cell.alpha],
                                     hdt=cell.method == "hdt")
    row = {
        "graph": cell.graph,
        "method": cell.method,
        "alpha": cell.alpha,
        "num_nodes": graph.chain.graph.num_nodes,
        "n_var": stats["n_var"][-1],
        "n_var_se": stats["n_var_se"][-1],
        "theory": float(exact[1]),
        "bias": stats["bias"][-1],
        "n_mse": stats["n_mse"][-1],
        "records": stats,
    }
    zero = [i for i, c in enumerate(cells) if c[:2] == cell[:2] and c.alpha == 0.0]
    if zero and zero[0] < int(state.next_block):
        base = record_stats(state.estimates[zero[0]], steps, graph.truth)["n_var"][-1]
        row["ratio"] = row["n_var"] / base
        # Independent variance estimates: the log-ratio has SE sqrt(4 / (C - 1)).
        row["ratio_se"] = row["ratio"] * float(np.sqrt(4.0 / (state.estimates.shape[1] - 1)))
        row["theory_ratio"] = float(exact[1] / exact[0])
    curve = graph.curves[cell.method]
    row["curve"] = {"alpha": list(CURVE_ALPHAS), "theory_ratio": (curve[1:] / curve[0]).tolist()}
    return row


def _meta(cells: list[Cell], config: Any) -> dict:
    return {
        "cells": [list(c) for c in cells],
        "base_chain": str(config.base_chain),
        "num_chains": int(config.num_chains),
        "num_steps": int(config.num_steps),
        "record_every": int(config.record_every),
        "grid_size": int(config.grid_size),
        "ba": [int(config.ba_nodes), int(config.ba_m), int(config.ba_seed)],
        "seed": int(config.seed),
    }


def train_and_evaluate(config: Any, workdir: str) -> dict:
    """Runs the SRRW sampling-variance experiment into ``workdir``.

    Writes ``config.json``, ``metrics.jsonl`` (one line per block),
    checkpoints after each block and ``summary.json``; a workdir holding a
    checkpoint is resumed (:mod:`jaxsampling.train._blocks`).

    Returns:
        The summary: ``results``, one row per (graph, method, alpha) with
        ``n_var`` (and ``n_var_se``), ``theory``, ``ratio`` / ``ratio_se`` /
        ``theory_ratio`` (to ``alpha = 0``), ``bias``, ``n_mse`` and the
        per-record ``records``.

    Raises:
        ValueError: a bad config; a checkpoint of another config.
        FloatingPointError: a non-finite estimate.
    """
    cells = make_cells(config)
    num_chains, every = int(config.num_chains), int(config.record_every)
    num_records = int(config.num_steps) // every
    root_key = jax.random.key(config.seed)

    def run_block(b, state):
        cell = cells[b]
        graph = setup(cell.graph, config)
        keys = _blocks.block_keys(root_key, b, num_chains)
        values = np.asarray(trajectories(
            keys, graph.chain, jnp.asarray(graph.f, jnp.float32), jnp.float32(cell.alpha),
            num_records=num_records, every=every, hdt=cell.method == "hdt"))
        _blocks.check_finite("estimate", values, b, f"{tuple(cell)}")
        state = _blocks.set_block(state, b, estimates=values)
        return state, block_row(cells, config, state, b)

    def summarize(state):
        done = int(state.next_block)
        rows = [block_row(cells, config, state, b) for b in range(done)]
        return {
            "experiment": "srrw_sampling",
            "complete": done == len(cells),
            "base_chain": str(config.base_chain),
            "num_chains": num_chains,
            "num_steps": int(config.num_steps),
            "results": [{k: v for k, v in r.items() if k not in ("records", "curve")}
                        for r in rows],
        }

    state = ExperimentState(
        next_block=np.zeros((), np.int32),
        estimates=np.full((len(cells), num_chains, num_records), np.nan, np.float32),
    )
    return _blocks.run_blocks(
        config, workdir, num_blocks=len(cells), meta=_meta(cells, config), state=state,
        run_block=run_block, summarize=summarize,
    )
