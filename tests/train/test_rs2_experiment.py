"""The RS2 experiment and its subset selectors."""

import json
import os

import numpy as np
import pytest

from jaxsampling import checkpoint
from jaxsampling.train import data, rs2, subsets
from tests.train.helpers import load_config

# Summary keys that hold wall times (machine-dependent).
_TIME_KEYS = ("selection_time", "train_time", "compile_time")


def small_config():
    config = load_config("rs2")
    config.hidden = (32,)
    # leverage and dpp arms differ from uniform only in subsets.select, tested below.
    config.arms = ("rs2", "uniform", "kmeans", "full")
    config.schedules = ("refined",)
    config.subset_size = 64
    config.batch_size = 16
    config.epochs = 4
    config.full_epochs = 1
    config.num_clusters = 4
    config.eval_every_epochs = 1
    config.checkpoint_every_evals = 1
    config.target_accuracies = (0.5, 0.99)
    return config


def deterministic(summary):
    """The summary without wall times (and the ratios and times built from them)."""
    rows = [
        {
            k: v
            for k, v in row.items()
            if k not in _TIME_KEYS and not k.startswith(("time_to_", "time_ratio_"))
        }
        for row in summary["results"]
    ]
    return {**summary, "results": rows}


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("rs2"))
    return workdir, rs2.train_and_evaluate(small_config(), workdir)


def test_end_to_end(straight):
    workdir, summary = straight
    assert summary["complete"]
    names = [r["arm"] for r in summary["results"]]
    assert names == ["rs2", "uniform", "kmeans", "full", "rs2_refined"]
    rows = {r["arm"]: r for r in summary["results"]}
    for row in rows.values():
        # 4 epochs of 64 digits already beat chance (0.1) by far.
        assert row["final_accuracy"] > 0.5, row
        assert row["examples_to_50"] <= 4 * 64 or row["arm"] == "full"
        assert np.isinf(row["examples_to_99"])
    assert rows["rs2"]["time_ratio_50"] == 1.0
    assert rows["uniform"]["selection_time"] < rows["kmeans"]["selection_time"]
    for arm in ("uniform",):
        with open(os.path.join(workdir, arm, rs2.SELECTION_FILE)) as f:
            chosen = json.load(f)["indices"]
        assert len(set(chosen)) == 64
    # The kmeans arm's second round keeps the first round's examples.
    subsets_by_round = []
    for r in range(2):
        directory = os.path.join(workdir, "kmeans", f"round_{r}", "checkpoints")
        with checkpoint.Checkpointer(directory) as ckpt:
            subsets_by_round.append(set(ckpt.restore_meta(None)["identity"]["task"]["subset"]))
    assert len(subsets_by_round[0]) == 32 and len(subsets_by_round[1]) == 64
    assert subsets_by_round[0] < subsets_by_round[1]
    assert os.path.exists(os.path.join(workdir, "summary.json"))


def test_resume_matches_straight_run(straight, tmp_path):
    _, expected = straight
    config = small_config()
    config.stop_after_epochs = 3
    partial = rs2.train_and_evaluate(config, str(tmp_path))
    assert not partial["complete"]
    assert not os.path.exists(os.path.join(str(tmp_path), "summary.json"))
    resumed = rs2.train_and_evaluate(small_config(), str(tmp_path))
    assert deterministic(resumed) == deterministic(expected)


def test_non_finite_loss_stops(tmp_path):
    config = small_config()
    config.arms = ("rs2",)
    config.schedules = ()
    config.train.optimizer.schedule.peak_value = 1e30
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        rs2.train_and_evaluate(config, str(tmp_path))


def test_other_configuration_refused(straight):
    workdir, _ = straight
    config = small_config()
    config.seed = 1
    with pytest.raises(ValueError, match="(different configuration|another selection)"):
        rs2.train_and_evaluate(config, workdir)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("arms", ("rs2", "nope"), "arms must be distinct"),
        ("schedules", ("warm",), "unknown schedule arm"),
        ("subset_size", 70, "multiple of batch_size"),
        ("refine_rounds", 3, "refine_rounds"),
        ("dataset", "mnist", "unknown dataset"),
    ],
)
def test_bad_config(tmp_path, field, value, match):
    config = small_config()
    setattr(config, field, value)
    with pytest.raises(ValueError, match=match):
        rs2.train_and_evaluate(config, str(tmp_path))


def test_schedules_need_the_rs2_arm(tmp_path):
    config = small_config()
    config.arms = ("uniform",)
    with pytest.raises(ValueError, match="include 'rs2'"):
        rs2.train_and_evaluate(config, str(tmp_path))


# --- subsets -----------------------------------------------------------------


def test_rs2_epochs_are_without_replacement_across_a_round():
    n, size = 103, 10
    per_round = n // size
    for round_ in range(2):
        seen = np.concatenate(
            [subsets.rs2_epoch(7, round_ * per_round + e, n, size) for e in range(per_round)]
        )
        assert len(seen) == len(set(seen.tolist())) == per_round * size
    first = subsets.rs2_epoch(7, 0, n, size)
    assert not np.array_equal(first, subsets.rs2_epoch(7, per_round, n, size))
    np.testing.assert_array_equal(first, subsets.rs2_epoch(7, 0, n, size))
    with pytest.raises(ValueError, match="size"):
        subsets.rs2_epoch(0, 0, 5, 6)


def test_static_epochs_reshuffle_the_subset():
    subset = np.array([3, 8, 13, 21, 34])
    a, b = subsets.static_epoch(0, 0, subset), subsets.static_epoch(0, 1, subset)
    assert sorted(a.tolist()) == sorted(b.tolist()) == subset.tolist()


def test_epoch_batches_cross_epoch_boundaries():
    order = lambda epoch: np.arange(10) + 100 * epoch  # noqa: E731
    idx = subsets.epoch_batches(order, 3, 4, batch_size=4, steps_per_epoch=2)
    np.testing.assert_array_equal(
        idx, [[104, 105, 106, 107], [200, 201, 202, 203], [204, 205, 206, 207], [300, 301, 302, 303]]
    )


def test_cluster_budget():
    labels = np.array([0] * 10 + [1] * 30 + [2] * 2)
    take = subsets.cluster_budget(labels, np.ones(3), 20)
    assert take.sum() == 20 and take.tolist() == [5, 14, 1]
    # Weights tilt the split; a full cluster passes its share on.
    take = subsets.cluster_budget(labels, np.array([1.0, 1.0, 100.0]), 20)
    assert take[2] == 2 and take.sum() == 20
    take = subsets.cluster_budget(labels, np.array([0.0, 0.0, 1.0]), 5)
    assert take.tolist()[2] == 2 and take.sum() == 5
    available = np.ones(42, bool)
    available[:10] = False
    assert subsets.cluster_budget(labels, np.ones(3), 32, available).tolist() == [0, 30, 2]
    with pytest.raises(ValueError, match="exceeds"):
        subsets.cluster_budget(labels, np.ones(3), 43)


def test_diversity_excludes_and_spreads():
    labels = np.repeat(np.arange(4), 25)
    first = subsets.diversity(0, labels, np.ones(4), 20)
    assert np.bincount(labels[first], minlength=4).tolist() == [5, 5, 5, 5]
    second = subsets.diversity(1, labels, np.array([1.0, 1.0, 1.0, 5.0]), 16, exclude=first)
    assert not set(first.tolist()) & set(second.tolist())
    assert np.bincount(labels[second], minlength=4)[3] == 10


@pytest.mark.parametrize(
    "method",
    # The k-DPP selection compiles for ~8 s; the quick start runs it on every CI.
    [pytest.param(m, marks=pytest.mark.slow) if m == "dpp" else m for m in subsets.SELECTORS],
)
def test_selectors_give_distinct_sorted_subsets(method):
    x = data.digits().x_train[:200]
    chosen = subsets.select(method, 0, x, 24, num_clusters=4)
    assert chosen.shape == (24,) and len(set(chosen.tolist())) == 24
    assert np.all(np.diff(chosen) > 0) and chosen.max() < 200
    np.testing.assert_array_equal(chosen, subsets.select(method, 0, x, 24, num_clusters=4))


def test_unknown_selector():
    with pytest.raises(ValueError, match="unknown selector"):
        subsets.select("best", 0, np.zeros((4, 2)), 2)


def test_registry():
    from tests.train import helpers

    helpers.assert_registered("rs2", rs2)
