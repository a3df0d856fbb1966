"""The quick start's summary: one headline figure per experiment, checked against theory.

Each experiment's headline is the number that says whether it did what it is
for (the guided filter beats the bootstrap filter, Lewis coresets beat
uniform ones, RS2 beats static subsets, ...), with the value theory or the
paper leads us to expect and whether the run matches it. The checks are
deliberately coarse (the quick start's runs are small): a failed line means
something is off, not that a paper is refuted.

Example:
    >>> rows = headlines({"srrw_token": {"results": [
    ...     {"regime": "beta_slower", "alpha": 0.0, "variance_ratio": 1.0},
    ...     {"regime": "beta_slower", "alpha": 5.0, "variance_ratio": 0.04}]}})
    >>> rows[0]["matches"]
    'yes'
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["HEADLINES", "headlines"]


def _find(rows: list[dict], **where: Any) -> dict:
    for row in rows:
        if all(row.get(k) == v for k, v in where.items()):
            return row
    raise KeyError(f"no result row with {where}")


def _last(rows: list[dict], by: str, **where: Any) -> dict:
    """The matching row with the largest ``by`` (a size: m, n, num_particles)."""
    matches = [r for r in rows if all(r.get(k) == v for k, v in where.items())]
    if not matches:
        raise KeyError(f"no result row with {where}")
    return max(matches, key=lambda r: r[by])


def _line(headline: str, value: str, expected: str, ok: bool) -> dict:
    return {"headline": headline, "value": value, "expected": expected,
            "matches": "yes" if ok else "NO"}


def _resampling(s: dict) -> dict:
    always = [r for r in s["results"] if r["mode"] == "always"]
    adaptive = [r for r in s["results"] if r["mode"] == "adaptive"]
    fraction = adaptive[0]["mean_resampling_steps"] / always[0]["mean_resampling_steps"]
    worst = max(r["rmse"] for r in s["results"])
    best = min(r["rmse"] for r in s["results"])
    return _line(
        "log-lik RMSE spread across schemes (max / min); adaptive resamples",
        f"{worst / best:.2f}; {fraction:.0%} of steps",
        "same order (< 2.5); < 100%",
        worst / best < 2.5 and fraction < 1.0,
    )


def _particle_filter(s: dict) -> dict:
    guided = _last(s["results"], "num_particles", filter="guided")
    boot = _find(s["results"], filter="bootstrap", num_particles=guided["num_particles"])
    ratio = guided["rmse"] / boot["rmse"]
    return _line(
        f"guided / bootstrap log-lik RMSE, N = {guided['num_particles']}",
        f"{ratio:.2f}", "< 1 (optimal proposal)", ratio < 1.0,
    )


def _smc_mixture(s: dict) -> dict:
    row = _find(s["results"], variant="random_walk")
    return _line(
        "tempered SMC (random walk): mode weights' total variation",
        f"{row['mode_weight_tv']:.3f}", "< 0.1", row["mode_weight_tv"] < 0.1,
    )


def _fkc(s: dict) -> dict:
    task = s["results"][0]["task"]
    fkc = _find(s["results"], task=task, variant="fkc")
    plain = _find(s["results"], task=task, variant="uncorrected")
    return _line(
        f"FK correctors vs uncorrected ({task}): mode weights' TV",
        f"{fkc['mode_weight_tv']:.3f} vs {plain['mode_weight_tv']:.3f}",
        "corrected < uncorrected", fkc["mode_weight_tv"] < plain["mode_weight_tv"],
    )


def _lp_coreset(s: dict) -> dict:
    p = max(r["p"] for r in s["results"])
    lev = _last(s["results"], "m", p=p, method="leverage")
    uni = _find(s["results"], p=p, method="uniform", m=lev["m"])
    return _line(
        f"l_{p:g} subspace distortion, leverage vs uniform, m = {lev['m']}",
        f"{lev['distortion']:.3f} vs {uni['distortion']:.3f}",
        "leverage < uniform", lev["distortion"] < uni["distortion"],
    )


def _dpp_wls(s: dict) -> dict:
    row = _last(s["results"], "n", method="repeated_dpp")
    return _line(
        f"repeated-DPP WLS error / best approximation, n = {row['n']}, m = {row['m']}",
        f"{row['median_ratio']:.3f} (median)", "near-optimal: < 1.5",
        row["median_ratio"] < 1.5,
    )


def _srrw_sampling(s: dict) -> dict:
    rows = [r for r in s["results"] if r["method"] == "srrw"]
    row = max(rows, key=lambda r: r["alpha"])
    rel = abs(row["ratio"] / row["theory_ratio"] - 1.0)
    return _line(
        f"SRRW n Var ratio alpha = {row['alpha']:g} / alpha = 0 vs V(alpha) theory",
        f"{row['ratio']:.4f} vs {row['theory_ratio']:.4f}", "within 25%", rel < 0.25,
    )


def _srrw_token(s: dict) -> dict:
    rows = [r for r in s["results"] if r["regime"] == "beta_slower"]
    row = max(rows, key=lambda r: r["alpha"])
    return _line(
        f"SA-SRRW variance ratio alpha = {row['alpha']:g} (beta = o(gamma))",
        f"{row['variance_ratio']:.3f}", "< 1 (repulsion lowers variance)",
        row["variance_ratio"] < 1.0,
    )


def _ntk(s: dict) -> dict:
    rows = [r for r in s["results"] if r["rule"] == "threshold"]
    worst = max(rows, key=lambda r: abs(r["fraction"] - r["predicted_fraction"]))
    gap = abs(worst["fraction"] - worst["predicted_fraction"])
    return _line(
        "NTK ensembles, threshold rule: recovered fraction vs Gaussian process (worst M)",
        f"{worst['fraction']:.3f} vs {worst['predicted_fraction']:.3f} (M = {worst['M']})",
        "within 0.05", gap < 0.05,
    )


def _rs2(s: dict) -> dict:
    rows = {r["arm"]: r for r in s["results"]}
    rs2 = rows["rs2"]
    static = [r for name, r in rows.items() if name in ("uniform", "kmeans", "leverage", "dpp")]
    best = max(static, key=lambda r: r["final_accuracy"])
    tag = f"{100 * s['target_accuracies'][0]:g}"
    ratios = [r[f"time_ratio_{tag}"] for r in static]
    finite = sorted(x for x in ratios if math.isfinite(x))
    never = len(ratios) - len(finite)
    spread = f"{finite[0]:.3g}-{finite[-1]:.3g}x" if finite else ""
    reached = ", ".join(p for p in (spread, f"{never} never" if never else "") if p)
    return _line(
        f"RS2 vs best static subset ({best['arm']}): test accuracy; static arms' time to {tag}%"
        " / RS2's",
        f"{rs2['final_accuracy']:.3f} vs {best['final_accuracy']:.3f}; {reached}",
        "RS2 higher; ratios > 1",
        rs2["final_accuracy"] > best["final_accuracy"]
        and all(x > 1.0 or math.isnan(x) for x in ratios),
    )


def _coreset_training(s: dict) -> dict:
    lewis = _last(s["results"], "m", problem="l1", method="lewis")
    uni = _find(s["results"], problem="l1", method="uniform", m=lewis["m"])
    return _line(
        f"l1 regression trained on m = {lewis['m']} rows: loss gap, Lewis vs uniform",
        f"{lewis['gap_mean']:.4f} vs {uni['gap_mean']:.4f}",
        "Lewis < uniform", lewis["gap_mean"] < uni["gap_mean"],
    )


HEADLINES: dict[str, Callable[[dict], dict]] = {
    "resampling": _resampling,
    "particle_filter": _particle_filter,
    "smc_mixture": _smc_mixture,
    "fkc_annealing": _fkc,
    "lp_coreset": _lp_coreset,
    "dpp_wls": _dpp_wls,
    "srrw_sampling": _srrw_sampling,
    "srrw_token": _srrw_token,
    "ntk_permutation": _ntk,
    "rs2": _rs2,
    "coreset_training": _coreset_training,
}


def headlines(summaries: dict[str, dict]) -> list[dict]:
    """One row per experiment of ``summaries`` (name -> summary) that has a headline.

    Returns:
        Rows with ``experiment``, ``headline``, ``value``, ``expected`` and
        ``matches`` (``"yes"`` / ``"NO"``; ``"n/a"`` when the run lacks the
        rows the headline needs, e.g. a tiny config).
    """
    rows = []
    for name, summary in summaries.items():
        if name not in HEADLINES:
            continue
        try:
            row = HEADLINES[name](summary)
        except (KeyError, IndexError, ValueError, ZeroDivisionError):
            row = {"headline": "(not in this run's results)", "value": "-",
                   "expected": "-", "matches": "n/a"}
        rows.append({"experiment": name, **row})
    return rows
