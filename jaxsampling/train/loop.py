r"""The training loop every gradient-based trainer shares.

A trainer describes its problem as a :class:`Task` (initial parameters, a
loss, the batches of any range of steps, an evaluation) and calls
:func:`fit`, which owns everything else:

* **Update step.** ``params`` are updated by the optax optimiser built from
  ``config.optimizer`` (:mod:`jaxsampling.train.optim`). The randomness of
  step ``s`` on device ``d`` is ``fold_in(fold_in(root_key, s), d)``.
  ``config.steps_per_call`` steps run in one jitted ``lax.scan`` whose state
  argument is donated.
* **Data parallelism.** The batch axis is sharded over a 1-D mesh of every
  device of every process, parameters and optimiser state are replicated.
  Each device takes the loss and gradient of its rows; they are
  all-gathered and averaged in device order, so a run gives bit-identical
  results however its devices are spread over processes (one process with 4
  devices = two with 2 each). That costs each device one copy of the
  gradient per device; ``config.deterministic_reduce = False`` averages by
  ``pmean`` instead (an all-reduce, whose order XLA picks). Each process
  builds only its own rows of each global batch (``Task.batches`` gets the
  row range).
* **Ensembles** (``Task.shard_params``). Independent models stacked along
  a leading axis (an ensemble, a pool of runs) are sharded instead: every
  parameter and optimiser-state leaf with a leading axis is split over the
  devices, each device trains its share on the whole (replicated) batch, and
  no gradient is reduced; the objective is the **sum** of the devices'
  losses, so each model gets the gradient of its own loss term.
* **Checkpoints.** Every ``config.checkpoint_every`` steps and at the end,
  with orbax (:mod:`jaxsampling.checkpoint`): the :class:`TrainState` (step,
  params, optimiser state, the per-step losses and gradient norms) and a meta
  dict (the task's description, the evaluation history, the accumulated
  training time). A run restarted on the same workdir resumes from the
  newest checkpoint that loads (corrupt ones are skipped with a warning) and
  is bit-identical to an uninterrupted one: the batches and keys of step
  ``s`` depend on ``s`` only, and chunk boundaries fall on checkpoint steps.
* **Non-finite loss or gradient.** Checked after every chunk, before
  anything is logged or saved: ``FloatingPointError`` naming the first bad
  step; the last good checkpoint stays.
* **Metrics.** ``metrics.jsonl`` gets one row per evaluation (``step``,
  ``examples``, ``train_time`` (seconds in compiled update steps, summed over
  restarts; compiling and one warm-up call are timed apart:
  :attr:`FitResult.compile_time`), the
  mean loss and gradient norm since the previous row, the learning rate, the
  loss's aux scalars averaged over the last chunk, and the evaluation's
  scalars); progress (steps/s, ETA)
  through absl logging. Only process 0 writes the metrics and config files;
  orbax writes each checkpoint from every process.

Example:
    >>> import jax, jax.numpy as jnp, numpy as np, ml_collections
    >>> x = np.linspace(-1, 1, 64, dtype=np.float32)[:, None]
    >>> task = Task(
    ...     init_params=lambda key: {"w": jnp.zeros(1)},
    ...     loss_fn=lambda p, b, key: (jnp.mean((b["x"] @ p["w"] - 2 * b["x"][:, 0]) ** 2), {}),
    ...     batches=lambda first, n, rows: {"x": np.broadcast_to(x[rows], (n,) + x[rows].shape)},
    ...     batch_size=64, describe={"task": "fit w = 2"})
    >>> config = ml_collections.ConfigDict(dict(
    ...     seed=0, num_steps=100, steps_per_call=50, checkpoint_every=100, eval_every=100,
    ...     optimizer=dict(name="sgd", kwargs={}, clip_norm=None,
    ...                    schedule=dict(kind="constant", peak_value=1.0, warmup_steps=0))))
    >>> result = fit(config, "/tmp/doctest_fit", task)  # doctest: +SKIP
    >>> float(result.state.params["w"][0])  # doctest: +SKIP
    2.0
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxsampling import checkpoint as checkpoint_lib
from jaxsampling import metrics as metrics_lib
from jaxsampling import sharding
from jaxsampling.train import optim, schedules
from jaxsampling.types import ArrayTree, PRNGKey

__all__ = [
    "RUN_CONTROL_KEYS",
    "TIMING_KEYS",
    "FitResult",
    "Task",
    "TrainState",
    "fit",
    "pad_to_devices",
    "process_rows",
]

# Metric keys that depend on the machine, not on the computation.
TIMING_KEYS = ("train_time",)
# Config keys that control the run, not its results (a resumed run may change them).
RUN_CONTROL_KEYS = ("stop_after_steps", "log_every_secs", "keep_checkpoints")


class TrainState(NamedTuple):
    """What a checkpoint holds.

    Attributes:
        step: int32 scalar, the number of updates done.
        params: the model parameters.
        opt_state: the optax state.
        losses: float32[num_steps], the loss of every step done (0 after).
        grad_norms: float32[num_steps], the global gradient norm of every
            step done (what :func:`jaxsampling.train.schedules.refined` reads).
    """

    step: jax.Array
    params: ArrayTree
    opt_state: ArrayTree
    losses: jax.Array
    grad_norms: jax.Array


@dataclasses.dataclass(frozen=True)
class Task:
    """A training problem for :func:`fit`.

    Attributes:
        init_params: ``key -> params``.
        loss_fn: ``(params, batch, key) -> (loss, aux)``: a scalar loss (the
            mean over the rows it is given: one device's share of the global
            batch) and a dict of scalars (averaged over devices).
        batches: ``(first_step, num_steps, rows) -> batch``: the batches of
            steps ``first_step ..`` as numpy leaves ``[num_steps, len(rows), ...]``
            holding rows ``rows`` (a ``slice`` of the global batch) only. It
            must depend on its arguments only (resumption is exact because of it).
        batch_size: rows of one global batch.
        evaluate: ``params -> dict`` of scalars, or None.
        describe: a JSON dict of everything the run depends on besides the
            config (dataset, subset, ...); a checkpoint of another one is refused.
        fixed_batch: every step uses the same batch (full-batch training on a
            coreset, say): ``batches`` is called with ``num_steps = 1`` and
            its one batch is reused by every step of the chunk.
        shard_params: the parameters are independent models stacked along a
            leading axis, of one length for every leaf and divisible by the
            device count: that axis is sharded over the devices (and so are
            the optimiser-state leaves that have it), every device gets the
            whole batch (``rows`` covers it), and ``loss_fn`` sees its device's
            models only and returns the sum of their losses; the reported loss
            sums the devices'. The optimiser must act on each model alone
            (elementwise: sgd, adam, ...; not lamb's or lars' layer norms).
            ``key`` is the device's: a loss that draws per-model randomness
            should fold in each model's global index. ``evaluate`` then gets
            sharded parameters (jit it; under several processes they are not
            all addressable).
    """

    init_params: Callable[[PRNGKey], ArrayTree]
    loss_fn: Callable[[ArrayTree, ArrayTree, PRNGKey], tuple[jax.Array, dict]]
    batches: Callable[[int, int, slice], ArrayTree]
    batch_size: int
    evaluate: Callable[[ArrayTree], dict] | None = None
    describe: dict = dataclasses.field(default_factory=dict)
    fixed_batch: bool = False
    shard_params: bool = False


class FitResult(NamedTuple):
    """What :func:`fit` returns.

    Attributes:
        state: the final :class:`TrainState` (replicated on the mesh; an
            ensemble's parameters and optimiser state sharded along their
            leading axis).
        history: the evaluation rows (as in ``metrics.jsonl``), one per
            evaluation, the same on every process.
        complete: whether every step ran (False after ``stop_after_steps``).
        compile_time: seconds spent compiling the update in this call (0 when
            an earlier call compiled the same program; never part of ``train_time``).
    """

    state: TrainState
    history: list[dict]
    complete: bool
    compile_time: float


def pad_to_devices(count: int) -> int:
    """``count`` rounded up to a multiple of the device count (of every process):
    the rows of a batch, or the models of an ensemble, the loop can split evenly."""
    devices = jax.device_count()
    return -(-int(count) // devices) * devices


def process_rows(batch_size: int, sharding_: NamedSharding | None = None) -> slice:
    """The rows of a global batch that this process feeds.

    Read from the batch sharding (``P(None, batch)`` over ``batch_mesh``), so
    it holds whatever order the mesh puts the processes' devices in; they
    must form one contiguous block per process.

    Raises:
        ValueError: ``batch_size`` not divisible by the number of devices, or
            this process's rows not contiguous.
    """
    if batch_size % jax.device_count():
        raise ValueError(
            f"batch_size {batch_size} must be divisible by the {jax.device_count()} devices"
        )
    if sharding_ is None:
        mesh = sharding.batch_mesh(axis_type=AxisType.Auto)
        sharding_ = NamedSharding(mesh, P(None, sharding.BATCH_AXIS))
    index_map = sharding_.addressable_devices_indices_map((1, batch_size))
    spans = sorted({(i[1].start or 0, i[1].stop or batch_size) for i in index_map.values()})
    for (_, stop), (start, _) in zip(spans, spans[1:]):
        if stop != start:
            raise ValueError(f"this process's batch rows are not contiguous: {spans}")
    return slice(spans[0][0], spans[-1][1])


def _check_schedule(config: Any) -> tuple[int, int, int, int]:
    steps = int(config.num_steps)
    chunk = int(config.steps_per_call)
    ckpt = int(config.checkpoint_every)
    every = int(config.eval_every)
    if steps < 1 or chunk < 1 or steps % chunk:
        raise ValueError(
            f"num_steps ({steps}) must be a positive multiple of steps_per_call ({chunk})"
        )
    for name, value in (("checkpoint_every", ckpt), ("eval_every", every)):
        if value < chunk or value % chunk:
            raise ValueError(
                f"{name} ({value}) must be a positive multiple of steps_per_call ({chunk})"
            )
    return steps, chunk, ckpt, every


# Jitted updates by (loss_fn, optimiser config, mesh), and their compiled
# executables by argument signature: arms of one experiment that share a model
# and array shapes share one compilation, whatever their schedules.
_UPDATES: dict = {}
_COMPILED: dict = {}
_CACHE_SIZE = 32


def _remember(cache: dict, key: Any, value: Any) -> Any:
    if len(cache) >= _CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = value
    return value


def _chunk_update(
    loss_fn: Callable,
    build: Callable[[Any], optax.GradientTransformation],
    optimizer_key: str,
    mesh: jax.sharding.Mesh,
    deterministic: bool = True,
    state_specs: Any = None,
) -> Callable:
    """The jitted update of a chunk of steps, data-parallel over ``mesh``.

    ``update(state, batches, learning_rates, root_key, steps)``: ``batches``
    has a leading step axis as long as ``steps`` (int32[chunk], only its
    length matters), or of length 1 (the same batch every step);
    ``learning_rates[s]`` is step ``s``'s learning rate (the optimiser is
    built inside from this table). Each device computes the loss and gradient
    of its rows (key ``fold_in(fold_in(root_key, s), device)``). With
    ``deterministic``, the per-device results are all-gathered and averaged in
    device order, so the sum is the same whichever process holds which device
    (an all-reduce's order is not), at the cost of D copies of the gradient
    per device; otherwise they are averaged by ``pmean``.

    ``state_specs`` (a :class:`TrainState` of ``PartitionSpec``, or None: all
    replicated) shards an ensemble's parameters: then the batch is
    replicated, each device keeps its own gradients, and the loss and the
    squared gradient norm are summed over devices (in device order).
    """
    ensemble = state_specs is not None
    flat_specs = None if not ensemble else jax.tree.flatten(state_specs)
    cache_key = (loss_fn, optimizer_key, mesh, deterministic,
                 None if not ensemble else (tuple(flat_specs[0]), flat_specs[1]))
    if cache_key in _UPDATES:
        return _UPDATES[cache_key]
    axis = sharding.BATCH_AXIS

    def chunk(state: TrainState, batches: ArrayTree, learning_rates, root_key, steps):
        last = learning_rates.shape[0] - 1
        optimizer = build(lambda count: learning_rates[jnp.minimum(count, last)])

        def one_step(state: TrainState, batch: ArrayTree):
            key = jax.random.fold_in(
                jax.random.fold_in(root_key, state.step), jax.lax.axis_index(axis)
            )
            (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                state.params, batch, key
            )
            if ensemble:
                gathered = jax.lax.all_gather(
                    (loss, aux, optax.tree.norm(grads, squared=True)), axis
                )
                loss, norm_sq = jnp.sum(gathered[0]), jnp.sum(gathered[2])
                aux = jax.tree.map(lambda v: jnp.mean(v, axis=0), gathered[1])
            elif deterministic:
                loss, aux, grads = jax.tree.map(
                    lambda v: jnp.mean(jax.lax.all_gather(v, axis), axis=0), (loss, aux, grads)
                )
            else:
                loss, aux, grads = jax.lax.pmean((loss, aux, grads), axis)
            if not ensemble:
                norm_sq = optax.tree.norm(grads, squared=True)
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
            state = TrainState(
                step=state.step + 1,
                params=optax.apply_updates(state.params, updates),
                opt_state=opt_state,
                losses=state.losses.at[state.step].set(loss),
                grad_norms=state.grad_norms.at[state.step].set(jnp.sqrt(norm_sq)),
            )
            return state, {"loss": loss, "grad_norm": state.grad_norms[state.step - 1], **aux}

        length = steps.shape[0]
        if jax.tree.leaves(batches)[0].shape[0] == length:
            return jax.lax.scan(one_step, state, batches)
        fixed = jax.tree.map(lambda x: x[0], batches)
        return jax.lax.scan(lambda c, _: one_step(c, fixed), state, steps)

    sharded = jax.shard_map(
        chunk,
        mesh=mesh,
        in_specs=(state_specs if ensemble else P(), P() if ensemble else P(None, axis),
                  P(), P(), P()),
        out_specs=(state_specs if ensemble else P(), P()),
        check_vma=False,
    )
    return _remember(_UPDATES, cache_key, jax.jit(sharded, donate_argnums=0))


_INITIALIZERS: dict = {}


def _keys(seed: jax.Array) -> tuple[PRNGKey, PRNGKey]:
    """``(init_key, root_key)`` of a run: ``split(key(seed))``."""
    init_key, root_key = jax.random.split(jax.random.key(seed))
    return init_key, root_key


def _initializer(
    init_params: Callable,
    build: Callable,
    optimizer_key: str,
    num_steps: int,
    mesh,
    shard_params: bool = False,
) -> tuple[Callable, Any]:
    """``(seed -> TrainState, state_specs)``, jitted with replicated outputs, or with
    the ensemble axis sharded (``shard_params``; specs None otherwise); cached per model."""
    cache_key = (init_params, optimizer_key, num_steps, mesh, shard_params)
    if cache_key in _INITIALIZERS:
        return _INITIALIZERS[cache_key]

    def fresh_state(seed) -> TrainState:
        params = init_params(_keys(seed)[0])
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=build(lambda count: 0.0).init(params),
            losses=jnp.zeros(num_steps, jnp.float32),
            grad_norms=jnp.zeros(num_steps, jnp.float32),
        )

    specs = None
    if shard_params:
        specs = _ensemble_specs(jax.eval_shape(fresh_state, np.uint32(0)), mesh.size)
        shardings = jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs)
    else:
        shardings = NamedSharding(mesh, P())
    init = jax.jit(fresh_state, out_shardings=shardings)
    return _remember(_INITIALIZERS, cache_key, (init, specs))


def _ensemble_specs(shapes: TrainState, num_devices: int) -> TrainState:
    """Specs of an ensemble's state: leaves of ``params`` / ``opt_state`` with a
    leading axis are split over the batch axis, everything else replicated.

    Raises:
        ValueError: parameters without a common leading axis divisible by
            ``num_devices``.
    """
    axis = sharding.BATCH_AXIS
    for path, leaf in jax.tree_util.tree_leaves_with_path(shapes.params):
        if not leaf.shape or leaf.shape[0] % num_devices:
            raise ValueError(
                f"shard_params: parameter {jax.tree_util.keystr(path)} of shape "
                f"{leaf.shape} needs a leading (ensemble) axis divisible by the "
                f"{num_devices} devices"
            )
    lead = {leaf.shape[0] for leaf in jax.tree.leaves(shapes.params)}
    if len(lead) != 1:
        raise ValueError(
            f"shard_params: every parameter needs the same leading (ensemble) axis, got {sorted(lead)}"
        )
    (members,) = lead

    def spec(leaf):
        return P(axis) if leaf.shape and leaf.shape[0] == members else P()

    return TrainState(
        step=P(),
        params=jax.tree.map(lambda _: P(axis), shapes.params),
        opt_state=jax.tree.map(spec, shapes.opt_state),
        losses=P(),
        grad_norms=P(),
    )


@functools.lru_cache(maxsize=8)
def _replicate_inputs(mesh) -> Callable:
    """``(learning_rates, seed, step_ids) -> (table, root_key, step_ids)``, replicated
    over every process's devices (``device_put`` cannot reach other processes')."""

    def place(learning_rates, seed, step_ids):
        return learning_rates, _keys(seed)[1], step_ids

    return jax.jit(place, out_shardings=NamedSharding(mesh, P()))


def _compiled(update: Callable, *args: Any) -> tuple[Callable, float]:
    """``update`` compiled for ``args`` (cached), and the seconds it took now.

    A fresh compilation is followed by one discarded call on a copy of the
    state, so first-call costs are not counted as training time.
    """
    signature = tuple(
        (x.shape, x.dtype, getattr(x, "sharding", None)) for x in jax.tree.leaves(args)
    )
    key = (update, jax.tree.structure(args), signature)
    if key in _COMPILED:
        return _COMPILED[key], 0.0
    tick = time.perf_counter()
    compiled = update.lower(*args).compile()
    state, *rest = args
    jax.block_until_ready(compiled(jax.tree.map(jnp.copy, state), *rest))
    _remember(_COMPILED, key, compiled)
    return compiled, time.perf_counter() - tick


def fit(
    config: Any,
    workdir: str,
    task: Task,
    *,
    grad_norms: Any | None = None,
) -> FitResult:
    """Trains ``task`` into ``workdir``, resuming from its checkpoints.

    Args:
        config: a ConfigDict with ``seed``, ``num_steps``, ``steps_per_call``,
            ``checkpoint_every``, ``eval_every`` (multiples of
            ``steps_per_call``), ``optimizer`` (see :mod:`jaxsampling.train.optim`),
            and optionally ``stop_after_steps`` (stop there as if killed: tests),
            ``log_every_secs``, ``keep_checkpoints``, ``deterministic_reduce``
            (default True).
        workdir: the run directory (``metrics.jsonl``, ``checkpoints/``,
            ``config.json``, ``summary.json`` once complete).
        task: the problem.
        grad_norms: a previous run's per-step gradient norms, for a
            ``refined`` schedule.

    Returns:
        A :class:`FitResult`.

    Raises:
        ValueError: a bad schedule, or ``workdir`` holds a checkpoint of
            another configuration.
        FloatingPointError: a non-finite loss or gradient (the last good
            checkpoint stays).
        RuntimeError: ``workdir`` holds checkpoints and none of them loads.
    """
    num_steps, chunk, ckpt_every, eval_every = _check_schedule(config)
    build = optim.factory(config.optimizer)
    schedule = schedules.from_config(config.optimizer.schedule, num_steps, grad_norms)
    learning_rates = np.asarray(jax.jit(jax.vmap(schedule))(np.arange(num_steps)), np.float32)
    optimizer_key = json.dumps(
        {
            k: v
            for k, v in metrics_lib.to_jsonable(config.optimizer).items()
            if k != "schedule"
        },
        sort_keys=True,
    )
    mesh = sharding.batch_mesh(axis_type=AxisType.Auto)
    if task.shard_params:
        if config.optimizer.get("clip_norm", None) is not None:
            raise ValueError(
                "optimizer.clip_norm would clip each device's share of an ensemble by "
                "its own norm; with shard_params clip inside the loss or not at all"
            )
        batch_sharding = NamedSharding(mesh, P())
        rows = slice(0, task.batch_size)
    else:
        batch_sharding = NamedSharding(mesh, P(None, sharding.BATCH_AXIS))
        rows = process_rows(task.batch_size, batch_sharding)
    identity = {
        "config": {
            k: v
            for k, v in metrics_lib.to_jsonable(config).items()
            if k not in RUN_CONTROL_KEYS
        },
        "task": metrics_lib.to_jsonable(task.describe),
        "grad_norms": None if grad_norms is None else np.asarray(grad_norms).tolist(),
    }
    init, state_specs = _initializer(
        task.init_params, build, optimizer_key, num_steps, mesh, task.shard_params
    )
    seed = np.uint32(int(config.seed))
    abstract = jax.eval_shape(init, seed)
    update = _chunk_update(
        task.loss_fn, build, optimizer_key, mesh,
        bool(config.get("deterministic_reduce", True)), state_specs,
    )
    table, root, step_ids = _replicate_inputs(mesh)(
        learning_rates, seed, np.arange(chunk, dtype=np.int32)
    )

    def check_meta(meta: dict) -> None:
        if meta.get("identity") != identity:
            raise ValueError(
                f"{workdir} holds a checkpoint of a different configuration; "
                "use a fresh workdir"
            )

    writer = metrics_lib.MetricWriter(workdir)
    keep = config.get("keep_checkpoints", 2)
    stop_after = config.get("stop_after_steps", None)
    with writer, checkpoint_lib.Checkpointer(
        os.path.join(workdir, "checkpoints"), max_to_keep=keep
    ) as ckpt:
        restored = ckpt.restore_latest_valid(abstract, check_meta)
        if restored is None:
            state, history, train_time = init(seed), [], 0.0
        else:
            step, state, meta = restored
            history, train_time = list(meta["history"]), float(meta["train_time"])
            logging.info("resuming from checkpoint step %d", step)
        writer.write_config(config)
        start = int(state.step)
        writer.discard_from(start + 1)
        report = metrics_lib.ProgressReporter(
            num_steps,
            every_steps=None,
            every_secs=float(config.get("log_every_secs", 10.0)),
            initial_step=start,
        )
        last_row_step = history[-1]["step"] if history else 0
        compiled, compile_time = None, 0.0
        for first in range(start, num_steps, chunk):
            if stop_after is not None and first >= int(stop_after):
                logging.info("stop_after_steps=%d reached; stopping", first)
                break
            local = task.batches(first, 1 if task.fixed_batch else chunk, rows)
            batches = jax.tree.map(
                lambda x: jax.make_array_from_process_local_data(
                    batch_sharding, np.asarray(x)
                ),
                local,
            )
            if compiled is None:
                compiled, compile_time = _compiled(
                    update, state, batches, table, root, step_ids
                )
            tick = time.perf_counter()
            state, outputs = compiled(state, batches, table, root, step_ids)
            outputs = jax.tree.map(np.asarray, outputs)
            train_time += time.perf_counter() - tick
            finite = np.isfinite(outputs.pop("loss")) & np.isfinite(outputs.pop("grad_norm"))
            if not np.all(finite):
                bad = first + int(np.argmin(finite))
                raise FloatingPointError(
                    f"non-finite loss or gradient at step {bad} in {workdir}; the last "
                    "good checkpoint is kept"
                )
            done = first + chunk
            report(done)
            if done % eval_every == 0 or done == num_steps:
                since = slice(last_row_step, done)
                row = {
                    "step": done,
                    "examples": done * task.batch_size,
                    "train_time": train_time,
                    "loss": float(np.mean(np.asarray(state.losses)[since])),
                    "grad_norm": float(np.mean(np.asarray(state.grad_norms)[since])),
                    "learning_rate": float(learning_rates[done - 1]),
                    **{k: float(np.mean(v)) for k, v in outputs.items()},
                }
                if task.evaluate is not None:
                    row.update(metrics_lib.to_jsonable(task.evaluate(state.params)))
                history.append(row)
                writer.write_scalars(done, {k: v for k, v in row.items() if k != "step"})
                last_row_step = done
            if done % ckpt_every == 0 or done == num_steps:
                meta = {"identity": identity, "history": history, "train_time": train_time}
                ckpt.save(done, state, meta=meta)
        complete = int(state.step) == num_steps
        if complete:
            writer.write_summary({"history": history, "num_steps": num_steps})
    return FitResult(state, history, complete, compile_time)
