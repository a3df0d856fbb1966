"""Tests for the srrw_token experiment: end to end, headline, resume, NaN stop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsampling.train import srrw_token as experiment
from tests.train import helpers


def small_config():
    config = helpers.load_config("srrw_token")
    config.regimes = ("beta_slower", "equal")
    config.alphas = (0.0, 5.0)
    config.num_runs = 48
    config.num_steps = 2000
    config.record_every = 500
    return config


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    return helpers.run_straight(tmp_path_factory, experiment, small_config())


def test_optimum_is_the_minimiser_of_the_average_local_loss():
    config = small_config()
    prob = experiment.problem(config)
    loss = experiment.loss_fn(config)
    assert experiment.loss_fn(config) is loss  # cached: one compilation per regime
    theta = jnp.asarray(prob.optimum, jnp.float32)
    nodes = jnp.arange(prob.chain.graph.num_nodes)
    grad = jax.vmap(jax.grad(loss), in_axes=(None, 0))(theta, nodes).mean(0)
    assert float(jnp.linalg.norm(grad)) < 1e-5
    assert prob.features.shape == (34, 20, 5) and set(np.unique(prob.labels)) == {-1.0, 1.0}


def test_end_to_end_files_and_headline(straight_run):
    workdir, summary = straight_run
    assert helpers.read_json(workdir, "config.json")["experiment"] == "srrw_token"
    rows = helpers.read_metrics(workdir)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert helpers.read_json(workdir, "summary.json") == summary
    assert summary["complete"] and len(summary["results"]) == 4
    res = {(r["regime"], r["alpha"]): r for r in summary["results"]}
    for row in rows:
        rec = row["records"]
        assert rec["n"] == [500, 1000, 1500, 2000]
        assert rec["mse"][-1] < rec["mse"][0]  # converging
        # MSE = bias^2 + variance (population variance across runs).
        np.testing.assert_allclose(rec["mse"], np.add(rec["bias_sq"], rec["variance"]),
                                   rtol=1e-6)
    for regime in ("beta_slower", "equal"):
        assert res[(regime, 0.0)]["variance_ratio"] == 1.0
        # Repulsion shrinks the variance of theta (measured ~0.04 at 10,000 steps).
        assert res[(regime, 5.0)]["variance_ratio"] < 0.5, res[(regime, 5.0)]
    # beta = gamma: the error is variance; beta = o(gamma): a bias shows up at alpha = 5.
    assert res[("equal", 5.0)]["mse_over_variance"] < 1.5
    assert res[("beta_slower", 5.0)]["mse_over_variance"] > res[("equal", 5.0)]["mse_over_variance"]


def test_resume_gives_identical_summary(straight_run, tmp_path):
    workdir = str(tmp_path / "resumed")
    partial = helpers.run_killed_after(experiment, small_config(), workdir, blocks=1,
                                       num_results=1)
    assert partial["results"][0]["mse"] == straight_run[1]["results"][0]["mse"]
    helpers.assert_resume_matches_straight_run(experiment, small_config, workdir, straight_run)


def test_non_finite_iterate_raises_and_keeps_last_checkpoint(straight_run, tmp_path):
    helpers.assert_nan_in_block_1_stops_then_resumes(
        experiment, small_config, str(tmp_path / "nan"), straight_run[1],
        patch="run_block_thetas", output=0, index=(0, 0),
        match="non-finite iterate in block 1",
    )


def test_resume_with_other_config_refused(tmp_path):
    helpers.assert_other_config_refused(
        experiment, small_config, str(tmp_path / "other"), beta_scale=0.5
    )


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("regimes", ("fast",), "unknown regime 'fast'"),
        ("regimes", ("equal", "equal"), "regimes must be distinct"),
        ("graph", "grid", "unknown graph 'grid'"),
        ("alphas", (-1.0,), "alphas must be distinct and >= 0"),
        ("num_runs", 1, "num_runs must be >= 2"),
        ("record_every", 300, "multiple of record_every"),
        ("num_features", 0, "num_features"),
    ],
)
def test_bad_config(field, value, match):
    helpers.assert_config_rejected(experiment.make_cells, small_config(), match,
                                   **{field: value})


def test_registry():
    helpers.assert_registered("srrw_token", experiment)
