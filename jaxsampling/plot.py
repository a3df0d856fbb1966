r"""Draws PNG figures from a run's ``metrics.jsonl`` (matplotlib, Agg backend).

Run:

  python -m jaxsampling.plot --workdir=runs/resampling

For a quick-start workdir (``<workdir>/<name>/metrics.jsonl`` per
experiment) every experiment is plotted. Figures go to ``<workdir>/plots/``:

* resampling experiment: ``[<name>_]loglik_rmse.png``, the log-likelihood
  RMSE per scheme, one panel per number of particles, a bar each for the
  "always" and "adaptive" modes;
* particle_filter: ``[<name>_]error_vs_particles.png``, the log-likelihood
  RMSE and the filtering-mean RMSE against N (log-log, with an
  ``N^{-1/2}`` guide), one line per filter;
* smc_mixture: ``[<name>_]particles.png`` (each variant's final particles
  over the posterior's contours, from ``particles.npz``) and
  ``[<name>_]errors.png`` (log-evidence RMSE, mode-weight TV and mean error
  per variant);
* fkc_annealing: ``[<name>_]particles.png`` (one row per task, one panel per
  variant, over the target's contours) and ``[<name>_]errors.png``
  (mode-weight TV with standard-error bars, the TV of the run-averaged
  weights, and the relative error of the within-mode spread);
* dpp_wls: ``[<name>_]wls_error.png`` (mean error ratio to the best
  approximation against n, per function and m) and
  ``[<name>_]well_conditioned.png`` (fraction of well-conditioned Gram matrices).
* lp_coreset: ``[<name>_]distortion.png`` (median subspace distortion
  against the coreset size m, log-log, one line per sampling method with the
  inter-quartile range shaded, one panel per norm p: exact at p = 2, a lower
  bound otherwise) and ``[<name>_]regression_error.png`` (median relative
  excess of the full-data l_p residual, same layout);
* ntk_permutation: ``[<name>_]recovery.png`` (per rounding rule, the
  fraction of inputs recovered and the probability that all are, against the
  ensemble size M: trained ensembles as points, the Gaussian process as lines);
* every trainer of the shared loop (:mod:`jaxsampling.train.loop`: rs2,
  coreset_training, srrw_token, ntk_permutation): ``[<name>_]training.png``,
  the loss, gradient norm and learning rate of each of its fits (the
  ``metrics.jsonl`` of its sub-runs) against the step;
* any other metrics file: ``[<name>_]<metric>.png``, one line plot per numeric
  metric against ``step``.

matplotlib is imported inside the drawing functions only, so importing this
module (or any training code) never needs it.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Sequence
from typing import Any

from absl import app, flags, logging

from jaxsampling import metrics

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory holding metrics.jsonl.")

_RESAMPLING_KEYS = ("scheme", "num_particles", "mode", "rmse")
_PARTICLES_FILE = "particles.npz"


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
    return _save(plt, fig, path)



def plot_particle_filter(rows: Sequence[dict[str, Any]], path: str) -> str:
    """Log-log plot of the errors against the number of particles, one line per filter.

    Left: RMSE of the log-likelihood estimate; right: RMSE of the filtering
    means against the Kalman means. A dotted ``N^{-1/2}`` guide goes through
    each filter's smallest N.

    Args:
        rows: ``metrics.jsonl`` rows of the particle_filter experiment.
        path: the PNG file to write.

    Returns:
        ``path``.
    """
    plt = _pyplot()
    kinds = list(dict.fromkeys(r["filter"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6))
    panels = (
        ("rmse", "RMSE of log-likelihood"),
        ("filter_mean_rmse", "RMSE of filtering mean"),
    )
    for ax, (key, label) in zip(axes, panels):
        for kind in kinds:
            pts = sorted(
                (int(r["num_particles"]), float(r[key]))
                for r in rows
                if r["filter"] == kind and key in r
            )
            if not pts:
                continue
            ns = [p[0] for p in pts]
            (line,) = ax.plot(ns, [p[1] for p in pts], marker="o", label=kind)
            n0, e0 = pts[0]
            ax.plot(
                ns,
                [e0 * (n0 / n) ** 0.5 for n in ns],
                linestyle=":",
                color=line.get_color(),
                alpha=0.6,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("number of particles N")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(title="filter (dotted: N^-1/2)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_particles(npz_path: str, path: str, columns: int | None = None) -> str:
    """Each panel's particles over the contours of its target density.

    Reads the ``particles.npz`` layout of the workdir contract (``labels``,
    ``done``, ``positions``, ``weights``, ``grid_x``, ``grid_y``,
    ``density``). Panels not yet run are left empty. Marker areas are
    proportional to the particle weights.

    Args:
        npz_path: the ``particles.npz`` file.
        path: the PNG file to write.
        columns: panels per row (default: all in one row, or one row per
            task prefix ``"<task>: "`` when the labels have one).

    Returns:
        ``path``.
    """
    import numpy as np  # pylint: disable=g-import-not-at-top

    plt = _pyplot()
    with np.load(npz_path) as data:
        arrays = {k: data[k] for k in data.files}
    labels = [str(v) for v in arrays["labels"]]
    if columns is None:
        prefixes = list(dict.fromkeys(lab.split(": ")[0] for lab in labels))
        columns = (
            len(labels) // len(prefixes)
            if all(": " in lab for lab in labels) and len(labels) % len(prefixes) == 0
            else len(labels)
        )
    rows = -(-len(labels) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(3.2 * columns, 3.2 * rows), squeeze=False
    )
    gx, gy = arrays["grid_x"], arrays["grid_y"]
    for i, label in enumerate(labels):
        ax = axes[i // columns][i % columns]
        ax.contour(
            gx, gy, arrays["density"][i].T, levels=8, cmap="Blues", linewidths=0.8
        )
        if arrays["done"][i]:
            x = arrays["positions"][i]
            w = arrays["weights"][i]
            size = 4.0 * w * w.shape[0]
            ax.scatter(x[:, 0], x[:, 1], s=size, c="tab:red", alpha=0.4, linewidths=0)
        else:
            label += " (not run)"
        ax.set_title(label, fontsize=9)
        ax.set_xlim(gx[0], gx[-1])
        ax.set_ylim(gy[0], gy[-1])
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
    for j in range(len(labels), rows * columns):
        axes[j // columns][j % columns].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_smc_mixture(rows: Sequence[dict[str, Any]], path: str) -> str:
    """Bar charts of the tempered-SMC errors per variant.

    Panels: log-evidence RMSE, mode-weight total variation, posterior-mean
    error (each a mean over the runs of a variant).
    """
    plt = _pyplot()
    variants = [r["variant"] for r in rows]
    panels = (
        ("logz_rmse", "RMSE of log Z"),
        ("mode_weight_tv", "mode-weight TV error"),
        ("mean_error", "RMS error of the mean"),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.4))
    for ax, (key, label) in zip(axes, panels):
        ax.bar(range(len(rows)), [r.get(key, float("nan")) for r in rows], width=0.6)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(variants, rotation=20, ha="right")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_fkc(rows: Sequence[dict[str, Any]], path: str) -> str:
    """FKC errors per task and variant, with standard-error bars.

    Top row: the mode-weight TV error (mean over runs, +- one standard
    error) and, hatched, the TV of the run-averaged weights (the bias, plus
    noise of order TV / sqrt(runs)). Bottom row: the relative error of the
    within-mode spread ``E|x - c(x)|^2`` (signed: below 0 is too narrow).
    One column per task.
    """
    plt = _pyplot()
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(
        2, len(tasks), figsize=(4.2 * len(tasks), 6.4), squeeze=False
    )
    for j, task in enumerate(tasks):
        sub = [r for r in rows if r["task"] == task]
        xs = list(range(len(sub)))
        names = [r["variant"] for r in sub]
        ax = axes[0][j]
        ax.bar(
            [x - 0.2 for x in xs],
            [r["mode_weight_tv"] for r in sub],
            width=0.4,
            yerr=[r.get("mode_weight_tv_se", 0.0) for r in sub],
            capsize=3,
            label="per run",
        )
        ax.bar(
            [x + 0.2 for x in xs],
            [r["mode_weight_bias_tv"] for r in sub],
            width=0.4,
            hatch="//",
            alpha=0.7,
            label="run-averaged",
        )
        ax.set_title(task)
        ax.set_ylabel("mode-weight TV error")
        ax.legend(fontsize=8)
        ax = axes[1][j]
        ax.bar(xs, [r["spread_rel_error"] for r in sub], width=0.6, color="tab:green")
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_ylabel("relative error of spread")
        for a in axes[:, j]:
            a.set_xticks(xs)
            a.set_xticklabels(names, rotation=20, ha="right")
            a.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_lp_coreset(
    rows: Sequence[dict[str, Any]], key: str, ylabel: str, path: str
) -> str:
    """Median ``key`` against the coreset size, one panel per norm, a line per method.

    Args:
        rows: ``metrics.jsonl`` rows of the lp_coreset experiment (one per
            cell, with lists over ``sizes``).
        key: ``"distortion"`` (with ``distortion_q25``/``_q75`` shaded) or
            ``"regression_error"``.
        ylabel: the y-axis label.
        path: the PNG file to write.

    Returns:
        ``path``.
    """
    plt = _pyplot()
    from matplotlib import ticker  # pylint: disable=g-import-not-at-top

    norms = sorted({float(r["p"]) for r in rows})
    labels = list(dict.fromkeys(r["method"] for r in rows))
    colors = {lab: f"C{i % 10}" for i, lab in enumerate(labels)}
    fig, axes = plt.subplots(
        1, len(norms), figsize=(4.2 * len(norms) + 1.6, 3.8), squeeze=False
    )
    for ax, p in zip(axes[0], norms):
        for r in rows:
            if float(r["p"]) != p or key not in r:
                continue
            sizes = [int(m) for m in r["sizes"]]
            values = [float(v) for v in r[key]]
            ax.plot(
                sizes, values, marker="o", markersize=3.5, color=colors[r["method"]],
                label=r["method"],
            )
            low, high = r.get(f"{key}_q25"), r.get(f"{key}_q75")
            if low is not None and high is not None:
                ax.fill_between(sizes, low, high, color=colors[r["method"]], alpha=0.12)
        ax.set_xscale("log")
        # Non-positive medians (a regression error at float32 resolution) are
        # left out rather than drawn at the axis floor.
        ax.set_yscale("log", nonpositive="mask")
        all_sizes = sorted({int(m) for r in rows for m in r["sizes"]})
        ax.set_xticks(all_sizes)
        ax.set_xticklabels([str(m) for m in all_sizes], fontsize=8)
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("coreset size m")
        exact = any(r.get("distortion_exact") for r in rows if float(r["p"]) == p)
        if key == "distortion":
            ax.set_title(f"p = {p:g} ({'exact' if exact else 'lower bound'})")
        else:
            ax.set_title(f"p = {p:g}")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    handles = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    axes[0][-1].legend(
        handles.values(), handles.keys(), title="sampling", fontsize=8,
        loc="upper left", bbox_to_anchor=(1.0, 1.0),
    )
    return _save(plt, fig, path)


def _dpp_wls_cells(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for r in rows for c in r.get("cells", [])]


def plot_dpp_wls(rows: Sequence[dict[str, Any]], path: str, well_conditioned: bool) -> str:
    """DPP weighted least squares against the number of samples ``n``.

    Args:
        rows: ``metrics.jsonl`` rows of the dpp_wls experiment (one per
            dimension ``m``, each with a list of cells).
        path: the PNG file to write.
        well_conditioned: draw the fraction of designs with ``||G - I|| <= 1/2``
            (one panel per ``m``) instead of the mean error ratio
            ``||f - f_hat||^2 / e_m(f)^2`` (a panel per function and ``m``).

    Returns:
        ``path``.
    """
    plt = _pyplot()
    cells = _dpp_wls_cells(rows)
    dims = sorted({int(c["m"]) for c in cells})
    functions = list(dict.fromkeys(c["function"] for c in cells))
    methods = list(dict.fromkeys(c["method"] for c in cells))
    colors = {lab: f"C{i % 10}" for i, lab in enumerate(methods)}
    panel_rows = [functions[0]] if well_conditioned else functions
    fig, axes = plt.subplots(
        len(panel_rows), len(dims), figsize=(3.8 * len(dims) + 1.6, 3.2 * len(panel_rows)),
        squeeze=False,
    )
    for i, name in enumerate(panel_rows):
        for j, m in enumerate(dims):
            ax = axes[i][j]
            for method in methods:
                chosen = sorted(
                    (c for c in cells
                     if c["function"] == name and int(c["m"]) == m and c["method"] == method),
                    key=lambda c: c["n"],
                )
                if not chosen:
                    continue
                n = [int(c["n"]) for c in chosen]
                key = "well_conditioned" if well_conditioned else "mean_ratio"
                ax.plot(n, [float(c[key]) for c in chosen], marker="o", markersize=3.5,
                        color=colors[method], label=method)
            if well_conditioned:
                ax.set_title(f"m = {m}")
                ax.set_ylabel("P(||G - I|| <= 1/2)")
                ax.set_ylim(-0.02, 1.02)
            else:
                ax.set_title(f"{name}, m = {m}")
                ax.set_yscale("log")
                ax.set_ylabel("E||f - f_hat||^2 / e_m^2")
            ax.set_xlabel("samples n")
            ax.grid(alpha=0.3, which="both")
    return _save_with_legend(plt, fig, axes, path)


def _latest_rows(
    rows: Sequence[dict[str, Any]], keys: tuple[str, ...], required: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The last of the rows having ``keys`` and ``required`` for each value of ``keys``."""
    latest = {}
    for r in rows:
        if all(k in r for k in keys + required):
            latest[tuple(r[k] for k in keys)] = r
    return list(latest.values())


def _save(plt: Any, fig: Any, path: str) -> str:
    """``path`` written (tight, legends outside the axes included) and the figure closed."""
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _save_with_legend(plt: Any, fig: Any, axes: Any, path: str) -> str:
    """The legend right of the top-right panel, then :func:`_save`."""
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(plt, fig, path)


def _srrw_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The srrw_sampling block rows (the last row of each (graph, method, alpha))."""
    return _latest_rows(rows, ("graph", "method", "alpha"))


def plot_srrw_ratios(rows: Sequence[dict[str, Any]], path: str) -> str:
    """n Var ratio to alpha = 0 against alpha: simulation (+- 2 SE) and theory, per graph.

    Args:
        rows: ``metrics.jsonl`` rows of the srrw_sampling experiment.
        path: the PNG file to write.

    Returns:
        ``path``.
    """
    plt = _pyplot()
    cells = _srrw_rows(rows)
    graphs = list(dict.fromkeys(r["graph"] for r in cells))
    methods = list(dict.fromkeys(r["method"] for r in cells))
    fig, axes = plt.subplots(1, len(graphs), figsize=(4.2 * len(graphs) + 1.4, 3.4), squeeze=False)
    for j, graph in enumerate(graphs):
        ax = axes[0][j]
        for i, method in enumerate(methods):
            chosen = sorted((r for r in cells if r["graph"] == graph and r["method"] == method
                             and r["alpha"] > 0 and "ratio" in r), key=lambda r: r["alpha"])
            color = f"C{i}"
            if chosen:
                ax.errorbar([r["alpha"] for r in chosen], [r["ratio"] for r in chosen],
                            yerr=[2 * r["ratio_se"] for r in chosen], fmt="o", color=color,
                            markersize=4, capsize=2, label=f"{method} (simulated)")
                curve = chosen[0]["curve"]
                ax.plot(curve["alpha"], curve["theory_ratio"], color=color, alpha=0.7,
                        label=f"{method} (theory)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("alpha")
        ax.set_ylabel("n Var(alpha) / n Var(0)")
        ax.set_title(graph)
        ax.grid(alpha=0.3, which="both")
    return _save_with_legend(plt, fig, axes, path)


def plot_srrw_variance(rows: Sequence[dict[str, Any]], path: str) -> str:
    """n Var of the running average against the step n, one line per alpha (dashed: theory).

    One panel per (graph, method).

    Returns:
        ``path``.
    """
    plt = _pyplot()
    cells = _srrw_rows(rows)
    panels = list(dict.fromkeys((r["graph"], r["method"]) for r in cells))
    cols = min(len(panels), 3)
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols + 1.2, 3.2 * nrows), squeeze=False)
    alphas = sorted({r["alpha"] for r in cells})
    colors = {a: f"C{i % 10}" for i, a in enumerate(alphas)}
    for k, (graph, method) in enumerate(panels):
        ax = axes[k // cols][k % cols]
        for r in sorted((r for r in cells if (r["graph"], r["method"]) == (graph, method)),
                        key=lambda r: r["alpha"]):
            rec = r["records"]
            ax.plot(rec["n"], rec["n_var"], color=colors[r["alpha"]], label=f"alpha = {r['alpha']:g}")
            ax.axhline(r["theory"], color=colors[r["alpha"]], linestyle="--", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("step n")
        ax.set_ylabel("n Var(f^T x_n)")
        ax.set_title(f"{graph}, {method}")
        ax.grid(alpha=0.3, which="both")
    for k in range(len(panels), nrows * cols):
        axes[k // cols][k % cols].axis("off")
    return _save_with_legend(plt, fig, axes, path)


def _token_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The srrw_token block rows (the last row of each (regime, alpha))."""
    return _latest_rows(rows, ("regime", "alpha"), required=("records",))


def plot_srrw_token(rows: Sequence[dict[str, Any]], path: str) -> str:
    """SA-SRRW: MSE (solid) and variance (dashed) of theta_n against n, one panel per regime.

    Args:
        rows: ``metrics.jsonl`` rows of the srrw_token experiment.
        path: the PNG file to write.

    Returns:
        ``path``.
    """
    plt = _pyplot()
    cells = _token_rows(rows)
    regimes = list(dict.fromkeys(r["regime"] for r in cells))
    alphas = sorted({r["alpha"] for r in cells})
    colors = {a: f"C{i % 10}" for i, a in enumerate(alphas)}
    fig, axes = plt.subplots(1, len(regimes), figsize=(4.2 * len(regimes) + 1.4, 3.4),
                             squeeze=False)
    for j, regime in enumerate(regimes):
        ax = axes[0][j]
        for r in sorted((r for r in cells if r["regime"] == regime), key=lambda r: r["alpha"]):
            rec = r["records"]
            ax.plot(rec["n"], rec["mse"], color=colors[r["alpha"]], label=f"alpha = {r['alpha']:g}")
            ax.plot(rec["n"], rec["variance"], color=colors[r["alpha"]], linestyle="--",
                    linewidth=0.9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("step n")
        ax.set_ylabel("MSE (solid), variance (dashed)")
        ax.set_title(regime)
        ax.grid(alpha=0.3, which="both")
    return _save_with_legend(plt, fig, axes, path)


def _ntk_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ntk_permutation (k, rule, M) results of the last row of each k."""
    blocks = _latest_rows(rows, ("k",), required=("results",))
    return [r for block in blocks for r in block["results"]]


def plot_ntk_permutation(rows: Sequence[dict[str, Any]], path: str) -> str:
    """Recovery against the ensemble size M: finite ensembles (points) vs the Gaussian process.

    One row of panels per rounding rule: the fraction of the ``2^k - 1`` inputs
    recovered (+- 2 SE between groups; line: predicted) and the probability
    that every input is (line: the joint law; dashed: inputs independent).

    Returns:
        ``path``.
    """
    plt = _pyplot()
    cells = _ntk_rows(rows)
    rules = list(dict.fromkeys(r["rule"] for r in cells))
    ks = sorted({r["k"] for r in cells})
    fig, axes = plt.subplots(len(rules), 2, figsize=(10.0, 3.0 * len(rules)), squeeze=False)
    for i, rule in enumerate(rules):
        for j, k in enumerate(ks):
            chosen = sorted((r for r in cells if r["rule"] == rule and r["k"] == k), key=lambda r: r["M"])
            m = [r["M"] for r in chosen]
            color = f"C{j}"
            ax = axes[i][0]
            ax.errorbar(m, [r["fraction"] for r in chosen],
                        yerr=[2 * (r["fraction_se"] or 0.0) for r in chosen], fmt="o", color=color,
                        markersize=4, capsize=2, label=f"k = {k} (trained)")
            ax.plot(m, [r["predicted_fraction"] for r in chosen], color=color, alpha=0.7,
                    label=f"k = {k} (Gaussian process)")
            ax = axes[i][1]
            ax.plot(m, [r["all_recovered"] for r in chosen], "o", color=color, markersize=4,
                    label=f"k = {k} (trained)")
            if all(r["predicted_all"] is not None for r in chosen):
                ax.plot(m, [r["predicted_all"] for r in chosen], color=color, alpha=0.7,
                        label=f"k = {k} (Gaussian process)")
            ax.plot(m, [r["predicted_all_independent"] for r in chosen], color=color, alpha=0.7,
                    linestyle="--", linewidth=0.9, label=f"k = {k} (inputs independent)")
            ax.set_ylim(-0.03, 1.03)
        for j, label in enumerate(("fraction of inputs recovered", "P(all inputs recovered)")):
            ax = axes[i][j]
            ax.set_xscale("log")
            ax.set_xlabel("ensemble size M")
            ax.set_ylabel(label)
            ax.set_title(f"{rule} rule" + (" (the paper's)" if rule == "sign" else ""))
            ax.grid(alpha=0.3, which="both")
    return _save_with_legend(plt, fig, axes, path)


def plot_rs2(rows: Sequence[dict[str, Any]], path: str) -> str:
    """Test accuracy of every RS2 arm against examples seen and against time.

    ``rows`` are the gathered evaluation rows (``arm``, ``examples``,
    ``time`` = selection + training seconds, ``test_accuracy``).

    Returns:
        ``path``.
    """
    plt = _pyplot()
    arms = list(dict.fromkeys(r["arm"] for r in rows if "arm" in r))
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.0), squeeze=False)
    for i, arm in enumerate(arms):
        chosen = [r for r in rows if r.get("arm") == arm]
        style = dict(color=f"C{i % 10}", label=arm, linewidth=2.0 if arm == "rs2" else 1.2,
                     linestyle="-" if not arm.startswith("rs2_") else ":")
        axes[0][0].plot([r["examples"] for r in chosen], [r["test_accuracy"] for r in chosen], **style)
        axes[0][1].plot([r["time"] for r in chosen], [r["test_accuracy"] for r in chosen], **style)
    for ax, label in zip(axes[0], ("examples seen", "seconds (selection + training)")):
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_title("accuracy vs examples")
    axes[0][1].set_xscale("log")
    axes[0][1].set_title("accuracy vs time")
    return _save_with_legend(plt, fig, axes, path)


def _coreset_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    blocks = [r for r in rows if isinstance(r.get("results"), list)]
    return blocks[-1]["results"] if blocks else []


def plot_coreset_training(rows: Sequence[dict[str, Any]], path: str) -> str:
    """Relative loss gap of coreset-trained models against the coreset size, per problem.

    Points: mean over coresets (+- 2 SE); dashed: the optimiser's gap on the
    full data (only named in the legend when it is far below the coresets').

    Returns:
        ``path``.
    """
    plt = _pyplot()
    cells = _coreset_rows(rows)
    problems = list(dict.fromkeys(r["problem"] for r in cells))
    fig, axes = plt.subplots(1, len(problems), figsize=(5.5 * len(problems), 4.0), squeeze=False)
    for ax, problem in zip(axes[0], problems):
        mine = [r for r in cells if r["problem"] == problem]
        methods = [m for m in dict.fromkeys(r["method"] for r in mine) if m != "full"]
        for j, method in enumerate(methods):
            chosen = sorted((r for r in mine if r["method"] == method), key=lambda r: r["m"])
            ax.errorbar([r["m"] for r in chosen], [r["gap_mean"] for r in chosen],
                        yerr=[2 * (r["gap_se"] or 0.0) for r in chosen], marker="o",
                        markersize=4, capsize=2, color=f"C{j}", label=method)
        floor = min((r["gap_mean"] for r in mine if r["method"] != "full"), default=1.0)
        for r in mine:
            if r["method"] == "full":
                label = f"full data ({r['gap_mean']:.1e})"
                if r["gap_mean"] >= floor / 100:
                    ax.axhline(r["gap_mean"], color="k", linestyle="--", linewidth=0.9, label=label)
                else:  # far below the coresets' gaps: named, not drawn
                    ax.plot([], [], color="k", linestyle="--", linewidth=0.9, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("coreset size m")
        ax.set_ylabel("relative loss gap on the full data")
        ax.set_title(problem)
        ax.grid(alpha=0.3, which="both")
    return _save_with_legend(plt, fig, axes, path)


def _experiment_name(directory: str) -> str | None:
    """``experiment`` from ``directory/config.json``, or None."""
    path = os.path.join(directory, metrics.CONFIG_FILE)
    try:
        with open(path) as f:
            return json.load(f).get("experiment")
    except (OSError, ValueError, AttributeError):
        return None


def plot_experiment(
    rows: Sequence[dict[str, Any]], directory: str, out_dir: str, prefix: str = ""
) -> list[str]:
    """Draws the figures of one experiment's run directory; returns the paths.

    The experiment is read from ``config.json``; the resampling experiment is
    also recognised by its metric keys. Unknown experiments get
    :func:`plot_generic`.
    """
    name = _experiment_name(directory)
    out = lambda stem: os.path.join(out_dir, f"{prefix}{stem}.png")  # noqa: E731
    particles = os.path.join(directory, _PARTICLES_FILE)
    if name == "particle_filter" and rows:
        return [plot_particle_filter(rows, out("error_vs_particles"))]
    if name == "smc_mixture" and rows:
        paths = [plot_smc_mixture(rows, out("errors"))]
        if os.path.exists(particles):
            paths.insert(0, plot_particles(particles, out("particles")))
        return paths
    if name == "fkc_annealing" and rows:
        paths = [plot_fkc(rows, out("errors"))]
        if os.path.exists(particles):
            paths.insert(0, plot_particles(particles, out("particles")))
        return paths
    if name == "lp_coreset" and rows:
        return [
            plot_lp_coreset(
                rows, "distortion", "median distortion eps", out("distortion")
            ),
            plot_lp_coreset(
                rows,
                "regression_error",
                "median relative regression error",
                out("regression_error"),
            ),
        ]
    if name == "dpp_wls" and _dpp_wls_cells(rows):
        return [
            plot_dpp_wls(rows, out("wls_error"), well_conditioned=False),
            plot_dpp_wls(rows, out("well_conditioned"), well_conditioned=True),
        ]
    if name == "srrw_sampling" and _srrw_rows(rows):
        return [
            plot_srrw_ratios(rows, out("variance_ratio")),
            plot_srrw_variance(rows, out("n_var_vs_steps")),
        ]
    if name == "srrw_token" and _token_rows(rows):
        return [plot_srrw_token(rows, out("errors"))]
    if name == "ntk_permutation" and _ntk_rows(rows):
        return [plot_ntk_permutation(rows, out("recovery"))]
    if name == "rs2" and any("arm" in r for r in rows):
        return [plot_rs2(rows, out("accuracy"))]
    if name == "coreset_training" and _coreset_rows(rows):
        return [plot_coreset_training(rows, out("loss_gap"))]
    if is_resampling(rows):
        return [plot_resampling(rows, out("loglik_rmse"))]
    return plot_generic(rows, out_dir, prefix)

#: The columns of every row the training loop writes.
_LOOP_KEYS = ("step", "loss", "grad_norm", "learning_rate")


def training_runs(directory: str) -> dict[str, list[dict[str, Any]]]:
    """The training-loop runs under ``directory`` (one or two levels down), by relative path.

    A run is a ``metrics.jsonl`` whose rows all carry the loop's columns
    (``step``, ``loss``, ``grad_norm``, ``learning_rate``).
    """
    runs = {}
    pattern = [os.path.join(directory, *["*"] * depth, metrics.METRICS_FILE) for depth in (1, 2)]
    for path in sorted(glob.glob(pattern[0]) + glob.glob(pattern[1])):
        rows = metrics.read_jsonl(path)
        if rows and all(all(k in r for k in _LOOP_KEYS) for r in rows):
            runs[os.path.relpath(os.path.dirname(path), directory)] = rows
    return runs


def plot_training(runs: dict[str, Sequence[dict[str, Any]]], path: str) -> str:
    """Loss, gradient norm and learning rate against the step, one line per fit.

    Args:
        runs: ``metrics.jsonl`` rows of each fit of :func:`jaxsampling.train.loop.fit`,
            by name (:func:`training_runs`).
        path: the PNG file to write.

    Returns:
        ``path``.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13.0, 3.6), squeeze=False)
    for i, (name, rows) in enumerate(runs.items()):
        steps = [r["step"] for r in rows]
        style = dict(color=f"C{i % 10}", label=name, marker="." if len(rows) < 3 else None)
        for ax, key in zip(axes[0], ("loss", "grad_norm", "learning_rate")):
            ax.plot(steps, [r[key] for r in rows], **style)
    for ax, key in zip(axes[0], ("mean loss", "mean gradient norm", "learning rate")):
        values = [line.get_ydata() for line in ax.get_lines()]
        if all(min(v) > 0 for v in values if len(v)):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(key)
        ax.grid(alpha=0.3, which="both")
    if len(runs) <= 12:
        return _save_with_legend(plt, fig, axes, path)
    fig.suptitle(f"{len(runs)} fits")  # a legend of each would dwarf the panels
    return _save(plt, fig, path)


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
        paths.extend(plot_experiment(rows, os.path.dirname(path), out_dir, prefix))
        runs = training_runs(os.path.dirname(path))
        if runs:
            paths.append(plot_training(runs, os.path.join(out_dir, f"{prefix}training.png")))
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
