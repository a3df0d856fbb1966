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
    config.checkpoint_every_records = 2
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


def test_resume_within_a_block_gives_identical_summary(straight_run, tmp_path, caplog):
    """Stopped mid-block (the loop's checkpoint at step 1000 of 2000), then resumed."""
    cell = experiment.make_cells(small_config())[0]
    helpers.assert_resume_within_block_matches_straight_run(
        experiment, small_config, str(tmp_path / "mid"), straight_run[1], step=1000,
        fit_dir=lambda workdir: experiment.block_dir(workdir, cell), caplog=caplog,
    )


def test_loop_runs_the_sa_srrw_iteration(tmp_path):
    """The block's errors = a float64 replay of theta_{n+1} = theta_n - beta_{n+1} grad f_{X_{n+1}}."""
    config = small_config()
    config.num_runs, config.num_steps, config.record_every = 6, 300, 100  # 6 runs: padded to 8
    cell = experiment.Cell("equal", 5.0)
    errors = experiment.run_block_errors(3, config, cell, str(tmp_path))
    keys = experiment._blocks.block_keys(jax.random.key(config.seed), 3, config.num_runs + 1)
    nodes = experiment.walks(keys, config, cell)
    prob = experiment.problem(config)
    x = prob.features.astype(np.float64)
    y = prob.labels.astype(np.float64)
    theta = np.zeros((config.num_runs, config.num_features))
    _, b = experiment.sa_srrw.REGIMES[cell.regime]
    records = []
    for n in range(config.num_steps):
        i = nodes[:, n]
        margin = y[i] * np.einsum("rmd,rd->rm", x[i], theta)
        weight = -y[i] / (1 + np.exp(margin))  # d softplus(-margin) / d (x . theta)
        grad = np.einsum("rm,rmd->rd", weight, x[i]) / x.shape[1] + prob.l2 * theta
        theta = theta - (n + 2.0) ** -b * grad
        if (n + 1) % config.record_every == 0:
            records.append(theta.copy())
    expected = experiment.record_stats(np.stack(records, axis=1), prob.optimum)
    np.testing.assert_allclose(errors, [expected[k] for k in ("mse", "bias_sq", "variance")],
                               rtol=2e-4)


def test_divergence_stops_with_a_clear_error(tmp_path):
    config = small_config()
    config.beta_scale = 1e30
    with pytest.raises(FloatingPointError, match="non-finite loss or gradient at step 1"):
        experiment.train_and_evaluate(config, str(tmp_path))
    helpers.assert_no_summary(str(tmp_path))


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
        ("checkpoint_every_records", 0, "checkpoint_every_records"),
    ],
)
def test_bad_config(field, value, match):
    helpers.assert_config_rejected(experiment.make_cells, small_config(), match,
                                   **{field: value})


def test_registry():
    helpers.assert_registered("srrw_token", experiment)
