"""Checkpointing: the one module that talks to orbax.

A thin wrapper over orbax-checkpoint's stable ``CheckpointManager`` (the "v0"
API; v1 is still experimental in 0.12.8, see STYLE.md F10), so that moving to
another orbax API is a one-file change. Each checkpoint step holds two items:

* ``state``: a pytree of arrays (NamedTuples, optax states and typed PRNG keys
  included), saved with ``StandardSave``;
* ``meta``: a small JSON dict (configuration, bookkeeping).

Restoring always goes against an abstract target (``jax.eval_shape`` of a
fresh state), which is what brings NamedTuples back as NamedTuples and typed
keys back as typed keys; without a target orbax returns lists.

Orbax writes a step into a temporary directory and renames it when complete,
so an interrupted save is never listed as a step. Saves are synchronous by
default, which keeps "resume from the latest checkpoint" exact and simple.

Orbax logs about twenty INFO lines per save; importing this module installs a
filter on the absl handler that drops orbax records below WARNING (call
``set_orbax_info_logs(True)`` to see them again).

Example:
    >>> state = {"w": jnp.zeros(3), "key": jax.random.key(0)}
    >>> with Checkpointer("/tmp/ckpt") as ckpt:  # doctest: +SKIP
    ...     ckpt.save(1, state, meta={"note": "first"})
    ...     target = jax.eval_shape(lambda: state)
    ...     restored, meta = ckpt.restore(ckpt.latest_step(), target)
"""

from __future__ import annotations

import logging as py_logging
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

import orbax.checkpoint as ocp
from absl import logging

from jaxsampling.types import ArrayTree

_STATE = "state"
_META = "meta"


class _DropOrbaxInfo(py_logging.Filter):
    """Drops log records below WARNING that come from orbax source files."""

    def filter(self, record: py_logging.LogRecord) -> bool:
        return record.levelno >= py_logging.WARNING or "orbax" not in record.pathname


_ORBAX_FILTER = _DropOrbaxInfo()


def set_orbax_info_logs(enabled: bool) -> None:
    """Shows (True) or hides (False, the default) orbax's INFO-level log lines."""
    handler = logging.get_absl_handler()
    if enabled:
        handler.removeFilter(_ORBAX_FILTER)
    elif _ORBAX_FILTER not in handler.filters:
        handler.addFilter(_ORBAX_FILTER)


set_orbax_info_logs(False)


def _everywhere(ok: bool) -> bool:
    """Whether ``ok`` holds on every process (an all-gather when there are several)."""
    if jax.process_count() == 1:
        return ok
    from jax.experimental import multihost_utils

    return bool(np.all(multihost_utils.process_allgather(np.asarray(ok))))


class Checkpointer:
    """Saves and restores ``(state, meta)`` pairs by integer step.

    Args:
        directory: where the step directories live (created if missing).
        max_to_keep: how many of the most recent steps to keep (None: all).
        async_save: save in a background thread (call :meth:`wait` before
            relying on the files). Off by default.

    Example:
        >>> ckpt = Checkpointer("/tmp/ckpt", max_to_keep=2)  # doctest: +SKIP
        >>> ckpt.save(10, {"x": jnp.ones(2)})                # doctest: +SKIP
        >>> ckpt.latest_step()                               # doctest: +SKIP
        10
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        max_to_keep: int | None = 2,
        *,
        async_save: bool = False,
    ):
        self.directory = os.path.abspath(os.fspath(directory))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            enable_async_checkpointing=async_save,
            create=True,
        )
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=(_STATE, _META)
        )

    def save(
        self, step: int, state: ArrayTree, *, meta: dict[str, Any] | None = None
    ) -> None:
        """Saves ``state`` (a pytree of arrays) and ``meta`` (a JSON dict) as ``step``.

        Args:
            step: the step number; must be larger than every saved step.
            state: a pytree of arrays, typed PRNG keys allowed.
            meta: a JSON-serialisable dict stored next to the state.

        Raises:
            ValueError: if ``step`` is not larger than the latest saved step.
        """
        latest = self._manager.latest_step()
        if latest is not None and step <= latest:
            raise ValueError(
                f"checkpoint step {step} must exceed the latest saved step {latest}"
            )
        args = ocp.args.Composite(
            **{
                _STATE: ocp.args.StandardSave(state),
                _META: ocp.args.JsonSave(dict(meta or {})),
            }
        )
        self._manager.save(int(step), args=args, force=True)

    def latest_step(self) -> int | None:
        """Returns the most recent complete step, or None if there is none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """Returns the complete steps on disk, in increasing order."""
        return sorted(self._manager.all_steps())

    def restore(
        self, step: int | None, abstract_state: ArrayTree
    ) -> tuple[ArrayTree, dict[str, Any]]:
        """Restores ``(state, meta)`` saved as ``step``.

        Args:
            step: the step to restore; None means the latest.
            abstract_state: the target structure, typically
                ``jax.eval_shape(init_fn, ...)``; its pytree structure (NamedTuples,
                optax states), shapes, dtypes and shardings are used.

        Returns:
            ``(state, meta)``: the state with the structure of ``abstract_state``
            and the meta dict (empty if none was saved).

        Raises:
            FileNotFoundError: if there is no such step.
        """
        step = self._existing_step(step)
        args = ocp.args.Composite(
            **{
                _STATE: ocp.args.StandardRestore(abstract_state),
                _META: ocp.args.JsonRestore(),
            }
        )
        restored = self._manager.restore(step, args=args)
        meta = restored[_META]
        return restored[_STATE], dict(meta) if meta is not None else {}

    def restore_meta(self, step: int | None) -> dict[str, Any]:
        """Restores only the meta dict of ``step`` (None: the latest).

        Cheap, and independent of the state's shapes: check it before
        :meth:`restore` to reject a checkpoint from a different configuration.

        Raises:
            FileNotFoundError: if there is no such step.
        """
        step = self._existing_step(step)
        restored = self._manager.restore(
            step, args=ocp.args.Composite(**{_META: ocp.args.JsonRestore()})
        )
        meta = restored[_META]
        return dict(meta) if meta is not None else {}

    def restore_latest_valid(
        self,
        abstract_state: ArrayTree,
        check_meta: Callable[[dict[str, Any]], None] | None = None,
    ) -> tuple[int, ArrayTree, dict[str, Any]] | None:
        """Restores the newest step that loads, skipping corrupt ones with a warning.

        Steps are tried from the newest. A step whose ``meta`` or ``state``
        fails to load (truncated or garbled files, a missing item) is never
        used. Once an older step loads, the newer ones that failed are logged
        as warnings and moved into ``<directory>.corrupt/<step>-<time>`` (kept
        for inspection, and so that the resumed run can save those steps
        again). With several processes, a step is used only if it loaded on
        every process (their outcomes are all-gathered), so all resume from
        the same step.

        Args:
            abstract_state: the restore target (see :meth:`restore`).
            check_meta: called with each candidate's meta before its state is
                read; its ``ValueError`` (a checkpoint of another run) is
                raised, not skipped.

        Returns:
            ``(step, state, meta)``, or None if there is no step.

        Raises:
            RuntimeError: steps exist but none loads. Nothing is moved: a state
                whose structure changed with the code fails like a corrupt one,
                and starting over would silently drop the run.
        """
        failed: list[tuple[int, BaseException]] = []
        for step in reversed(self.all_steps()):
            error: BaseException | None = None
            try:
                meta = self.restore_meta(step)
            except Exception as err:  # noqa: BLE001 - any load failure is a bad step
                error = err
            if error is None and check_meta is not None:
                check_meta(meta)
            if error is None:
                try:
                    state, meta = self.restore(step, abstract_state)
                except Exception as err:  # noqa: BLE001
                    error = err
            if _everywhere(error is None):
                for bad_step, bad_error in failed:
                    self._set_aside(bad_step, bad_error)
                return step, state, meta
            failed.append((step, error or RuntimeError("it failed on another process")))
        if failed:
            reasons = "; ".join(f"step {s}: {type(e).__name__}: {str(e)[:120]}" for s, e in failed)
            raise RuntimeError(
                f"no checkpoint in {self.directory} loads ({reasons}); if the state's "
                "structure changed, restore with the old code, or move the steps away "
                "to start over"
            )
        return None

    def _set_aside(self, step: int, error: BaseException) -> None:
        corrupt = f"{self.directory}.corrupt"
        stamp = time.time_ns()
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            stamp = int(multihost_utils.broadcast_one_to_all(np.int64(stamp)))
        target = os.path.join(corrupt, f"{step}-{stamp}")
        logging.warning(
            "skipping corrupt checkpoint step %d in %s (%s: %s); moved to %s",
            step, self.directory, type(error).__name__, str(error)[:200], target,
        )
        if jax.process_index() == 0:
            os.makedirs(corrupt, exist_ok=True)
            os.replace(os.path.join(self.directory, str(step)), target)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"checkpoint_set_aside_{step}")
        self._manager.reload()

    def _existing_step(self, step: int | None) -> int:
        if step is None:
            step = self.latest_step()
        if step is None or step not in self._manager.all_steps():
            raise FileNotFoundError(
                f"no checkpoint step {step} in {self.directory}; "
                f"available: {self.all_steps()}"
            )
        return int(step)

    def wait(self) -> None:
        """Blocks until any asynchronous save has finished."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases the manager."""
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
