"""Shared pieces of the experiment tests: loading configs, checking a resume."""

import importlib.util
import json
import os

import numpy as np

from jaxsampling import metrics

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


def load_config(name):
    """``configs/<name>.py``'s ``get_config()``, loaded by path."""
    spec = importlib.util.spec_from_file_location(
        f"_test_cfg_{name}", os.path.join(CONFIGS, f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def append_stale_metrics_line(workdir, step):
    """A line logged after the last checkpoint (killed between the two)."""
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"step": step, "stale": True}) + "\n")


def assert_resume_matches_straight_run(run, workdir, straight_dir, expected, npz=False):
    """Resuming ``workdir`` gives the straight run's summary, metrics (and
    ``particles.npz``); a finished workdir then returns the same summary."""
    assert run(workdir) == expected
    read = lambda d: metrics.read_jsonl(os.path.join(d, "metrics.jsonl"))  # noqa: E731
    assert read(workdir) == read(straight_dir)
    if npz:
        with np.load(os.path.join(workdir, "particles.npz")) as a, np.load(
            os.path.join(straight_dir, "particles.npz")
        ) as b:
            for name in a.files:
                np.testing.assert_array_equal(a[name], b[name])
    assert run(workdir) == expected
