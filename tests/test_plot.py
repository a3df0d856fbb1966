"""The training-loop figure: which runs it finds and that it draws them."""

import os

import pytest

from jaxsampling import metrics, plot

pytest.importorskip("matplotlib")


def _write(directory, rows):
    os.makedirs(directory, exist_ok=True)
    with metrics.MetricWriter(directory) as writer:
        for row in rows:
            writer.write_scalars(row["step"], {k: v for k, v in row.items() if k != "step"})


def _loop_rows(scale):
    return [{"step": s, "loss": scale / s, "grad_norm": 2.0 / s, "learning_rate": 0.1}
            for s in (10, 20, 30)]


def test_training_runs_finds_loop_metrics_one_and_two_levels_down(tmp_path):
    _write(tmp_path, [{"step": 1, "results": [1, 2]}])  # the experiment's own rows
    _write(tmp_path / "rs2", _loop_rows(1.0))
    _write(tmp_path / "l1" / "m64", _loop_rows(2.0))
    _write(tmp_path / "blocks", [{"step": 1, "mse": 0.1}])  # not a loop run
    runs = plot.training_runs(str(tmp_path))
    assert sorted(runs) == ["l1/m64", "rs2"]
    assert runs["rs2"] == _loop_rows(1.0)
    path = plot.plot_training(runs, str(tmp_path / "training.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_workdir_adds_the_training_figure(tmp_path):
    _write(tmp_path, [{"step": 1, "value": 1.0}])
    for i in range(14):  # more fits than the legend shows
        _write(tmp_path / f"fit{i}", _loop_rows(1.0 + i))
    paths = plot.plot_workdir(str(tmp_path))
    assert paths[-1] == os.path.join(str(tmp_path), "plots", "training.png")
    assert os.path.getsize(paths[-1]) > 1000
