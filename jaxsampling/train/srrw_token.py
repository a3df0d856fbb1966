r"""Distributed optimisation by a self-repellent token (SA-SRRW) against the repulsion ``alpha``.

Reproduces the experiment of Hu, Doshi & Eun (ICLR 2024): every node ``i``
of a graph holds a shard of a dataset and its local loss ``f_i(theta)``
(here L2-regularised logistic regression on synthetic, node-dependent data);
a token walks the graph by the SRRW (:mod:`jaxsampling.kernels.sa_srrw`) and
updates ``theta`` with the gradient of the loss of each node it reaches,
``theta_{n+1} = theta_n - beta_{n+1} grad f_{X_{n+1}}(theta_n)``
(``optax.sgd`` with the schedule ``beta``). With the Metropolis-Hastings base
chain toward the uniform law the iterates converge to
``theta* = argmin (1/N) sum_i f_i`` (computed by Newton's method in float64).

One block per (step-size regime, alpha): ``num_runs`` independent runs of
``num_steps`` steps from ``theta_0 = 0`` and token starts drawn uniformly;
``theta`` is recorded every ``record_every`` steps. Reported per record time:
the MSE ``E||theta_n - theta*||^2``, the squared bias ``||E theta_n - theta*||^2``
and the variance ``E||theta_n - E theta_n||^2`` (across runs), and at the
end their ratios to ``alpha = 0`` of the same regime and ``MSE / variance``.
Regimes (:data:`~jaxsampling.kernels.sa_srrw.REGIMES`): ``beta_slower``
(``beta = o(gamma)``), ``equal``, ``gamma_slower`` (``gamma = o(beta)``);
the paper predicts the largest variance reduction in the first and none in
the last, and a finite-time bias can dominate the MSE in the first.

Run it from the repository root::

    python -m jaxsampling.main --config=configs/srrw_token.py --workdir=runs/srrw_token

Reference:
    Hu, Doshi & Eun (2024), Accelerating distributed stochastic optimization
    via self-repellent random walks (ICLR).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsampling.kernels import graphs, sa_srrw, srrw
from jaxsampling.train import _blocks
from jaxsampling.types import Array

GRAPHS = ("karate", "barabasi_albert")


class Cell(NamedTuple):
    """One block: a step-size regime and a repulsion strength."""

    regime: str
    alpha: float


class ExperimentState(NamedTuple):
    """Results so far (``B`` blocks, ``S`` runs, ``R`` record times, ``d`` features).

    Attributes:
        next_block: index of the first block not yet run.
        thetas: ``theta_n`` of every run at every record time.
    """

    next_block: Array  # int32[]
    thetas: Array  # float32[B, S, R, d]


class Problem(NamedTuple):
    """The graph, its base chain, the data shards and the optimum."""

    chain: srrw.BaseChain
    features: np.ndarray  # float32[N, m, d]
    labels: np.ndarray  # float32[N, m], in {-1, +1}
    l2: float
    optimum: np.ndarray  # float64[d]


def make_cells(config: Any) -> list[Cell]:
    """Every (regime, alpha) block, regime-major.

    Raises:
        ValueError: an unknown regime or graph, alphas not distinct and
            >= 0, bad run / step / record counts or data sizes.
    """
    regimes = _blocks.check_choices("regime", config.regimes, sa_srrw.REGIMES)
    if config.graph not in GRAPHS:
        raise ValueError(f"unknown graph {config.graph!r}; known: {list(GRAPHS)}")
    alphas = _blocks.check_alphas(config.alphas)
    if int(config.num_runs) < 2:
        raise ValueError(f"num_runs must be >= 2, got {config.num_runs}")
    _blocks.check_record_schedule(config.num_steps, config.record_every)
    if int(config.num_features) < 1 or int(config.samples_per_node) < 1:
        raise ValueError("num_features and samples_per_node must be >= 1")
    return [Cell(r, a) for r in regimes for a in alphas]


def _newton(features: np.ndarray, labels: np.ndarray, l2: float) -> np.ndarray:
    """``argmin (1/N) sum_i f_i`` = the regularised logistic loss over all samples (float64)."""
    x = features.reshape(-1, features.shape[-1]).astype(np.float64)
    y = labels.reshape(-1).astype(np.float64)
    theta = np.zeros(x.shape[1])
    for _ in range(100):
        margin = y * (x @ theta)
        p = 1.0 / (1.0 + np.exp(margin))  # sigmoid(-margin)
        grad = -(x * (y * p)[:, None]).mean(0) + l2 * theta
        hess = (x * (p * (1 - p))[:, None]).T @ x / len(y) + l2 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.linalg.norm(step) < 1e-13:
            break
    return theta


@functools.lru_cache(maxsize=None)
def _problem(graph_name: str, ba: tuple[int, int, int], num_features: int,
             samples_per_node: int, heterogeneity: float, l2: float, data_seed: int) -> Problem:
    graph = graphs.karate_club() if graph_name == "karate" else graphs.barabasi_albert(*ba)
    chain = srrw.metropolis_hastings_chain(graph)
    rng = np.random.default_rng(data_seed)
    n, m, d = graph.num_nodes, samples_per_node, num_features
    truth = rng.normal(size=d)
    # Node-dependent feature means: the local optima differ from node to node.
    shift = heterogeneity * rng.normal(size=(n, 1, d))
    features = (rng.normal(size=(n, m, d)) + shift).astype(np.float32)
    logits = features @ truth
    labels = np.where(rng.uniform(size=(n, m)) < 1 / (1 + np.exp(-logits)), 1.0, -1.0)
    labels = labels.astype(np.float32)
    return Problem(chain, features, labels, l2, _newton(features, labels, l2))


def problem(config: Any) -> Problem:
    """The graph, data and optimum of ``config`` (cached)."""
    ba = (int(config.ba_nodes), int(config.ba_m), int(config.ba_seed))
    return _problem(str(config.graph), ba, int(config.num_features),
                    int(config.samples_per_node), float(config.heterogeneity),
                    float(config.l2), int(config.data_seed))


@functools.lru_cache(maxsize=None)
def _loss_fn(problem_key: tuple) -> Any:
    prob = _problem(*problem_key)
    features, labels = jnp.asarray(prob.features), jnp.asarray(prob.labels)

    def local_loss(theta, node):
        """``f_i``: mean logistic loss of node ``i``'s samples + ``l2 / 2 ||theta||^2``."""
        margin = labels[node] * (features[node] @ theta)
        return jnp.mean(jax.nn.softplus(-margin)) + 0.5 * prob.l2 * jnp.sum(theta**2)

    return local_loss


def loss_fn(config: Any):
    """The local loss ``(theta, node) -> f_node(theta)`` of ``config``'s problem.

    Cached, so every block of a run (and a resumed run) hands the same
    function to the jitted SA-SRRW loop (no recompilation).
    """
    key = (str(config.graph), (int(config.ba_nodes), int(config.ba_m), int(config.ba_seed)),
           int(config.num_features), int(config.samples_per_node),
           float(config.heterogeneity), float(config.l2), int(config.data_seed))
    return _loss_fn(key)


@functools.lru_cache(maxsize=None)
def _optimizer(regime: str, gamma_scale: float, beta_scale: float):
    gamma, beta = sa_srrw.regime_schedules(regime, gamma_scale=gamma_scale,
                                           beta_scale=beta_scale)
    return gamma, optax.sgd(beta)


def run_block_thetas(keys: Array, config: Any, cell: Cell) -> Array:
    """``theta`` of every run at every record time: ``[S, R, d]``.

    ``keys``: ``S + 1`` keys, one per run and the last for the token's start nodes.
    """
    prob = problem(config)
    gamma, opt = _optimizer(cell.regime, float(config.gamma_scale), float(config.beta_scale))
    keys, start_key = keys[:-1], keys[-1]
    starts = jax.random.randint(start_key, (keys.shape[0],), 0, prob.chain.graph.num_nodes)
    _, trace = sa_srrw.run_chains(
        keys, starts, prob.chain, jnp.zeros(int(config.num_features), jnp.float32),
        loss_fn(config), opt, int(config.num_steps), alpha=cell.alpha, gamma=gamma,
        every=int(config.record_every),
    )
    return trace


def record_stats(thetas: np.ndarray, optimum: np.ndarray) -> dict:
    """Per record time: MSE, squared bias and variance across runs (float64)."""
    thetas = np.asarray(thetas, np.float64)  # [S, R, d]
    mean = thetas.mean(0)
    return {
        "mse": np.mean(np.sum((thetas - optimum) ** 2, -1), 0).tolist(),
        "bias_sq": np.sum((mean - optimum) ** 2, -1).tolist(),
        "variance": np.mean(np.sum((thetas - mean) ** 2, -1), 0).tolist(),
    }


def block_row(cells: list[Cell], config: Any, state: ExperimentState, b: int) -> dict:
    """Block ``b``'s final errors, its records and the ratios to its regime's alpha = 0."""
    every = int(config.record_every)
    steps = every * np.arange(1, int(config.num_steps) // every + 1)
    cell = cells[b]
    optimum = problem(config).optimum
    stats = record_stats(state.thetas[b], optimum)
    row = {
        "regime": cell.regime,
        "alpha": cell.alpha,
        "mse": stats["mse"][-1],
        "bias_sq": stats["bias_sq"][-1],
        "variance": stats["variance"][-1],
        "mse_over_variance": stats["mse"][-1] / stats["variance"][-1],
        "records": {"n": steps.tolist(), **stats},
    }
    zero = [i for i, c in enumerate(cells) if c.regime == cell.regime and c.alpha == 0.0]
    if zero and zero[0] < int(state.next_block):
        base = record_stats(state.thetas[zero[0]], optimum)
        row["variance_ratio"] = row["variance"] / base["variance"][-1]
        row["mse_ratio"] = row["mse"] / base["mse"][-1]
    return row


def _meta(cells: list[Cell], config: Any) -> dict:
    return {
        "cells": [list(c) for c in cells],
        "graph": str(config.graph),
        "ba": [int(config.ba_nodes), int(config.ba_m), int(config.ba_seed)],
        "data": [int(config.num_features), int(config.samples_per_node),
                 float(config.heterogeneity), float(config.l2), int(config.data_seed)],
        "scales": [float(config.gamma_scale), float(config.beta_scale)],
        "num_runs": int(config.num_runs),
        "num_steps": int(config.num_steps),
        "record_every": int(config.record_every),
        "seed": int(config.seed),
    }


def train_and_evaluate(config: Any, workdir: str) -> dict:
    """Runs the SA-SRRW token experiment into ``workdir``.

    Writes ``config.json``, ``metrics.jsonl`` (one line per block),
    checkpoints after each block and ``summary.json``; a workdir holding a
    checkpoint is resumed (:mod:`jaxsampling.train._blocks`).

    Returns:
        The summary: ``optimum`` (``theta*``) and ``results``, one row per
        (regime, alpha) with the final ``mse``, ``bias_sq``, ``variance``,
        ``mse_over_variance`` and ``variance_ratio`` / ``mse_ratio`` (to
        ``alpha = 0`` of the same regime).

    Raises:
        ValueError: a bad config; a checkpoint of another config.
        FloatingPointError: a non-finite iterate.
    """
    cells = make_cells(config)
    num_runs, d = int(config.num_runs), int(config.num_features)
    num_records = int(config.num_steps) // int(config.record_every)
    root_key = jax.random.key(config.seed)

    def run_block(b, state):
        keys = _blocks.block_keys(root_key, b, num_runs + 1)
        thetas = np.asarray(run_block_thetas(keys, config, cells[b]))
        _blocks.check_finite("iterate", thetas, b, f"{tuple(cells[b])}")
        state = _blocks.set_block(state, b, thetas=thetas)
        return state, block_row(cells, config, state, b)

    def summarize(state):
        done = int(state.next_block)
        rows = [block_row(cells, config, state, b) for b in range(done)]
        return {
            "experiment": "srrw_token",
            "complete": done == len(cells),
            "graph": str(config.graph),
            "optimum": problem(config).optimum.tolist(),
            "num_runs": num_runs,
            "num_steps": int(config.num_steps),
            "results": [{k: v for k, v in r.items() if k != "records"} for r in rows],
        }

    state = ExperimentState(
        next_block=np.zeros((), np.int32),
        thetas=np.full((len(cells), num_runs, num_records, d), np.nan, np.float32),
    )
    return _blocks.run_blocks(
        config, workdir, num_blocks=len(cells), meta=_meta(cells, config), state=state,
        run_block=run_block, summarize=summarize,
    )
