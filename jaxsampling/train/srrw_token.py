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
``num_steps`` steps from ``theta_0 = 0`` and token starts drawn uniformly.
The walk does not depend on ``theta``, so each block first draws the
token's path of every run (:func:`jaxsampling.kernels.srrw.run_chains`),
then trains the stacked ``theta[num_runs, d]`` with the shared loop
(:func:`jaxsampling.train.loop.fit`: step ``n``'s batch is the node of each
run, ``config.optimizer`` with the power schedule ``beta``, the runs split
over the devices and processes, checkpoints within the block); the errors
are evaluated every ``record_every`` steps. Reported per record time:
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
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxsampling.kernels import graphs, sa_srrw, srrw
from jaxsampling.train import _blocks, loop
from jaxsampling.types import Array

GRAPHS = ("karate", "barabasi_albert")


class Cell(NamedTuple):
    """One block: a step-size regime and a repulsion strength."""

    regime: str
    alpha: float


class ExperimentState(NamedTuple):
    """Results so far (``B`` blocks, ``R`` record times).

    Attributes:
        next_block: index of the first block not yet run.
        errors: per block, the MSE, squared bias and variance of ``theta_n``
            across runs at every record time.
    """

    next_block: Array  # int32[]
    errors: Array  # float32[B, 3, R]


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
    if int(config.checkpoint_every_records) < 1:
        raise ValueError(
            f"checkpoint_every_records must be >= 1, got {config.checkpoint_every_records}"
        )
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


def _problem_key(config: Any) -> tuple:
    return (str(config.graph), (int(config.ba_nodes), int(config.ba_m), int(config.ba_seed)),
            int(config.num_features), int(config.samples_per_node),
            float(config.heterogeneity), float(config.l2), int(config.data_seed))


def loss_fn(config: Any):
    """The local loss ``(theta, node) -> f_node(theta)`` of ``config``'s problem.

    Cached, so every block of a run (and a resumed run) hands the same
    function to the jitted training loop (no recompilation).
    """
    return _loss_fn(_problem_key(config))


@functools.lru_cache(maxsize=None)
def _walk_loss(problem_key: tuple, rows: int) -> Any:
    """The loop's loss of a batch of runs (one object per problem: one compilation).

    A batch row is one run: ``run`` (its index in the stacked ``theta``),
    ``node`` (the token's node ``X_{n+1}``) and ``weight`` (0 on padding).
    The loop averages the devices' losses, each the mean over its rows; times
    ``rows`` that is ``sum_r f_{X_r}(theta_r)``, so run ``r`` gets exactly
    ``grad f_{X_r}(theta_r)``.
    """
    local_loss = _loss_fn(problem_key)

    def loss_fn(params, batch, key):
        del key
        f = jax.vmap(local_loss)(params[batch["run"]], batch["node"])
        return jnp.sum(batch["weight"] * f) / f.shape[0] * rows, {}

    return loss_fn


@functools.lru_cache(maxsize=None)
def _zeros(num_runs: int, d: int) -> Any:
    """``theta_0 = 0`` for every run (cached: one initialiser per shape)."""
    return lambda key: jnp.zeros((num_runs, d), jnp.float32)


def walks(keys: Array, config: Any, cell: Cell) -> np.ndarray:
    """The token's nodes ``X_1 .. X_T`` of every run: ``int32[S, T]``.

    The walk does not depend on ``theta``, so it is drawn first (SRRW with the
    regime's ``gamma``); ``keys``: ``S + 1`` keys, one per run and the last
    for the start nodes (uniform).
    """
    prob = problem(config)
    gamma, _ = sa_srrw.regime_schedules(cell.regime, gamma_scale=float(config.gamma_scale),
                                        beta_scale=float(config.beta_scale))
    keys, start_key = keys[:-1], keys[-1]
    starts = jax.random.randint(start_key, (keys.shape[0],), 0, prob.chain.graph.num_nodes)
    _, nodes = srrw.run_chains(keys, starts, prob.chain, int(config.num_steps),
                               alpha=cell.alpha, gamma=gamma)
    return np.asarray(nodes, np.int32)


def train_config(config: Any, cell: Cell) -> Any:
    """The :func:`~jaxsampling.train.loop.fit` config of one block: plain SGD
    (``config.optimizer``) with ``beta_{n+1} = beta_scale (n + 2)^-b``, one
    compiled call per record, a checkpoint every ``checkpoint_every_records``."""
    _, b = sa_srrw.REGIMES[cell.regime]
    every = int(config.record_every)
    train = ml_collections.ConfigDict({
        "seed": int(config.seed),
        "num_steps": int(config.num_steps),
        "steps_per_call": every,
        "eval_every": every,
        "checkpoint_every": every * int(config.checkpoint_every_records),
        "keep_checkpoints": 2,
        "log_every_secs": float(config.get("log_every_secs", 10.0)),
        "optimizer": {
            "name": str(config.optimizer), "kwargs": {}, "clip_norm": None,
            "schedule": {"kind": "power", "peak_value": float(config.beta_scale),
                         "exponent": b, "offset": 2.0, "warmup_steps": 0},
        },
    })
    if config.get("stop_after_steps", None) is not None:
        train.stop_after_steps = int(config.stop_after_steps)
    return train


def run_block_errors(b: int, config: Any, cell: Cell, workdir: str) -> np.ndarray | None:
    """Trains block ``b``'s runs with :func:`~jaxsampling.train.loop.fit` in
    ``workdir``: MSE, squared bias and variance per record time ``[3, R]``,
    or None if the fit stopped early (``stop_after_steps``)."""
    prob = problem(config)
    num_runs, d = int(config.num_runs), int(config.num_features)
    rows = loop.pad_to_devices(num_runs)
    keys = _blocks.block_keys(jax.random.key(config.seed), b, num_runs + 1)
    nodes = np.zeros((rows, int(config.num_steps)), np.int32)
    nodes[:num_runs] = walks(keys, config, cell)
    run = np.minimum(np.arange(rows), num_runs - 1).astype(np.int32)
    weight = (np.arange(rows) < num_runs).astype(np.float32)

    def batches(first, num_steps, rows_slice):
        shape = (num_steps, rows_slice.stop - rows_slice.start)
        return {"node": nodes[rows_slice, first:first + num_steps].T,
                "run": np.broadcast_to(run[rows_slice], shape),
                "weight": np.broadcast_to(weight[rows_slice], shape)}

    def evaluate(params):
        return {k: v[0] for k, v in record_stats(np.asarray(params)[:, None], prob.optimum).items()}

    task = loop.Task(
        init_params=_zeros(num_runs, d),
        loss_fn=_walk_loss(_problem_key(config), rows),
        batches=batches,
        batch_size=rows,
        evaluate=evaluate,
        describe={"block": b, "cell": list(cell), **_meta([cell], config)},
    )
    result = loop.fit(train_config(config, cell), workdir, task)
    if not result.complete:
        return None
    return np.array([[h[k] for h in result.history] for k in ("mse", "bias_sq", "variance")])


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
    stats = dict(zip(("mse", "bias_sq", "variance"), np.asarray(state.errors[b]).tolist()))
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
        mse0, _, variance0 = np.asarray(state.errors[zero[0]])[:, -1]
        row["variance_ratio"] = row["variance"] / float(variance0)
        row["mse_ratio"] = row["mse"] / float(mse0)
    return row


def _meta(cells: list[Cell], config: Any) -> dict:
    return {
        "cells": [list(c) for c in cells],
        "graph": str(config.graph),
        "ba": [int(config.ba_nodes), int(config.ba_m), int(config.ba_seed)],
        "data": [int(config.num_features), int(config.samples_per_node),
                 float(config.heterogeneity), float(config.l2), int(config.data_seed)],
        "scales": [float(config.gamma_scale), float(config.beta_scale)],
        "optimizer": str(config.optimizer),
        "num_runs": int(config.num_runs),
        "num_steps": int(config.num_steps),
        "record_every": int(config.record_every),
        "seed": int(config.seed),
    }


def block_dir(workdir: str, cell: Cell) -> str:
    """Where block ``cell`` trains: ``<workdir>/<regime>_alpha<alpha>``."""
    return os.path.join(workdir, f"{cell.regime}_alpha{cell.alpha:g}")


def train_and_evaluate(config: Any, workdir: str) -> dict:
    """Runs the SA-SRRW token experiment into ``workdir``.

    Each block trains its runs with the shared loop
    (:func:`jaxsampling.train.loop.fit`: checkpoints within the block, in
    ``<workdir>/<regime>_alpha<alpha>``); ``metrics.jsonl`` gets one line per
    finished block, a block checkpoint follows each, and ``summary.json``
    the last (:mod:`jaxsampling.train._blocks`). A killed run resumes from
    the last block and, within it, from the loop's last checkpoint.

    Returns:
        The summary: ``optimum`` (``theta*``) and ``results``, one row per
        (regime, alpha) with the final ``mse``, ``bias_sq``, ``variance``,
        ``mse_over_variance`` and ``variance_ratio`` / ``mse_ratio`` (to
        ``alpha = 0`` of the same regime).

    Raises:
        ValueError: a bad config; a checkpoint of another config.
        FloatingPointError: a non-finite loss or gradient (the loop's last
            good checkpoint stays).
    """
    cells = make_cells(config)
    num_records = int(config.num_steps) // int(config.record_every)

    def run_block(b, state):
        errors = run_block_errors(b, config, cells[b], block_dir(workdir, cells[b]))
        if errors is None:
            return None
        _blocks.check_finite("error", errors[None], b, f"{tuple(cells[b])}")
        state = _blocks.set_block(state, b, errors=errors)
        return state, block_row(cells, config, state, b)

    def summarize(state):
        done = int(state.next_block)
        rows = [block_row(cells, config, state, b) for b in range(done)]
        return {
            "experiment": "srrw_token",
            "complete": done == len(cells),
            "graph": str(config.graph),
            "optimum": problem(config).optimum.tolist(),
            "num_runs": int(config.num_runs),
            "num_steps": int(config.num_steps),
            "results": [{k: v for k, v in r.items() if k != "records"} for r in rows],
        }

    state = ExperimentState(
        next_block=np.zeros((), np.int32),
        errors=np.full((len(cells), 3, num_records), np.nan, np.float32),
    )
    return _blocks.run_blocks(
        config, workdir, num_blocks=len(cells), meta=_meta(cells, config), state=state,
        run_block=run_block, summarize=summarize,
    )
