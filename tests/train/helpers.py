"""Shared pieces of the experiment tests: configs, workdir files, stop and resume.

The helpers take an experiment module (``jaxsampling.train.<name>``, whose
``train_and_evaluate(config, workdir)`` runs it block by block) and, where the
run is repeated, the test file's ``small_config`` function.
"""

import importlib.util
import json
import logging
import os

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsampling import checkpoint, metrics, train

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


def load_config(name):
    """``configs/<name>.py``'s ``get_config()``, loaded by path."""
    spec = importlib.util.spec_from_file_location(
        f"_test_cfg_{name}", os.path.join(CONFIGS, f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def run_straight(tmp_path_factory, experiment, config):
    """Runs ``config`` without a stop in a fresh workdir.

    Returns:
        ``(workdir, summary)``.
    """
    workdir = str(tmp_path_factory.mktemp("straight"))
    return workdir, experiment.train_and_evaluate(config, workdir)


def read_json(workdir, name):
    """The JSON file ``name`` of ``workdir``, loaded."""
    with open(os.path.join(workdir, name)) as f:
        return json.load(f)


def read_metrics(workdir):
    """The rows of ``workdir/metrics.jsonl``."""
    return metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl"))


def assert_latest_checkpoint(workdir, step):
    """The newest checkpoint of ``workdir`` is at ``step``."""
    with checkpoint.Checkpointer(os.path.join(workdir, "checkpoints")) as ckpt:
        assert ckpt.latest_step() == step


def assert_no_summary(workdir):
    """``workdir`` holds no ``summary.json`` (the run is not finished)."""
    assert not os.path.exists(os.path.join(workdir, "summary.json"))


def append_stale_metrics_line(workdir, step):
    """A line logged after the last checkpoint (killed between the two)."""
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"step": step, "stale": True}) + "\n")


def run_killed_after(experiment, config, workdir, blocks, num_results):
    """Runs ``config`` as if killed after ``blocks`` blocks, before logging more.

    Checks the partial summary (``num_results`` rows, not complete), that no
    ``summary.json`` is written and the checkpoint is at step ``blocks``, then
    appends a stale ``metrics.jsonl`` line for step ``blocks + 1``.

    Returns:
        The partial summary.
    """
    config.stop_after_blocks = blocks
    partial = experiment.train_and_evaluate(config, workdir)
    assert not partial["complete"] and len(partial["results"]) == num_results
    assert_no_summary(workdir)
    assert_latest_checkpoint(workdir, blocks)
    append_stale_metrics_line(workdir, blocks + 1)
    return partial


def assert_resume_matches_straight_run(
    experiment, small_config, workdir, straight_run, npz=False
):
    """Resuming ``workdir`` gives the straight run's summary and metrics.

    With ``npz`` also its ``particles.npz``. A finished workdir then returns the
    same summary again.

    Args:
        experiment: the experiment module.
        small_config: a function returning the test's config.
        workdir: a stopped run's workdir.
        straight_run: ``(workdir, summary)`` of the straight run.
        npz: whether to compare ``particles.npz`` too.
    """
    straight_dir, expected = straight_run
    assert experiment.train_and_evaluate(small_config(), workdir) == expected
    assert read_metrics(workdir) == read_metrics(straight_dir)
    if npz:
        with np.load(os.path.join(workdir, "particles.npz")) as a, np.load(
            os.path.join(straight_dir, "particles.npz")
        ) as b:
            for name in a.files:
                np.testing.assert_array_equal(a[name], b[name])
    assert experiment.train_and_evaluate(small_config(), workdir) == expected


def assert_nan_in_block_1_stops_then_resumes(
    experiment, small_config, workdir, expected, *, patch, output, index, match
):
    """A NaN in block 1 stops the run; resuming then gives the straight run.

    The second call of ``experiment.<patch>`` (block 1) returns a NaN at
    ``out[output][index]``. The run must raise ``FloatingPointError`` matching
    ``match``, keep its checkpoint at step 1 and write no ``summary.json``;
    unpatched, the resumed run returns ``expected``.

    Args:
        experiment: the experiment module.
        small_config: a function returning the test's config.
        workdir: a fresh workdir.
        expected: the straight run's summary.
        patch: the name of the function of ``experiment`` to poison.
        output: which element of its output tuple gets the NaN.
        index: where in that array.
        match: the regex the error must match.
    """
    real = getattr(experiment, patch)
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        out = real(*args, **kwargs)
        if len(calls) == 2:
            out = tuple(out)
            nan = jnp.asarray(out[output]).at[index].set(jnp.nan)
            out = out[:output] + (nan,) + out[output + 1 :]
        return out

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(experiment, patch, flaky)
        with pytest.raises(FloatingPointError, match=match):
            experiment.train_and_evaluate(small_config(), workdir)
    assert_latest_checkpoint(workdir, 1)
    assert_no_summary(workdir)
    assert experiment.train_and_evaluate(small_config(), workdir) == expected


def assert_resume_within_block_matches_straight_run(
    experiment, small_config, workdir, expected, *, step, fit_dir, caplog
):
    """A run stopped inside its first block's fit resumes from the fit's checkpoint.

    ``stop_after_steps = step`` stops the first block's fit there: no result,
    no ``summary.json``, the fit's newest checkpoint (in ``fit_dir(workdir)``)
    at ``step``. The rerun must log resuming from that step and return
    ``expected``.
    """
    config = small_config()
    config.stop_after_steps = step
    partial = experiment.train_and_evaluate(config, workdir)
    assert not partial["complete"] and partial["results"] == []
    assert_no_summary(workdir)
    assert_latest_checkpoint(fit_dir(workdir), step)
    with caplog.at_level(logging.INFO):
        assert experiment.train_and_evaluate(small_config(), workdir) == expected
    assert f"resuming from checkpoint step {step}" in caplog.text


def assert_other_config_refused(experiment, small_config, workdir, **changes):
    """A workdir stopped after block 1 refuses a config with ``changes``.

    Resuming raises ``ValueError`` 'different configuration'.
    """
    config = small_config()
    config.stop_after_blocks = 1
    experiment.train_and_evaluate(config, workdir)
    other = small_config()
    for field, value in changes.items():
        setattr(other, field, value)
    other.stop_after_blocks = 1
    with pytest.raises(ValueError, match="different configuration"):
        experiment.train_and_evaluate(other, workdir)


def assert_config_rejected(check, config, match, **changes):
    """``check(config)``, ``changes`` set, raises ``ValueError`` matching ``match``."""
    for field, value in changes.items():
        setattr(config, field, value)
    with pytest.raises(ValueError, match=match):
        check(config)


def assert_registered(name, experiment):
    """The registry lists ``name`` and maps it to ``experiment``'s run."""
    assert name in train.EXPERIMENTS
    assert train.get(name) is experiment.train_and_evaluate
