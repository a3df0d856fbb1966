"""The block loop shared by the SMC experiments: checkpoint, resume, log, summarise.

An experiment is a list of blocks (one cell of its grid each: a filter and a
number of particles, a sampler variant, ...). Block ``b`` draws its
randomness from ``fold_in(root_key, b)`` and stores its results in slot
``b`` of a state NamedTuple whose field ``next_block`` counts the finished
blocks. :func:`run_blocks` then honours the workdir contract of
``WORKSPACE.md`` exactly as :mod:`jaxsampling.train.resampling` does:

* ``config.json`` at start, after the resume check;
* one ``metrics.jsonl`` line per finished block (``step`` = blocks done);
* an orbax checkpoint (items ``state`` and ``meta``) after every block;
* on restart, ``meta`` must equal the current one (else ``ValueError``), the
  latest state is restored against ``jax.eval_shape`` of a fresh one,
  ``metrics.jsonl`` lines newer than it are dropped, and the run continues
  with the next block, bit-identical to a straight run;
* ``config.stop_after_blocks`` (tests) stops early, as if killed;
* ``summary.json`` at the end, only if every block is done.

An optional ``write_artifacts(state)`` runs after every checkpoint and once
after a restore (so a kill between the two leaves no stale file); the
experiments use it to write ``particles.npz`` (:func:`atomic_savez`).
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from absl import logging

from jaxsampling import checkpoint as checkpoint_lib
from jaxsampling import metrics as metrics_lib

PARTICLES_FILE = "particles.npz"


def atomic_savez(path: str, **arrays: Any) -> None:
    """Writes ``arrays`` to ``path`` with ``np.savez`` atomically (temp + rename).

    Only process 0 writes. A reader sees either the old file or the complete
    new one.
    """
    if jax.process_index() != 0:
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def map_seeds(fn: Callable[[Any], Any], keys: Any, batch_size: int | None) -> Any:
    """``fn`` over the leading axis of ``keys``: one ``vmap`` (``batch_size`` None or
    >= the number of keys), a sequential ``lax.map`` (``batch_size == 1``), or
    ``lax.map`` over vmapped batches of ``batch_size``."""
    if batch_size is None or batch_size >= keys.shape[0]:
        return jax.vmap(fn)(keys)
    if batch_size == 1:
        return jax.lax.map(fn, keys)
    return jax.lax.map(fn, keys, batch_size=batch_size)


def write_particles(
    path: str,
    *,
    labels: list[str],
    done: Any,
    positions: Any,
    log_weights: Any,
    grid: tuple[Any, Any],
    density: Any,
) -> None:
    """Writes the particle snapshot file (``particles.npz``) atomically.

    The layout (read by :mod:`jaxsampling.plot`), with ``P`` panels (blocks),
    ``N`` particles and a ``G x G`` grid:

    * ``labels``: str[P], the panel titles;
    * ``done``: bool[P], whether the panel's block has run;
    * ``positions``: float32[P, N, 2], one run's final particles (NaN if not done);
    * ``weights``: float32[P, N], their normalised weights (0 if not done);
    * ``grid_x``, ``grid_y``: float32[G], the density grid's axes;
    * ``density``: float32[P, G, G], the target density of each panel at
      ``(grid_x[i], grid_y[j])``.
    """
    done = np.asarray(done, bool)
    log_weights = np.asarray(log_weights, np.float64)
    weights = np.where(done[:, None], np.exp(log_weights), 0.0)
    atomic_savez(
        path,
        labels=np.asarray(labels, dtype=str),
        done=done,
        positions=np.asarray(positions, np.float32),
        weights=weights.astype(np.float32),
        grid_x=np.asarray(grid[0], np.float32),
        grid_y=np.asarray(grid[1], np.float32),
        density=np.asarray(density, np.float32),
    )


def set_block(state: Any, b: int, **results: Any) -> Any:
    """``state`` with slot ``b`` of each named field set and ``next_block = b + 1``.

    Works on host (numpy) copies, so no small XLA programs get compiled.
    """
    updates = {}
    for name, value in results.items():
        array = np.array(getattr(state, name))
        array[b] = np.asarray(value, array.dtype)
        updates[name] = array
    return state._replace(next_block=np.asarray(b + 1, np.int32), **updates)


@functools.partial(jax.jit, static_argnums=2)
def block_keys(root_key: Any, block: Any, num_seeds: int) -> Any:
    """``split(fold_in(root_key, block), num_seeds)``: the keys of one block's runs."""
    return jax.random.split(jax.random.fold_in(root_key, block), num_seeds)


def mixture_log_density(mixture: Any, points: np.ndarray) -> np.ndarray:
    """``log p(x)`` of a :class:`~jaxsampling.kernels.smc.mixtures.GaussianMixture`
    at ``points[M, d]``, in float64 numpy (exact references on large grids)."""
    weights = np.asarray(mixture.weights, np.float64)
    means = np.asarray(mixture.means, np.float64)
    var = np.asarray(mixture.sds, np.float64) ** 2
    x = np.asarray(points, np.float64)
    d = means.shape[-1]
    sq = np.sum((x[:, None, :] - means[None]) ** 2, axis=-1)
    comp = np.log(weights) - 0.5 * sq / var - 0.5 * d * np.log(2 * np.pi * var)
    top = np.max(comp, axis=-1, keepdims=True)
    return (top + np.log(np.sum(np.exp(comp - top), axis=-1, keepdims=True)))[:, 0]


def run_blocks(
    config: Any,
    workdir: str,
    *,
    num_blocks: int,
    meta: dict,
    state: Any,
    run_block: Callable[[int, Any], tuple[Any, dict]],
    summarize: Callable[[Any], dict],
    write_artifacts: Callable[[Any], None] | None = None,
) -> dict:
    """Runs the blocks not yet done into ``workdir`` and returns the summary.

    Args:
        config: the experiment's ConfigDict (written to ``config.json``; reads
            ``stop_after_blocks``, ``log_every_blocks``, ``log_every_secs``).
        workdir: the run directory.
        num_blocks: the number of blocks.
        meta: JSON dict describing everything the results depend on; a
            checkpoint with another ``meta`` is rejected.
        state: a fresh state NamedTuple of numpy arrays with an int32
            ``next_block`` field (restored states come back as numpy too).
        run_block: ``(b, state) -> (state, row)``: runs block ``b``, returns
            the state with slot ``b`` filled and ``next_block = b + 1`` and the
            ``metrics.jsonl`` row. It raises ``FloatingPointError`` on
            non-finite results, before anything is logged or saved. A block
            trained by :func:`jaxsampling.train.loop.fit` (which checkpoints
            within the block) returns None when the fit stopped early
            (``stop_after_steps``): the run stops there, as if killed.
        summarize: ``state -> dict``, with a boolean ``complete``.
        write_artifacts: ``state -> None``, called after every checkpoint and
            after a restore.

    Returns:
        ``summarize(state)`` of the final state.

    Raises:
        ValueError: ``workdir`` holds a checkpoint of a different configuration.
    """
    stop_after = config.get("stop_after_blocks", None)
    writer = metrics_lib.MetricWriter(workdir)
    with writer, checkpoint_lib.Checkpointer(
        os.path.join(workdir, "checkpoints")
    ) as ckpt:
        latest = ckpt.latest_step()
        if latest is not None:
            saved_meta = ckpt.restore_meta(latest)
            if saved_meta != meta:
                raise ValueError(
                    f"{workdir} holds a checkpoint of a different configuration "
                    f"(saved {saved_meta}, now {meta}); use a fresh workdir"
                )
            state, _ = ckpt.restore(latest, jax.eval_shape(lambda: state))
            state = jax.tree.map(np.asarray, state)
            logging.info("resuming from checkpoint step %d", latest)
            if write_artifacts is not None:
                write_artifacts(state)
        # Only after the check: a mismatched rerun must not overwrite it.
        writer.write_config(config)
        start = int(state.next_block)
        writer.discard_from(start + 1)
        report = metrics_lib.ProgressReporter(
            num_blocks,
            every_steps=int(config.get("log_every_blocks", 1)),
            every_secs=float(config.get("log_every_secs", 10.0)),
            initial_step=start,
        )
        for b in range(start, num_blocks):
            if stop_after is not None and b >= int(stop_after):
                logging.info("stop_after_blocks=%d reached; stopping", b)
                break
            result = run_block(b, state)
            if result is None:
                logging.info("block %d stopped before its end; stopping", b)
                break
            state, row = result
            writer.write_scalars(b + 1, row)
            ckpt.save(b + 1, state, meta=meta)
            if write_artifacts is not None:
                write_artifacts(state)
            report(b + 1)
        summary = summarize(state)
        if summary["complete"]:
            writer.write_summary(summary)
    return summary


def check_finite(name: str, values: Any, b: int, block: Any) -> None:
    """Raises ``FloatingPointError`` if ``values`` (leading axis: runs) is not finite.

    Called before block ``b`` is logged or checkpointed, so the last good
    checkpoint stays and a rerun resumes from it.
    """
    values = np.asarray(values)
    bad = ~np.isfinite(values).reshape(values.shape[0], -1).all(axis=1)
    if bad.any():
        raise FloatingPointError(
            f"non-finite {name} in block {b} {block}: {int(bad.sum())} of "
            f"{values.shape[0]} runs; the last good checkpoint is kept"
        )


def check_choices(name: str, values: Any, known: Any) -> tuple:
    """``values`` as a tuple; ``ValueError`` unless distinct, non-empty and all in ``known``."""
    values = tuple(values)
    if not values or len(set(values)) != len(values):
        raise ValueError(f"{name}s must be distinct and non-empty, got {values}")
    for v in values:
        if v not in known:
            raise ValueError(f"unknown {name} {v!r}; known: {sorted(known)}")
    return values


def check_alphas(alphas: Any) -> list[float]:
    """Repulsion strengths as floats; ``ValueError`` unless distinct, non-empty and >= 0."""
    values = [float(a) for a in alphas]
    if not values or len(set(values)) != len(values) or min(values) < 0:
        raise ValueError(f"alphas must be distinct and >= 0, got {tuple(alphas)}")
    return values


def check_record_schedule(num_steps: Any, record_every: Any) -> int:
    """The number of records; ``ValueError`` unless ``num_steps`` is a positive multiple
    of ``record_every``."""
    steps, every = int(num_steps), int(record_every)
    if every < 1 or steps < every or steps % every:
        raise ValueError(
            f"num_steps = {num_steps} must be a positive multiple of record_every = "
            f"{record_every}"
        )
    return steps // every
