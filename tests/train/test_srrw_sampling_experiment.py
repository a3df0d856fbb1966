"""Tests for the srrw_sampling experiment: end to end, headline, resume, NaN stop."""

import numpy as np
import pytest

from jaxsampling.train import srrw_sampling as experiment
from tests.train import helpers


def small_config():
    config = helpers.load_config("srrw_sampling")
    config.graphs = ("karate", "grid")
    config.grid_size = 4
    config.methods = ("srrw", "hdt")
    config.alphas = (0.0, 4.0)
    config.num_chains = 200
    config.num_steps = 1000
    config.record_every = 500
    return config


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    return helpers.run_straight(tmp_path_factory, experiment, small_config())


def test_cells():
    cells = experiment.make_cells(small_config())
    assert [tuple(c) for c in cells[:4]] == [
        ("karate", "srrw", 0.0), ("karate", "srrw", 4.0),
        ("karate", "hdt", 0.0), ("karate", "hdt", 4.0),
    ]
    assert len(cells) == 8


def test_end_to_end_files_and_headline(straight_run):
    workdir, summary = straight_run
    assert helpers.read_json(workdir, "config.json")["experiment"] == "srrw_sampling"
    rows = helpers.read_metrics(workdir)
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert helpers.read_json(workdir, "summary.json") == summary
    assert summary["complete"] and len(summary["results"]) == 8
    res = {(r["graph"], r["method"], r["alpha"]): r for r in summary["results"]}
    for row in rows:
        assert row["records"]["n"] == [500, 1000]
        assert len(row["curve"]["alpha"]) == len(row["curve"]["theory_ratio"])
    for graph in ("karate", "grid"):
        srrw = res[(graph, "srrw", 4.0)]
        # Simulated n Var within 5 SE of the theory, and far below alpha = 0.
        assert abs(srrw["n_var"] - srrw["theory"]) < 5 * srrw["n_var_se"], srrw
        assert abs(np.log(srrw["ratio"] / srrw["theory_ratio"])) < 5 * srrw["ratio_se"] / srrw["ratio"]
        assert srrw["ratio"] < 0.3 and srrw["theory_ratio"] < 0.3
        for method in ("srrw", "hdt"):
            zero = res[(graph, method, 0.0)]
            assert zero["ratio"] == 1.0 and zero["theory_ratio"] == 1.0
        # The follow-up walk gains less at the same alpha (theory and simulation).
        hdt = res[(graph, "hdt", 4.0)]
        assert hdt["theory_ratio"] > srrw["theory_ratio"] and hdt["ratio"] > srrw["ratio"]
    assert res[("karate", "srrw", 0.0)]["num_nodes"] == 34
    assert res[("grid", "srrw", 0.0)]["num_nodes"] == 16


def test_resume_gives_identical_summary(straight_run, tmp_path):
    workdir = str(tmp_path / "resumed")
    partial = helpers.run_killed_after(experiment, small_config(), workdir, blocks=3,
                                       num_results=3)
    assert partial["results"] == straight_run[1]["results"][:3]
    helpers.assert_resume_matches_straight_run(experiment, small_config, workdir, straight_run)


def test_non_finite_estimate_raises_and_keeps_last_checkpoint(straight_run, tmp_path):
    helpers.assert_nan_in_block_1_stops_then_resumes(
        experiment, small_config, str(tmp_path / "nan"), straight_run[1],
        patch="trajectories", output=0, index=(0,),
        match="non-finite estimate in block 1",
    )


def test_resume_with_other_config_refused(tmp_path):
    helpers.assert_other_config_refused(
        experiment, small_config, str(tmp_path / "other"), num_steps=2000
    )


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("graphs", ("karate", "petersen"), "unknown graph 'petersen'"),
        ("methods", ("srrw", "srrw"), "methods must be distinct"),
        ("base_chain", "lazy", "unknown base_chain"),
        ("alphas", (0.0, -1.0), "alphas must be distinct and >= 0"),
        ("num_chains", 1, "num_chains must be >= 2"),
        ("record_every", 400, "multiple of record_every"),
    ],
)
def test_bad_config(field, value, match):
    helpers.assert_config_rejected(experiment.make_cells, small_config(), match,
                                   **{field: value})


def test_registry():
    helpers.assert_registered("srrw_sampling", experiment)
