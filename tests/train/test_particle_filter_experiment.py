"""Tests for the particle_filter experiment: end to end, resume, NaN stop, registry."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsampling import checkpoint, metrics, train
from jaxsampling.train import kalman
from jaxsampling.train import particle_filter as experiment
from tests.train import helpers



def small_config():
    config = helpers.load_config("particle_filter")
    config.num_particles = (100, 1000)  # compilation dominates: 4 programs
    config.num_seeds = 16
    config.T = 20
    return config


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("straight"))
    return workdir, experiment.train_and_evaluate(small_config(), workdir)


def test_end_to_end_files_and_accuracy(straight_run):
    workdir, summary = straight_run
    config = small_config()
    blocks = experiment.make_blocks(config)
    assert blocks == [
        ("bootstrap", 100),
        ("bootstrap", 1000),
        ("guided", 100),
        ("guided", 1000),
    ]
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["experiment"] == "particle_filter"
    rows = metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    cells = [(r["filter"], r["num_particles"]) for r in rows]
    assert cells == [tuple(b) for b in blocks]
    with open(os.path.join(workdir, "summary.json")) as f:
        assert json.load(f) == summary
    assert summary["complete"]
    params = kalman.LGSSM(config.rho, config.sigma_x, config.sigma_y)
    _, ys = kalman.simulate(jax.random.key(config.data_seed), params, config.T)
    assert summary["loglik_exact"] == pytest.approx(
        float(kalman.dense_log_likelihood(params, ys)), abs=1e-3
    )

    results = {(r["filter"], r["num_particles"]): r for r in summary["results"]}
    for row in results.values():
        assert row["rmse"] ** 2 == pytest.approx(row["bias"] ** 2 + row["std"] ** 2)
        assert 0 <= row["mean_resampling_steps"] <= config.T
        # Natural-scale unbiasedness: E[exp(err)] = 1, within 5 standard errors.
        assert abs(row["mean_ratio"] - 1.0) < 5 * row["ratio_se"] + 0.05
    for kind in ("bootstrap", "guided"):
        small, big = results[(kind, 100)], results[(kind, 1000)]
        # Both errors shrink like N^-1/2 (a factor ~3.2 here); ask for 1.5.
        assert big["rmse"] < small["rmse"] / 1.5
        assert big["filter_mean_rmse"] < small["filter_mean_rmse"] / 1.5
    for n in (100, 1000):
        # The optimal proposal has much lower weight variance: a smaller error
        # and fewer resampling steps than the bootstrap filter.
        assert results[("guided", n)]["rmse"] < results[("bootstrap", n)]["rmse"]
        assert (
            results[("guided", n)]["mean_resampling_steps"]
            < results[("bootstrap", n)]["mean_resampling_steps"]
        )


def test_resume_gives_identical_summary(straight_run, tmp_path):
    straight_dir, expected = straight_run
    workdir = str(tmp_path / "resumed")
    config = small_config()
    config.stop_after_blocks = 2
    partial = experiment.train_and_evaluate(config, workdir)
    assert not partial["complete"] and len(partial["results"]) == 2
    assert not os.path.exists(os.path.join(workdir, "summary.json"))
    with checkpoint.Checkpointer(os.path.join(workdir, "checkpoints")) as ckpt:
        assert ckpt.latest_step() == 2
    # A line logged after the last checkpoint (killed between the two) is dropped.
    helpers.append_stale_metrics_line(workdir, 3)
    helpers.assert_resume_matches_straight_run(
        lambda d: experiment.train_and_evaluate(small_config(), d),
        workdir, straight_dir, expected,
    )


def test_non_finite_estimate_raises_and_keeps_last_checkpoint(
    straight_run, tmp_path, monkeypatch
):
    workdir = str(tmp_path / "nan")
    real = experiment.run_filters
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        ll, mse, counts = real(*args, **kwargs)
        return (ll.at[0].set(jnp.nan) if len(calls) == 2 else ll), mse, counts

    monkeypatch.setattr(experiment, "run_filters", flaky)
    with pytest.raises(FloatingPointError, match="non-finite log-likelihood.*block 1"):
        experiment.train_and_evaluate(small_config(), workdir)
    with checkpoint.Checkpointer(os.path.join(workdir, "checkpoints")) as ckpt:
        assert ckpt.latest_step() == 1
    assert not os.path.exists(os.path.join(workdir, "summary.json"))
    monkeypatch.setattr(experiment, "run_filters", real)
    assert experiment.train_and_evaluate(small_config(), workdir) == straight_run[1]


def test_resume_with_other_config_raises(straight_run, tmp_path):
    workdir = str(tmp_path / "other")
    config = small_config()
    config.stop_after_blocks = 1
    experiment.train_and_evaluate(config, workdir)
    other = small_config()
    other.num_seeds = 8
    other.stop_after_blocks = 1
    with pytest.raises(ValueError, match="different configuration"):
        experiment.train_and_evaluate(other, workdir)


def test_run_filters_shapes():
    # Same static arguments and shapes as small_config(): shares its compilation.
    params = kalman.LGSSM(0.9, 1.0, 1.0)
    _, ys = kalman.simulate(jax.random.key(0), params, 20)
    _, means = kalman.kalman_filter(params, ys)
    keys = jax.random.split(jax.random.key(1), 16)
    kwargs = dict(
        params=params,
        kind="guided",
        num_particles=100,
        scheme="systematic",
        ess_threshold=0.5,
        batch_size=None,
    )
    ll, mse, counts = experiment.run_filters(keys, ys, means, **kwargs)
    assert ll.shape == mse.shape == counts.shape == (16,)
    assert counts.dtype == jnp.int32
    assert np.all(np.isfinite(np.asarray(ll))) and np.all(np.asarray(mse) >= 0)


def test_bad_names():
    config = small_config()
    config.filters = ("bootstrap", "nope")
    with pytest.raises(ValueError, match="unknown filter 'nope'"):
        experiment.make_blocks(config)
    config = small_config()
    config.scheme = "nope"
    with pytest.raises(ValueError, match="unknown resampling scheme 'nope'"):
        experiment.make_blocks(config)


def test_registry():
    assert train.get("particle_filter") is experiment.train_and_evaluate
    assert "particle_filter" in train.EXPERIMENTS
