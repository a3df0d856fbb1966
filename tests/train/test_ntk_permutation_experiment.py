"""Tests for the ntk_permutation experiment: end to end, headline, resume, NaN stop."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsampling.kernels import ntk
from jaxsampling.train import ntk_permutation as experiment
from tests.train import helpers


def small_config():
    config = helpers.load_config("ntk_permutation")
    config.ks = (4, 6)
    config.pool_size = 64
    config.ensemble_sizes = (1, 4, 16)
    config.width = 32
    config.gp_samples = 128
    return config


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    return helpers.run_straight(tmp_path_factory, experiment, small_config())


def test_end_to_end_files_and_headline(straight_run):
    workdir, summary = straight_run
    assert helpers.read_json(workdir, "config.json")["experiment"] == "ntk_permutation"
    rows = helpers.read_metrics(workdir)
    assert [r["step"] for r in rows] == [1, 2]
    assert helpers.read_json(workdir, "summary.json") == summary
    assert summary["complete"] and len(summary["results"]) == 2 * 3 * 3
    res = {(r["k"], r["rule"], r["M"]): r for r in summary["results"]}
    for k in (4, 6):
        for rule in ("sign", "threshold", "top_h"):
            for m in (1, 4, 16):
                r = res[(k, rule, m)]
                assert r["groups"] == 64 // m
                # Trained ensembles follow the Gaussian process: 5 SE between groups, plus
                # 0.05 for the finite-width bias (width 32).
                se = r["fraction_se"] or 0.0
                assert abs(r["fraction"] - r["predicted_fraction"]) <= 5 * se + 0.05, r
                assert r["predicted_all"] is not None and r["predicted_m99"] is not None
            fractions = [res[(k, rule, m)]["fraction"] for m in (1, 4, 16)]
            assert fractions[0] < fractions[-1] or fractions[0] == 1.0, (k, rule, fractions)
        # The structured rules need far fewer models than the paper's sign rule.
        assert res[(k, "top_h", 1)]["predicted_m99"] <= res[(k, "threshold", 1)]["predicted_m99"]
        assert res[(k, "threshold", 1)]["predicted_m99"] < res[(k, "sign", 1)]["predicted_m99"]
        assert res[(k, "top_h", 16)]["all_recovered"] == 1.0
    for row in summary["moments"]:
        assert row["final_loss"] < 1e-8 and row["max_mean_gap"] < 0.1


def test_resume_gives_identical_summary(straight_run, tmp_path):
    workdir = str(tmp_path / "resumed")
    partial = helpers.run_killed_after(experiment, small_config(), workdir, blocks=1, num_results=9)
    assert partial["results"] == straight_run[1]["results"][:9]
    helpers.assert_resume_matches_straight_run(experiment, small_config, workdir, straight_run)


def test_resume_within_a_block_gives_identical_summary(straight_run, tmp_path, caplog):
    """Stopped after the loop's first checkpoint of k = 4 (step 40 of 160), then resumed."""
    helpers.assert_resume_within_block_matches_straight_run(
        experiment, small_config, str(tmp_path / "mid"), straight_run[1], step=40,
        fit_dir=lambda workdir: os.path.join(workdir, "k4"), caplog=caplog,
    )


def test_loop_trains_what_the_kernel_trains(tmp_path):
    """A pool of 12 (padded to 16 on 8 devices) == ntk.train of the same initial keys."""
    config = small_config()
    config.pool_size, config.width = 12, 16
    params = experiment.train_pool(config, 4, str(tmp_path))
    assert params["params"]["w1"].shape == (12, 4, 16)
    init_key = jax.random.split(jax.random.key(config.seed))[0]  # loop's init key
    keys = jax.vmap(lambda j: jax.random.fold_in(jax.random.fold_in(init_key, 4), j))(
        jnp.arange(12)
    )
    perm = experiment.permutation_for(4, config.seed)
    trained = ntk.train(keys, perm, width=16, steps=160, learning_rate=4.0)
    np.testing.assert_allclose(params["params"]["w1"], trained.params["params"]["w1"],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(params["params"]["w2"], trained.params["params"]["w2"],
                               rtol=1e-5, atol=1e-6)
    loss, _, _ = experiment.pool_statistics(params, permutation=tuple(perm.tolist()), sizes=(1,))
    np.testing.assert_allclose(loss, trained.final_loss.max(), rtol=1e-3, atol=1e-12)


def test_non_finite_moments_raise_and_keep_last_checkpoint(straight_run, tmp_path):
    helpers.assert_nan_in_block_1_stops_then_resumes(
        experiment, small_config, str(tmp_path / "nan"), straight_run[1],
        patch="pool_statistics", output=1, index=(1, 0, 0),
        match="non-finite output moments in block 1",
    )


def test_resume_with_other_config_refused(tmp_path):
    helpers.assert_other_config_refused(experiment, small_config, str(tmp_path / "other"), width=16)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("ks", (4, 1), "ks must be distinct ints in"),
        ("ensemble_sizes", (4, 1), "ensemble_sizes must be increasing"),
        ("ensemble_sizes", (1, 128), "exceeds pool_size"),
        ("width", 0, "width must be >= 1"),
        ("gp_samples", 100, "gp_samples must be a positive multiple of 64"),
        ("calls_per_block", 3, "calls_per_block must be >= 1 and divide steps_per_bit"),
    ],
)
def test_bad_config(field, value, match):
    helpers.assert_config_rejected(experiment.check_config, small_config(), match, **{field: value})


def test_permutations_are_fixed_per_k():
    p = experiment.permutation_for(12, 0)
    np.testing.assert_array_equal(np.sort(p), np.arange(12))
    np.testing.assert_array_equal(p, experiment.permutation_for(12, 0))
    assert not np.array_equal(p, experiment.permutation_for(12, 1))


def test_registry():
    helpers.assert_registered("ntk_permutation", experiment)
