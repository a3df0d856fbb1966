"""Trainers as real processes: killed and restarted, and run as two localhost processes.

The kill test runs ``python -m jaxsampling.main`` on a tiny RS2 config (every
trainer of the shared loop goes through the same code); the two-process tests
run every trainer's tiny config, and each is compared with a straight
in-process run of the same config on the same 8 devices.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from jaxsampling import metrics
from jaxsampling.train import loop, rs2
from tests.train.helpers import load_config

_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

_ARGS = {
    "arms": "('rs2', 'uniform')",
    "schedules": "()",
    "hidden": "(16,)",
    "subset_size": "64",
    "batch_size": "16",
    "epochs": "12",
    "eval_every_epochs": "1",
    "checkpoint_every_evals": "1",
}


def _config():
    config = load_config("rs2")
    for name, value in _ARGS.items():
        setattr(config, name, eval(value))  # noqa: S307 - our own literals
    return config


def _command(workdir, *extra):
    flags = [f"--config.{name}={value}" for name, value in _ARGS.items()]
    return [
        sys.executable, "-m", "jaxsampling.main", "--config=configs/rs2.py",
        f"--workdir={workdir}", *flags, *extra,
    ]


def _env(devices):
    flags = os.environ.get("XLA_FLAGS", "").replace(
        "--xla_force_host_platform_device_count=8", ""
    )
    return dict(
        os.environ,
        XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count={devices}",
        PYTHONPATH=_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )


def _rows(workdir, arm):
    rows = metrics.read_jsonl(os.path.join(workdir, arm, "metrics.jsonl"))
    return [{k: v for k, v in r.items() if k not in loop.TIMING_KEYS} for r in rows]


def _kill_then_rerun(command, checkpoint, unfinished=None):
    """Runs ``command`` (8 devices), SIGKILLs it once ``checkpoint`` exists, checks it
    died unfinished (no ``summary.json`` in the workdir, nor in ``unfinished``),
    reruns it to the end; returns the rerun's stderr."""
    workdir = next(a.split("=", 1)[1] for a in command if a.startswith("--workdir="))
    proc = subprocess.Popen(command, cwd=_ROOT, env=_env(8), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not os.path.exists(checkpoint) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, stderr[-3000:]
    for directory in (workdir, unfinished or workdir):
        assert not os.path.exists(os.path.join(directory, "summary.json"))
    done = subprocess.run(command, cwd=_ROOT, env=_env(8), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("straight"))
    return workdir, rs2.train_and_evaluate(_config(), workdir)


def test_killed_process_resumes_bit_identically(straight, tmp_path):
    expected_dir, _ = straight
    workdir = str(tmp_path)
    # Killed once the uniform arm has its first checkpoint (mid-run).
    stderr = _kill_then_rerun(_command(workdir), os.path.join(workdir, "uniform", "checkpoints", "4"),
                              unfinished=os.path.join(workdir, "uniform"))
    assert "resuming from checkpoint step" in stderr
    for arm in ("rs2", "uniform"):
        assert _rows(workdir, arm) == _rows(expected_dir, arm)


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _run_two_processes(command):
    """Runs ``command`` (a list) as processes 0 and 1 of a 2-process gloo run."""
    port = _free_port()
    procs = [
        subprocess.Popen(
            command + ["--multihost", f"--coordinator_address=localhost:{port}",
                       "--num_processes=2", f"--process_id={i}"],
            cwd=_ROOT, env=_env(4), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=400) for p in procs]
    for i, (p, (_, err)) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, err[-3000:]
        assert f"JAX process: {i} / 2" in err


def test_two_processes_equal_one(straight, tmp_path):
    expected_dir, expected = straight
    workdir = str(tmp_path)
    _run_two_processes(_command(workdir))
    for arm in ("rs2", "uniform"):
        assert _rows(workdir, arm) == _rows(expected_dir, arm)
    with open(os.path.join(workdir, "summary.json")) as f:
        got = json.load(f)
    assert [r["final_accuracy"] for r in got["results"]] == [
        r["final_accuracy"] for r in expected["results"]
    ]


# The other trainers of the shared loop, tiny: runs split over the devices
# (srrw_token, 12 runs padded to 16 rows), an ensemble sharded over them
# (ntk_permutation, 20 networks padded to 24), stacked coresets (coreset_training).
_OTHER = {
    "srrw_token": {
        "regimes": "('equal',)", "alphas": "(0.0, 5.0)", "num_runs": "12",
        "num_steps": "400", "record_every": "100", "checkpoint_every_records": "2",
    },
    "ntk_permutation": {
        "ks": "(4,)", "pool_size": "20", "ensemble_sizes": "(1, 4)", "width": "16",
        "gp_samples": "64",
    },
    "coreset_training": {
        "num_rows": "800", "num_cols": "3", "sizes": "(64,)", "num_seeds": "2",
        "methods": "('uniform', 'lewis')", "train.num_steps": "100",
        "train.steps_per_call": "50", "train.eval_every": "50", "train.checkpoint_every": "50",
    },
}


@pytest.mark.parametrize("name", sorted(_OTHER))
def test_two_processes_equal_one_for_every_trainer(name, tmp_path):
    import importlib

    config = load_config(name)
    for field, value in _OTHER[name].items():
        *parents, leaf = field.split(".")
        node = config
        for parent in parents:
            node = getattr(node, parent)
        setattr(node, leaf, eval(value))  # noqa: S307 - our own literals
    experiment = importlib.import_module(f"jaxsampling.train.{name}")
    expected = experiment.train_and_evaluate(config, str(tmp_path / "one"))
    assert expected["complete"]
    workdir = str(tmp_path / "two")
    _run_two_processes([
        sys.executable, "-m", "jaxsampling.main", f"--config=configs/{name}.py",
        f"--workdir={workdir}",
        *[f"--config.{field}={value}" for field, value in _OTHER[name].items()],
    ])
    with open(os.path.join(workdir, "summary.json")) as f:
        got = json.load(f)
    assert got == json.loads(json.dumps(metrics.to_jsonable(expected)))


def test_killed_block_trainer_resumes_bit_identically(tmp_path):
    """srrw_token SIGKILLed inside its second block's fit, restarted: the straight run's summary.

    The restart resumes the block loop (first block done) and, inside the second
    block, the loop's checkpoint.
    """
    from jaxsampling.train import srrw_token

    args = {**_OTHER["srrw_token"], "num_steps": "3000"}
    config = load_config("srrw_token")
    for field, value in args.items():
        setattr(config, field, eval(value))  # noqa: S307 - our own literals
    expected = srrw_token.train_and_evaluate(config, str(tmp_path / "straight"))
    workdir = str(tmp_path / "killed")
    command = [
        sys.executable, "-m", "jaxsampling.main", "--config=configs/srrw_token.py",
        f"--workdir={workdir}", *[f"--config.{k}={v}" for k, v in args.items()],
    ]
    stderr = _kill_then_rerun(command, os.path.join(workdir, "equal_alpha5", "checkpoints", "200"))
    assert re.search(r"resuming from checkpoint step 1$", stderr, re.M)  # the blocks
    assert re.search(r"resuming from checkpoint step [1-9]\d{2,}$", stderr, re.M)  # the fit
    with open(os.path.join(workdir, "summary.json")) as f:
        assert json.load(f) == json.loads(json.dumps(metrics.to_jsonable(expected)))
