"""Tests for the dpp_wls experiment: end to end, headline, resume, NaN stop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsampling.train import dpp_wls as experiment
from tests.train import helpers


def small_config():
    config = helpers.load_config("dpp_wls")
    # Compilation dominates: one program per dimension m.
    config.dims = (4, 6)
    config.sample_ratios = (1, 2, 4)
    config.num_seeds = 64
    config.seeds_per_batch = 0
    config.quadrature_nodes = 200
    return config


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    return helpers.run_straight(tmp_path_factory, experiment, small_config())


def test_cells():
    cells = experiment.make_cells(small_config())
    assert [(c.method, c.ratio) for c in cells] == [
        ("iid", 1), ("iid", 2), ("iid", 4),
        ("dpp", 1),
        ("volume_rescaled", 1), ("volume_rescaled", 2), ("volume_rescaled", 4),
        ("repeated_dpp", 2), ("repeated_dpp", 4),
    ]


def test_end_to_end_files_and_headline(straight_run):
    workdir, summary = straight_run
    assert helpers.read_json(workdir, "config.json")["experiment"] == "dpp_wls"
    rows = helpers.read_metrics(workdir)
    assert [(r["step"], r["m"]) for r in rows] == [(1, 4), (2, 6)]
    assert all(len(r["cells"]) == 2 * 9 for r in rows)
    assert helpers.read_json(workdir, "summary.json") == summary
    assert summary["complete"] and len(summary["results"]) == 2 * 2 * 9
    assert rows[0]["cells"] + rows[1]["cells"] == summary["results"]
    res = {(r["function"], r["m"], r["method"], r["n"]): r for r in summary["results"]}
    for r in summary["results"]:
        assert r["n"] == r["ratio"] * r["m"]
        assert 1.0 <= r["q10_ratio"] <= r["median_ratio"] <= r["q90_ratio"]
        assert 0.0 <= r["well_conditioned"] <= 1.0
        assert r["best_error"] == summary["best_error"][r["function"]][str(r["m"])] > 0
    for f in ("runge", "abs"):
        for m in (4, 6):
            # Volume-rescaled sampling and repeated DPPs are quasi-optimal in
            # expectation at n = 4m (kernel tests: E ratio ~1.2-1.4 at m = 6),
            # here with 64 seeds: a mean ratio below 2.
            for method in ("volume_rescaled", "repeated_dpp"):
                row = res[(f, m, method, 4 * m)]
                assert row["mean_ratio"] + 3 * row["se_ratio"] < 2.0, row
            # Interpolation (n = m): E ratio = m + 1 for the DPP; i.i.d.
            # points are far worse in the median.
            dpp_row, iid_row = res[(f, m, "dpp", m)], res[(f, m, "iid", m)]
            assert dpp_row["median_ratio"] < m + 1
            assert iid_row["median_ratio"] > 2 * dpp_row["median_ratio"]
            # Errors fall with n for every method.
            for method in ("iid", "volume_rescaled"):
                big, small = res[(f, m, method, 4 * m)], res[(f, m, method, m)]
                assert big["median_ratio"] < small["median_ratio"]
    for m in (4, 6):
        # The Gram matrix of repeated DPPs is well conditioned far more often
        # than that of i.i.d. points of the same size (the designs are shared
        # by both functions).
        rep = res[("runge", m, "repeated_dpp", 2 * m)]["well_conditioned"]
        iid = res[("runge", m, "iid", 2 * m)]["well_conditioned"]
        assert rep > iid + 0.2
        # At n = m i.i.d. Gram matrices are (almost) never well conditioned.
        at_m = {k: res[("runge", m, k, m)]["well_conditioned"] for k in ("iid", "dpp")}
        assert at_m["iid"] <= at_m["dpp"]


@pytest.mark.slow
def test_results_do_not_depend_on_the_seed_batch():
    """seeds_per_batch is not in the checkpoint meta: it must not change results."""
    Cell = experiment.Cell  # noqa: N806
    cells = tuple(
        Cell(method, ratio)
        for method, ratio in [
            ("iid", 2), ("dpp", 1), ("volume_rescaled", 2), ("repeated_dpp", 2)
        ]
    )
    with jax.enable_x64(True):
        c_star, best = experiment.references(("abs",), 3, 200)
        keys = jax.random.split(jax.random.key(3), 10)
        args = (keys, jnp.asarray(c_star), jnp.asarray(best))
        kw = dict(m=3, cells=cells, functions=("abs",))
        whole = experiment.evaluate(*args, batch_size=None, **kw)
        batched = experiment.evaluate(*args, batch_size=4, **kw)  # 3 batches, padded
    for a, b in zip(whole, batched):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-9)


def test_resume_gives_identical_summary(straight_run, tmp_path):
    workdir = str(tmp_path / "resumed")
    partial = helpers.run_killed_after(
        experiment, small_config(), workdir, blocks=1, num_results=2 * 9
    )
    expected = straight_run[1]
    assert partial["results"] == [r for r in expected["results"] if r["m"] == 4]
    helpers.assert_resume_matches_straight_run(
        experiment, small_config, workdir, straight_run
    )


def test_non_finite_error_raises_and_keeps_last_checkpoint(straight_run, tmp_path):
    helpers.assert_nan_in_block_1_stops_then_resumes(
        experiment, small_config, str(tmp_path / "nan"), straight_run[1],
        patch="evaluate", output=0, index=(0, 0, 0),
        match="non-finite error ratio in block 1",
    )


def test_resume_with_other_config_raises(straight_run, tmp_path):
    helpers.assert_other_config_refused(
        experiment, small_config, str(tmp_path / "other"), well_conditioned_delta=0.25
    )


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("methods", ("iid", "magic"), "unknown method 'magic'"),
        ("methods", ("repeated_dpp",), "no cell to run"),
        ("functions", ("runge", "sin"), "unknown function 'sin'"),
        ("sample_ratios", (2, 4), "sample_ratios must be increasing ints starting"),
        ("sample_ratios", (1, 1.5), "sample_ratios must be increasing ints"),
        ("dims", (6, 4), "dims must be increasing ints"),
        ("num_seeds", 1, "num_seeds must be >= 2"),
        ("well_conditioned_delta", 0.0, "well_conditioned_delta must be > 0"),
    ],
)
def test_bad_config(field, value, match):
    changes = {field: value}
    if field == "methods" and value == ("repeated_dpp",):
        changes["sample_ratios"] = (1,)
    helpers.assert_config_rejected(
        experiment.make_cells, small_config(), match, **changes
    )


def test_registry():
    helpers.assert_registered("dpp_wls", experiment)
