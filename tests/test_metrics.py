"""Tests for jaxsampling.metrics: JSONL writer, atomic summary, progress reporter."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsampling import metrics


def _lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_write_config_scalars_summary(tmp_path):
    workdir = tmp_path / "run"
    with metrics.MetricWriter(workdir) as writer:
        writer.write_config({"lr": 1e-3, "sizes": (1, 2), "name": "x"})
        writer.write_scalars(
            1, {"loss": jnp.float32(0.5), "acc": np.float64(0.25), "tag": "a"}
        )
        # Flushed per line: readable before close.
        assert _lines(workdir / "metrics.jsonl") == [
            {"step": 1, "loss": 0.5, "acc": 0.25, "tag": "a"}
        ]
        writer.write_scalars(jnp.int32(2), {"loss": jnp.array(0.25), "n": np.int32(3)})
        writer.write_summary({"best": jnp.float32(0.25), "curve": jnp.arange(3)})
    rows = _lines(workdir / "metrics.jsonl")
    assert rows[1] == {"step": 2, "loss": 0.25, "n": 3}
    assert isinstance(rows[1]["n"], int)
    with open(workdir / "config.json") as f:
        assert json.load(f) == {"lr": 1e-3, "sizes": [1, 2], "name": "x"}
    with open(workdir / "summary.json") as f:
        assert json.load(f) == {"best": 0.25, "curve": [0, 1, 2]}
    # No temporary files left behind by the atomic writes.
    assert sorted(os.listdir(workdir)) == [
        "config.json",
        "metrics.jsonl",
        "summary.json",
    ]


def test_summary_is_replaced_atomically(tmp_path):
    writer = metrics.MetricWriter(tmp_path)
    writer.write_summary({"v": 1})
    writer.write_summary({"v": 2})
    with open(tmp_path / "summary.json") as f:
        assert json.load(f) == {"v": 2}
    with pytest.raises(TypeError):
        writer.write_summary({"v": object()})  # not serialisable: old file survives
    with open(tmp_path / "summary.json") as f:
        assert json.load(f) == {"v": 2}
    assert sorted(os.listdir(tmp_path)) == ["summary.json"]


def test_write_to_disk_false_writes_nothing(tmp_path):
    with metrics.MetricWriter(tmp_path / "off", write_to_disk=False) as writer:
        writer.write_config({"a": 1})
        writer.write_scalars(0, {"x": 1.0})
        writer.write_summary({"a": 1})
    assert not (tmp_path / "off").exists()


def test_appends_and_discard_from(tmp_path):
    with metrics.MetricWriter(tmp_path) as writer:
        for step in range(1, 5):
            writer.write_scalars(step, {"x": float(step)})
    with metrics.MetricWriter(tmp_path) as writer:  # a restarted run appends
        writer.discard_from(3)
        writer.write_scalars(3, {"x": 30.0})
    assert [
        (r["step"], r["x"]) for r in metrics.read_jsonl(tmp_path / "metrics.jsonl")
    ] == [(1, 1.0), (2, 2.0), (3, 30.0)]


def test_read_jsonl_skips_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "x": 1.0}\n{"step": 2, "x"')
    assert metrics.read_jsonl(path) == [{"step": 1, "x": 1.0}]


class _Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_progress_every_steps(monkeypatch):
    logged = []
    monkeypatch.setattr(metrics.logging, "info", lambda fmt, *a: logged.append(fmt % a))
    clock = _Clock()
    report = metrics.ProgressReporter(100, every_steps=10, every_secs=None, clock=clock)
    messages = []
    for step in range(1, 101):
        clock.t += 0.5  # 2 steps/s
        messages.append(report(step))
    due = [i + 1 for i, m in enumerate(messages) if m is not None]
    assert due == list(range(10, 101, 10))
    assert messages[9] == "step 10/100, 2 steps/s, ETA 00:00:45"
    assert messages[99] == "step 100/100, 2 steps/s, ETA 00:00:00"
    assert logged == [m for m in messages if m is not None]


def test_progress_every_secs_and_resume():
    clock = _Clock()
    report = metrics.ProgressReporter(
        10_000, every_steps=None, every_secs=10.0, initial_step=2000, clock=clock
    )
    out = []
    for step in range(2001, 2101):
        clock.t += 0.25  # 4 steps/s: a report every 40 steps
        msg = report(step)
        if msg:
            out.append((step, msg))
    assert [s for s, _ in out] == [2040, 2080]
    # 7920 steps left at 4 steps/s = 1980 s.
    assert out[-1][1] == "step 2080/10000, 4 steps/s, ETA 00:33:00"


def test_progress_rejects_bad_cadence():
    with pytest.raises(ValueError, match="every_steps"):
        metrics.ProgressReporter(10, every_steps=0)


def test_format_table_aligns_columns():
    rows = [
        {"scheme": "ssp", "n": 1000, "rmse": 0.123456},
        {"scheme": "multinomial", "n": 10, "rmse": 1.5},
    ]
    lines = metrics.format_table(rows).splitlines()
    assert lines[0].split() == ["scheme", "n", "rmse"]
    assert len({len(line) for line in lines}) == 1  # all lines the same width
    assert lines[2] == "ssp          1000  0.1235"
    assert lines[3] == "multinomial    10     1.5"
