"""Metric writing and progress reporting for trainers.

A small stand-in for clu's ``metric_writers`` and ``periodic_actions`` (clu
imports TensorFlow; see STYLE.md section 4). The method names follow clu
(``write_scalars``, ``write_hparams``, ``flush``, ``close``); the on-disk
layout follows big_vision:

* ``workdir/config.json``: the run configuration, written once.
* ``workdir/metrics.jsonl``: one JSON object ``{"step": step, **scalars}``
  per logged step, flushed line by line so a killed run loses nothing.
* ``workdir/summary.json``: the final results, replaced atomically.

Only process 0 writes (``jax.process_index() == 0``); every process logs
through absl.

Example:
    >>> with MetricWriter("/tmp/run") as writer:  # doctest: +SKIP
    ...     writer.write_config({"lr": 1e-3})
    ...     writer.write_scalars(1, {"loss": 0.5})
    ...     writer.write_summary({"final_loss": 0.5})
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from absl import logging

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"


def to_jsonable(value: Any) -> Any:
    """Converts JAX/numpy scalars and arrays (and containers of them) to JSON types.

    Scalars become Python ``int``/``float``/``bool``; arrays become nested
    lists; mappings and sequences are converted element-wise; objects with a
    ``to_dict`` method (``ml_collections.ConfigDict``) go through it. Anything
    else is returned unchanged (``json`` decides whether it can be written).

    Args:
        value: the value to convert.

    Returns:
        A value built from ``dict``, ``list``, ``str``, ``int``, ``float``,
        ``bool`` and ``None``.

    Example:
        >>> to_jsonable({"x": np.float32(0.5), "y": (1, 2)})
        {'x': 0.5, 'y': [1, 2]}
    """
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return to_jsonable(value.to_dict())
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (jax.Array, np.ndarray, np.generic)):
        return np.asarray(value).tolist()
    if isinstance(value, Sequence):
        return [to_jsonable(v) for v in value]
    return value


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Writes ``obj`` as JSON to ``path`` atomically (temporary file + ``os.replace``).

    A reader sees either the old file or the complete new one, never a
    partial write.

    Args:
        path: destination file; its directory must exist.
        obj: a JSON-serialisable object (after :func:`to_jsonable`).

    Example:
        >>> atomic_write_json("/tmp/summary.json", {"a": 1})  # doctest: +SKIP
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(to_jsonable(obj), f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Reads a ``metrics.jsonl`` file into a list of dicts (skips a torn last line).

    Args:
        path: the JSONL file.

    Returns:
        One dict per complete line, in file order.

    Example:
        >>> rows = read_jsonl("/tmp/run/metrics.jsonl")  # doctest: +SKIP
    """
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                logging.warning("skipping malformed line in %s: %r", path, line[:80])
    return rows


class MetricWriter:
    """Writes ``config.json``, ``metrics.jsonl`` and ``summary.json`` into a workdir.

    Uses clu's method names so that a later move to clu is a rename. Only
    process 0 writes to disk; every process logs scalars through absl.

    Args:
        workdir: the run directory (created if missing, on process 0).
        write_to_disk: if False, only log (nothing is written).

    Example:
        >>> with MetricWriter("/tmp/run") as w:  # doctest: +SKIP
        ...     w.write_scalars(0, {"loss": jnp.float32(1.0)})
    """

    def __init__(self, workdir: str | os.PathLike, *, write_to_disk: bool = True):
        self.workdir = os.fspath(workdir)
        self._enabled = write_to_disk and jax.process_index() == 0
        self._metrics_file = None
        if self._enabled:
            os.makedirs(self.workdir, exist_ok=True)

    @property
    def metrics_path(self) -> str:
        """Path of ``metrics.jsonl``."""
        return os.path.join(self.workdir, METRICS_FILE)

    def _open_metrics(self):
        if self._metrics_file is None:
            self._metrics_file = open(self.metrics_path, "a")
        return self._metrics_file

    def write_config(self, config: Any) -> None:
        """Writes the run configuration to ``workdir/config.json`` (atomically).

        Args:
            config: a mapping or ``ml_collections.ConfigDict``.
        """
        logging.info("config: %s", json.dumps(to_jsonable(config), sort_keys=True))
        if self._enabled:
            atomic_write_json(os.path.join(self.workdir, CONFIG_FILE), config)

    def write_hparams(self, hparams: Mapping[str, Any]) -> None:
        """clu's name for :meth:`write_config`."""
        self.write_config(hparams)

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        """Appends ``{"step": step, **scalars}`` as one line of ``metrics.jsonl``.

        JAX/numpy scalars are converted to Python numbers; the line is
        flushed immediately.

        Args:
            step: the step number (an int).
            scalars: metric name -> scalar (numbers, or strings as labels).
        """
        row = {"step": int(step), **to_jsonable(dict(scalars))}
        logging.info(
            "[%d] %s",
            row["step"],
            ", ".join(f"{k}={_fmt(v)}" for k, v in row.items() if k != "step"),
        )
        if self._enabled:
            f = self._open_metrics()
            f.write(json.dumps(row) + "\n")
            f.flush()

    def discard_from(self, step: int) -> None:
        """Drops the lines of ``metrics.jsonl`` whose step is ``>= step`` (atomically).

        Used on resume: lines logged after the checkpoint being restored are
        rewritten by the resumed run, so they must not appear twice.

        Args:
            step: the first step to drop.
        """
        if not self._enabled or not os.path.exists(self.metrics_path):
            return
        self.flush()
        self.replace_metrics(
            [r for r in read_jsonl(self.metrics_path) if r.get("step", -1) < step]
        )

    def replace_metrics(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Rewrites ``metrics.jsonl`` as ``rows`` (each with a ``step``), atomically.

        For experiments that gather the rows of several sub-runs (each in its
        own workdir) into one file for plotting.
        """
        if not self._enabled:
            return
        if self._metrics_file is not None:
            self._metrics_file.close()
            self._metrics_file = None
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".jsonl", dir=self.workdir)
        with os.fdopen(fd, "w") as f:
            for r in rows:
                f.write(json.dumps(to_jsonable(dict(r))) + "\n")
        os.replace(tmp, self.metrics_path)

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        """Writes ``workdir/summary.json`` atomically (temporary file + ``os.replace``).

        Args:
            summary: the final results (JSON-serialisable after conversion).
        """
        if self._enabled:
            atomic_write_json(os.path.join(self.workdir, SUMMARY_FILE), summary)

    def flush(self) -> None:
        """Flushes the metrics file to disk."""
        if self._metrics_file is not None:
            self._metrics_file.flush()
            os.fsync(self._metrics_file.fileno())

    def close(self) -> None:
        """Flushes and closes the metrics file."""
        if self._metrics_file is not None:
            self.flush()
            self._metrics_file.close()
            self._metrics_file = None

    def __enter__(self) -> MetricWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _format_hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--:--"
    seconds = int(round(max(seconds, 0.0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


class ProgressReporter:
    """Logs "step i/total, x steps/s, ETA hh:mm:ss" at a fixed cadence.

    A report is due when ``step`` is a multiple of ``every_steps``, when
    ``every_secs`` seconds have passed since the last report, or at the last
    step. The rate is measured since the previous report (or since
    construction), so compilation time only slows the first report.

    Args:
        total_steps: the number of steps of the run.
        every_steps: report every this many steps (None: no step cadence).
        every_secs: report when this many seconds have passed (None: no time
            cadence).
        initial_step: the step the run starts from (nonzero on resume).
        clock: returns seconds; injectable for tests.

    Example:
        >>> report = ProgressReporter(100, every_steps=10)
        >>> for step in range(1, 101):
        ...     _ = report(step)  # logs at 10, 20, ..., 100
    """

    def __init__(
        self,
        total_steps: int,
        every_steps: int | None = None,
        every_secs: float | None = 10.0,
        *,
        initial_step: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if every_steps is not None and every_steps <= 0:
            raise ValueError(f"every_steps must be positive or None, got {every_steps}")
        self.total_steps = int(total_steps)
        self.every_steps = every_steps
        self.every_secs = every_secs
        self._clock = clock
        self._last_step = int(initial_step)
        self._last_time = clock()

    def __call__(self, step: int) -> str | None:
        """Records that ``step`` finished; logs and returns the message when due."""
        now = self._clock()
        due = (
            step >= self.total_steps
            or (self.every_steps is not None and step % self.every_steps == 0)
            or (
                self.every_secs is not None and now - self._last_time >= self.every_secs
            )
        )
        if not due:
            return None
        elapsed = now - self._last_time
        done = step - self._last_step
        rate = done / elapsed if elapsed > 0 else math.inf
        remaining = max(self.total_steps - step, 0)
        eta = remaining / rate if rate > 0 else math.inf
        if remaining == 0:
            eta = 0.0
        message = (
            f"step {step}/{self.total_steps}, {rate:.3g} steps/s, "
            f"ETA {_format_hms(eta)}"
        )
        logging.info("%s", message)
        self._last_step = step
        self._last_time = now
        return message


def format_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> str:
    """Formats rows of dicts as a plain-text table with aligned columns.

    Floats are printed with 4 significant digits; numbers are right-aligned,
    text left-aligned.

    Args:
        rows: the table rows.
        columns: the column order (default: keys of the first row).

    Returns:
        The table as a string (header, rule, one line per row).

    Example:
        >>> print(format_table([{"scheme": "ssp", "rmse": 0.123456}]))
        scheme    rmse
        ------  ------
        ssp     0.1235
    """
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())

    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    cells = [[cell(r.get(c, "")) for c in columns] for r in rows]
    numeric = [
        all(
            isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)
            for r in rows
        )
        for c in columns
    ]
    widths = [
        max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)
    ]

    def line(values):
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric)
        ]
        return "  ".join(parts).rstrip()

    out = [line(columns), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)
