r"""Draws PNG figures from a run's ``metrics.jsonl`` (matplotlib, Agg backend).

Run:

  python -m jaxsampling.plot --workdir=runs/resampling

For a quick-start workdir (``<workdir>/<name>/metrics.jsonl`` per
experiment) every experiment is plotted. Figures go to ``<workdir>/plots/``:

* resampling experiment: ``[<name>_]loglik_rmse.png``, the log-likelihood
  RMSE per scheme, one panel per number of particles, a bar each for the
  "always" and "adaptive" modes;
* any other metrics file: ``[<name>_]<metric>.png``, one line plot per numeric
  metric against ``step``.

matplotlib is imported inside the drawing functions only, so importing this
module (or any training code) never needs it.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from typing import Any

from absl import app, flags, logging

from jaxsampling import metrics

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory holding metrics.jsonl.")

_RESAMPLING_KEYS = ("scheme", "num_particles", "mode", "rmse")


def _pyplot():
    import matplotlib  # pylint: disable=g-import-not-at-top

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

    return plt


def is_resampling(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether the rows look like the resampling experiment's metrics."""
    return bool(rows) and all(all(k in r for k in _RESAMPLING_KEYS) for r in rows)


def plot_resampling(rows: Sequence[dict[str, Any]], path: str) -> str:
    """Bar chart of log-likelihood RMSE per scheme; one panel per N, bars per mode.

    Args:
        rows: ``metrics.jsonl`` rows of the resampling experiment.
        path: the PNG file to write.

    Returns:
        ``path``.

    Example:
        >>> plot_resampling(metrics.read_jsonl("runs/rs/metrics.jsonl"),
        ...                 "runs/rs/plots/loglik_rmse.png")  # doctest: +SKIP
    """
    plt = _pyplot()
    schemes = list(dict.fromkeys(r["scheme"] for r in rows))
    sizes = sorted({int(r["num_particles"]) for r in rows})
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    table = {(r["scheme"], int(r["num_particles"]), r["mode"]): r["rmse"] for r in rows}
    width = 0.8 / max(len(modes), 1)
    fig, axes = plt.subplots(
        1,
        len(sizes),
        figsize=(1.0 + 1.1 * len(schemes) * len(sizes), 3.6),
        squeeze=False,
    )
    for ax, n in zip(axes[0], sizes):
        for j, mode in enumerate(modes):
            xs = [i + (j - (len(modes) - 1) / 2) * width for i in range(len(schemes))]
            ys = [table.get((s, n, mode), float("nan")) for s in schemes]
            ax.bar(xs, ys, width=width, label=mode)
        ax.set_xticks(range(len(schemes)))
        ax.set_xticklabels(schemes, rotation=30, ha="right")
        ax.set_title(f"N = {n}")
        ax.set_ylabel("RMSE of log-likelihood")
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(title="resampling", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_generic(
    rows: Sequence[dict[str, Any]], directory: str, prefix: str = ""
) -> list[str]:
    """One line plot per numeric metric against ``step``.

    Args:
        rows: ``metrics.jsonl`` rows, each with a ``step``.
        directory: where to write the PNGs.
        prefix: prepended to each file name.

    Returns:
        The paths written.
    """
    plt = _pyplot()
    names = []
    for r in rows:
        for k, v in r.items():
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                if k not in names:
                    names.append(k)
    paths = []
    for name in names:
        pts = [(r["step"], r[name]) for r in rows if name in r and "step" in r]
        if not pts:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".")
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = os.path.join(directory, f"{prefix}{_safe(name)}.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def find_metrics(workdir: str) -> dict[str, str]:
    """Maps a name ("" for the workdir itself) to each ``metrics.jsonl`` to plot."""
    own = os.path.join(workdir, metrics.METRICS_FILE)
    if os.path.exists(own):
        return {"": own}
    found = {}
    for path in sorted(glob.glob(os.path.join(workdir, "*", metrics.METRICS_FILE))):
        found[os.path.basename(os.path.dirname(path))] = path
    return found


def plot_workdir(workdir: str) -> list[str]:
    """Draws every figure for ``workdir`` into ``workdir/plots`` and returns the paths.

    Raises:
        FileNotFoundError: if there is no ``metrics.jsonl`` to plot.
    """
    sources = find_metrics(workdir)
    if not sources:
        raise FileNotFoundError(
            f"no {metrics.METRICS_FILE} in {workdir} or its subdirectories"
        )
    out_dir = os.path.join(workdir, "plots")
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name, path in sources.items():
        rows = metrics.read_jsonl(path)
        prefix = f"{name}_" if name else ""
        if is_resampling(rows):
            paths.append(
                plot_resampling(rows, os.path.join(out_dir, f"{prefix}loglik_rmse.png"))
            )
        else:
            paths.extend(plot_generic(rows, out_dir, prefix))
    for p in paths:
        logging.info("wrote %s", p)
    return paths


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("Too many command-line arguments.")
    for path in plot_workdir(_WORKDIR.value):
        print(path)


if __name__ == "__main__":
    flags.mark_flags_as_required(["workdir"])
    app.run(main)
