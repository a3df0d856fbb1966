r"""Repeated random subsets (RS2) against static subset selection, on a real dataset.

Okanovic et al., "Repeated Random Sampling for Minimizing the
Time-to-Accuracy of Learning" (2023): with a budget of ``subset_size``
examples per epoch, training on a fresh random subset every epoch (drawn
without replacement across epochs, :func:`~jaxsampling.train.subsets.rs2_epoch`)
reaches a given accuracy sooner than training on one subset chosen up front,
however cleverly, and the selection itself costs time.

One *arm* per entry of ``config.arms``, each a flax MLP trained on
scikit-learn's digits (:mod:`jaxsampling.train.data`) by the shared loop
(:func:`jaxsampling.train.loop.fit`, its own workdir ``<workdir>/<arm>``),
all with the same optimiser, schedule, batch size and number of steps
(``epochs`` epochs of ``subset_size`` examples):

* ``rs2``: a fresh subset every epoch;
* ``uniform``, ``leverage``, ``dpp``: a static subset from
  :func:`~jaxsampling.train.subsets.select`;
* ``kmeans``: the diversity selector with its iterative cluster
  re-weighting: the subset is built in ``refine_rounds`` rounds of equal
  size; after each round's share of the steps (the model keeps training,
  the schedule restarts per round) every cluster's weight becomes the
  current model's mean training loss over it, and the next round's examples
  are spread over the clusters in proportion to ``size x weight``;
* ``full``: every training example each epoch, for ``full_epochs`` epochs.

``config.schedules`` adds RS2 arms with other learning-rate schedules
(``constant``, ``cosine``, ``refined``: Defazio et al.'s refinement of the
``rs2`` arm's gradient norms, :mod:`jaxsampling.train.schedules`); ``rs2``
itself uses ``config.train.optimizer.schedule`` (linear decay by default).

Per arm the summary reports the final and best test accuracy, the selection
time, and the time and examples to reach each of ``target_accuracies``
(time = selection + training, both summed over restarts; compile times are
reported apart); per static arm the ratio of its
time-to-accuracy to RS2's. Every arm's evaluation rows (its own
``<arm>/metrics.jsonl``) are gathered into ``metrics.jsonl`` with their
``arm`` and ``time`` (selection + training): test accuracy against time and
examples seen (``plot.plot_rs2``).

Run it from the repository root::

    python -m jaxsampling.main --config=configs/rs2.py --workdir=runs/rs2
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxsampling import metrics as metrics_lib
from jaxsampling.train import data as data_lib
from jaxsampling.train import loop, subsets

ARMS = ("rs2", "full", *subsets.SELECTORS)
SCHEDULE_ARMS = ("constant", "cosine", "refined")
SELECTION_FILE = "selection.json"


class MLP(nn.Module):
    """A ReLU multilayer perceptron classifier."""

    hidden: tuple[int, ...]
    num_classes: int

    @nn.compact
    def __call__(self, x):
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.num_classes)(x)


def _cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def _load(config: Any) -> data_lib.Dataset:
    if config.dataset != "digits":
        raise ValueError(f"unknown dataset {config.dataset!r}; known: ('digits',)")
    return data_lib.digits()


def _check(config: Any, n: int) -> None:
    arms = tuple(config.arms)
    if not arms or len(set(arms)) != len(arms) or any(a not in ARMS for a in arms):
        raise ValueError(f"arms must be distinct names from {ARMS}, got {arms}")
    for kind in config.schedules:
        if kind not in SCHEDULE_ARMS:
            raise ValueError(f"unknown schedule arm {kind!r}; known: {SCHEDULE_ARMS}")
    if config.schedules and "rs2" not in arms:
        raise ValueError("schedule arms refine or compare the rs2 arm: include 'rs2'")
    size, batch = int(config.subset_size), int(config.batch_size)
    if not 1 <= size <= n or size % batch:
        raise ValueError(
            f"subset_size ({size}) must be a multiple of batch_size ({batch}) and <= n = {n}"
        )
    rounds = int(config.refine_rounds)
    if rounds < 1 or size % (rounds * batch) or int(config.epochs) % rounds:
        raise ValueError(
            f"refine_rounds ({rounds}) must divide epochs, and subset_size / batch_size"
        )


class _Problem:
    """The model, data and jitted evaluations shared by every arm."""

    def __init__(self, config: Any):
        self.data = _load(config)
        self.model = MLP(tuple(config.hidden), self.data.num_classes)
        self.batch_size = int(config.batch_size)
        model = self.model

        @jax.jit
        def evaluate(params, x, y):
            logits = model.apply(params, x)
            return {
                "test_accuracy": jnp.mean(jnp.argmax(logits, -1) == y),
                "test_loss": jnp.mean(_cross_entropy(logits, y)),
            }

        @jax.jit
        def example_losses(params, x, y):
            return _cross_entropy(model.apply(params, x), y)

        def loss_fn(params, batch, key):
            del key
            logits = model.apply(params, batch["x"])
            return jnp.mean(_cross_entropy(logits, batch["y"])), {}

        self._evaluate = evaluate
        self.example_losses = example_losses
        def init_params(key):
            return model.init(key, jnp.zeros((1, self.data.x_train.shape[1]), jnp.float32))

        # One loss and init function for every arm: the loop compiles them once.
        self.loss_fn = loss_fn
        self.init_params = init_params

    def evaluate(self, params) -> dict:
        out = self._evaluate(params, self.data.x_test, self.data.y_test)
        return {k: float(v) for k, v in out.items()}

    def task(self, order, steps_per_epoch: int, describe: dict, init_params=None) -> loop.Task:
        """A loop task training on the examples of ``order(epoch)``, ``steps_per_epoch`` per epoch."""
        x, y, batch = self.data.x_train, self.data.y_train, self.batch_size

        def batches(first, num_steps, rows):
            idx = subsets.epoch_batches(order, first, num_steps, batch, steps_per_epoch)
            idx = idx[:, rows]
            return {"x": x[idx], "y": y[idx]}

        if init_params is None:
            init = self.init_params
        else:
            def init(key):
                del key
                return init_params

        return loop.Task(
            init_params=init,
            loss_fn=self.loss_fn,
            batches=batches,
            batch_size=batch,
            evaluate=self.evaluate,
            describe=describe,
        )


def _train_config(
    config: Any, num_steps: int, steps_per_call: int, epoch_steps: int, schedule=None
):
    """The loop config of one arm: ``epoch_steps`` steps make one evaluation epoch."""
    train = ml_collections.ConfigDict(config.train.to_dict())
    eval_steps = int(config.eval_every_epochs) * epoch_steps
    train.num_steps = num_steps
    train.steps_per_call = steps_per_call
    train.eval_every = eval_steps
    train.checkpoint_every = eval_steps * int(config.checkpoint_every_evals)
    train.seed = int(config.seed)
    if schedule is not None:
        train.optimizer.schedule.kind = schedule
    if config.get("stop_after_epochs", None) is not None:
        train.stop_after_steps = int(config.stop_after_epochs) * epoch_steps
    return train


def _timed_selection(workdir: str, select) -> tuple[np.ndarray, float, float]:
    """``select()`` with its run and compile times (the first run's, on restart).

    The selection runs twice: the second (warm) call's wall time is the
    selection time, the first call's excess is compilation.
    """
    path = os.path.join(workdir, SELECTION_FILE)
    start = time.perf_counter()
    indices = np.asarray(select())
    cold = time.perf_counter() - start
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if saved["indices"] != indices.tolist():
            raise ValueError(f"{path} holds another selection; use a fresh workdir")
        return indices, float(saved["seconds"]), float(saved["compile_seconds"])
    start = time.perf_counter()
    select()
    warm = time.perf_counter() - start
    if jax.process_index() == 0:
        os.makedirs(workdir, exist_ok=True)
        metrics_lib.atomic_write_json(
            path,
            {"seconds": warm, "compile_seconds": max(cold - warm, 0.0),
             "indices": indices.tolist()},
        )
    return indices, warm, max(cold - warm, 0.0)


def _run_arm(
    config: Any, problem: _Problem, workdir: str, arm: str, schedule: str | None,
    grad_norms: Any = None,
) -> dict:
    n = problem.data.x_train.shape[0]
    seed, size, batch = int(config.seed), int(config.subset_size), int(config.batch_size)
    per_epoch = size // batch
    num_steps = int(config.epochs) * per_epoch
    name = arm if schedule is None else f"rs2_{schedule}"
    arm_dir = os.path.join(workdir, name)
    describe = {"arm": name, "dataset": config.dataset, "hidden": list(config.hidden)}
    selection_time = compile_time = 0.0
    if arm == "kmeans":
        return _run_kmeans(config, problem, arm_dir, describe)
    if arm == "full":
        per_epoch = n // batch
        num_steps = int(config.full_epochs) * per_epoch
        everything = np.arange(n)
        order = lambda epoch: subsets.static_epoch(seed, epoch, everything)  # noqa: E731
    elif arm == "rs2":
        order = lambda epoch: subsets.rs2_epoch(seed, epoch, n, size)  # noqa: E731
    else:
        subset, selection_time, compile_time = _timed_selection(
            arm_dir,
            lambda: subsets.select(
                arm, seed, problem.data.x_train, size, num_clusters=int(config.num_clusters)
            ),
        )
        order = lambda epoch: subsets.static_epoch(seed, epoch, subset)  # noqa: E731
    train = _train_config(config, num_steps, per_epoch, per_epoch, schedule)
    task = problem.task(order, per_epoch, describe)
    result = loop.fit(train, arm_dir, task, grad_norms=grad_norms)
    return {
        "name": name,
        "history": result.history,
        "selection_time": selection_time,
        "compile_time": compile_time + result.compile_time,
        "complete": result.complete,
        "grad_norms": np.asarray(result.state.grad_norms),
    }


def _run_kmeans(config: Any, problem: _Problem, arm_dir: str, describe: dict) -> dict:
    """The diversity arm: ``refine_rounds`` rounds of selection and training.

    Round ``r`` trains ``1 / rounds`` of the steps on the union of the first
    ``r + 1`` selections; the loop runs ``size / (rounds x batch)`` steps per
    call, which divides both the round's steps and an evaluation epoch.
    """
    x, y = problem.data.x_train, problem.data.y_train
    seed, size, batch = int(config.seed), int(config.subset_size), int(config.batch_size)
    rounds, clusters = int(config.refine_rounds), int(config.num_clusters)
    epoch_steps = size // batch
    steps = int(config.epochs) * epoch_steps // rounds
    steps_per_call = size // (rounds * batch)
    labels, selection_time, compile_time = _timed_selection(
        arm_dir, lambda: subsets.cluster_labels(seed, x, clusters)
    )
    weights = np.ones(clusters)
    chosen = np.zeros(0, np.int64)
    params, history, steps_done, time_done = None, [], 0, 0.0
    complete = True
    for r in range(rounds):
        tick = time.perf_counter()
        chosen = np.sort(np.concatenate([
            chosen, subsets.diversity(seed + r, labels, weights, size // rounds, chosen)
        ]))
        selection_time += time.perf_counter() - tick
        per_epoch = len(chosen) // batch
        current = chosen.copy()
        order = lambda epoch, c=current: subsets.static_epoch(seed + r, epoch, c)  # noqa: E731
        train = _train_config(config, steps, steps_per_call, epoch_steps)
        stop = config.get("stop_after_epochs", None)
        if stop is not None:
            train.stop_after_steps = max(0, int(stop) * epoch_steps - steps_done)
        task = problem.task(
            order, per_epoch, {**describe, "round": r, "subset": current.tolist()}, params
        )
        result = loop.fit(train, os.path.join(arm_dir, f"round_{r}"), task)
        compile_time += result.compile_time
        for row in result.history:
            history.append({
                **row,
                "step": row["step"] + steps_done,
                "examples": row["examples"] + steps_done * batch,
                "train_time": row["train_time"] + time_done,
                # Only the selection done so far counts toward this row's time.
                "selection_time": selection_time,
            })
        if not result.complete:
            complete = False
            break
        steps_done += steps
        time_done = history[-1]["train_time"]
        params = jax.tree.map(np.asarray, result.state.params)
        tick = time.perf_counter()
        losses = np.asarray(problem.example_losses(params, x, y), np.float64)
        sums = np.bincount(labels, weights=losses, minlength=clusters)
        counts = np.maximum(np.bincount(labels, minlength=clusters), 1)
        weights = sums / counts
        selection_time += time.perf_counter() - tick
    return {
        "name": "kmeans",
        "history": history,
        "selection_time": selection_time,
        "compile_time": compile_time,
        "complete": complete,
    }


def _time_to_target(arm: dict, target: float) -> tuple[float, float]:
    """Seconds (selection + training) and examples until test accuracy >= target."""
    for row in arm["history"]:
        if row["test_accuracy"] >= target:
            selection = row.get("selection_time", arm["selection_time"])
            return selection + row["train_time"], float(row["examples"])
    return math.inf, math.inf


def _percent(target: float) -> str:
    return f"{100 * target:g}"


def _summarize(config: Any, arms: list[dict], complete: bool) -> dict:
    targets = [float(t) for t in config.target_accuracies]
    rs2 = next((a for a in arms if a["name"] == "rs2" and a["history"]), None)
    rows = []
    for arm in arms:
        if not arm["history"]:
            continue
        accuracy = [r["test_accuracy"] for r in arm["history"]]
        row = {
            "arm": arm["name"],
            "final_accuracy": accuracy[-1],
            "best_accuracy": max(accuracy),
            "selection_time": arm["selection_time"],
            "train_time": arm["history"][-1]["train_time"],
            "compile_time": arm["compile_time"],
        }
        for target in targets:
            seconds, examples = _time_to_target(arm, target)
            reference = math.nan if rs2 is None else _time_to_target(rs2, target)[0]
            tag = _percent(target)
            row[f"time_to_{tag}"] = seconds
            row[f"examples_to_{tag}"] = examples
            row[f"time_ratio_{tag}"] = (
                seconds / reference if 0 < reference < math.inf else math.nan
            )
        rows.append(row)
    return {
        "experiment": "rs2",
        "target_accuracies": targets,
        "complete": complete,
        "results": metrics_lib.to_jsonable(rows),
    }


def train_and_evaluate(config: Any, workdir: str) -> dict:
    """Runs every arm (resuming finished and interrupted ones) and returns the summary.

    Raises:
        ValueError: a bad config, or a workdir holding another configuration.
        FloatingPointError: a non-finite loss in some arm (its last good
            checkpoint stays).
    """
    problem = _Problem(config)
    _check(config, problem.data.x_train.shape[0])
    arms, complete = [], True
    for arm in config.arms:
        arms.append(_run_arm(config, problem, workdir, arm, None))
        complete &= arms[-1]["complete"]
    rs2 = next((a for a in arms if a["name"] == "rs2"), None)
    warmup = int(config.train.optimizer.schedule.get("warmup_steps", 0))
    for kind in config.schedules:
        # The refined schedule reads the norms of the decay steps (after warmup).
        norms = rs2["grad_norms"][warmup:] if kind == "refined" else None
        if kind == "refined" and not rs2["complete"]:
            complete = False
            break
        arms.append(_run_arm(config, problem, workdir, "rs2", kind, norms))
        complete &= arms[-1]["complete"]
    summary = _summarize(config, arms, bool(complete))
    writer = metrics_lib.MetricWriter(workdir)
    with writer:
        writer.write_config(config)
        writer.replace_metrics(
            [
                {**row, "arm": arm["name"],
                 "time": row.get("selection_time", arm["selection_time"]) + row["train_time"]}
                for arm in arms
                for row in arm["history"]
            ]
        )
        if summary["complete"]:
            writer.write_summary(summary)
    return summary
