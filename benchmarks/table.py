"""Markdown tables from the benchmark results: ``python -m benchmarks.table``.

Reads every ``benchmarks/results/*.json`` (the ``*.quick.json`` smoke results only
with ``--quick``) and prints one table per suite, for the README.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
README = RESULTS_DIR.parent.parent / "README.md"
BEGIN, END = "<!-- BENCHMARK TABLE -->", "<!-- /BENCHMARK TABLE -->"
OURS = "jaxsampling"


def result_files(quick: bool = False) -> list[pathlib.Path]:
    """The results files to tabulate, sorted by name."""
    files = sorted(RESULTS_DIR.glob("*.json"))
    is_quick = [f.name.endswith(".quick.json") for f in files]
    return [f for f, q in zip(files, is_quick) if q == quick]


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _time(impl: dict[str, Any] | None, field: str) -> str:
    """A time in ms, "failed" for an implementation that raised, "-" if absent."""
    if impl is None:
        return "-"
    if "error" in impl:
        return "failed"
    return _ms(impl.get(field))


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _error(impl: dict[str, Any] | None) -> str:
    """An implementation's accuracy value ("-" if not measured)."""
    if impl is None:
        return "-"
    if "error" in impl:
        return "failed"
    accuracy = impl.get("accuracy")
    return "-" if accuracy is None else f"{accuracy['value']:.3g}"


def _metric(impls: dict[str, dict[str, Any]]) -> str:
    """The case's accuracy metric and its number of runs, from any implementation."""
    for impl in impls.values():
        accuracy = impl.get("accuracy")
        if accuracy is not None:
            return f"{accuracy['metric']} ({accuracy['runs']} runs)"
    return "-"


def _implementations(cases: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """All implementation names in the suite, and the anchors among them."""
    names: list[str] = []
    for case in cases:
        for name in case["implementations"]:
            if name not in names:
                names.append(name)
    if OURS in names:
        names.remove(OURS)
        names.insert(0, OURS)
    return names, [n for n in names if n != OURS]


def _baseline_median(case: dict[str, Any]) -> float | None:
    """The median time of a case's baseline (one of its implementations, or given)."""
    if "baseline_median_s" in case:
        return case["baseline_median_s"]
    return case["implementations"].get(case.get("baseline"), {}).get("median_s")


def long_table(report: dict[str, Any]) -> str:
    """One row per (case, implementation): for suites whose cases name a baseline.

    ``speed vs baseline`` is the baseline's median over the row's median (above 1:
    faster than the baseline), so every row reads the same way whatever the case.
    """
    header = [
        "case", "implementation", "median ms", "compile ms", "baseline",
        "speed vs baseline", "error", "notes",
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---", "---:", "---:", "---", "---:", "---:", "---"])
        + "|",
    ]
    failures: list[str] = []
    for case in report["cases"]:
        base = _baseline_median(case)
        for name, impl in case["implementations"].items():
            if "error" in impl:
                failures.append(f"{case['name']}, {name}: {impl['error']}")
            ratio = None
            if base is not None and impl.get("median_s"):
                ratio = base / impl["median_s"]
            row = [
                case["name"],
                name,
                _time(impl, "median_s"),
                _time(impl, "compile_s"),
                str(case.get("baseline") or "-"),
                _ratio(ratio),
                _error(impl),
                impl.get("note", ""),
            ]
            lines.append("| " + " | ".join(row) + " |")
    versions = report["versions"]
    machine = report["machine"]
    title = f"### {report['suite']}" + (" (quick smoke run)" if report.get("quick") else "")
    # Suites whose anchors are other packages name them in ``anchor_packages``.
    anchors = "".join(
        f", {pkg} {versions.get(pkg)}" for pkg in report.get("anchor_packages", [])
    )
    about = (
        f"{report['date']}, {machine['platform']}, {machine['cpu_count']} CPUs, "
        f"JAX {versions.get('jax')} on {machine['jax_backend']}, numpy "
        f"{versions.get('numpy')}, scipy {versions.get('scipy')}{anchors}. Median per "
        "call; speed vs baseline = baseline median / row median (> 1: faster than the "
        "baseline); error = each row's accuracy metric (see the notes)."
    )
    notes = "".join(f"\n\nNote: {n}" for n in report.get("notes", []))
    failed = "".join(f"\n- {f}" for f in failures)
    failed = f"\n\nFailures (the implementation raised):{failed}" if failed else ""
    goals = report.get("goals") or []
    goal_lines = ""
    if goals:
        rows = [
            f"| {g['goal']} | {g['measured']} | {'yes' if g['met'] else 'no'} |"
            for g in goals
        ]
        goal_lines = "\n\n| goal | measured | met? |\n|---|---|---|\n" + "\n".join(rows)
    return f"{title}\n\n{about}{notes}\n\n" + "\n".join(lines) + failed + goal_lines


def suite_table(report: dict[str, Any]) -> str:
    """Markdown table (with a short header) of one suite's results."""
    cases = report["cases"]
    if any("baseline" in case for case in cases):
        return long_table(report)
    names, anchors = _implementations(cases)
    header = ["case"]
    header += [f"{n} ms" for n in names]
    header += [f"vs {a}" for a in anchors]
    header += [f"{n} compile ms" for n in names]
    # Suites that measure accuracy (e.g. smc) get its columns; others are unchanged.
    has_accuracy = any(
        "accuracy" in impl for case in cases for impl in case["implementations"].values()
    )
    has_equal_error = any(case.get("equal_error_ratios") for case in cases)
    if has_equal_error:
        header += [f"vs {a} at equal error" for a in anchors]
    if has_accuracy:
        header += [f"{n} error" for n in names] + ["error metric"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    failures: list[str] = []
    for case in cases:
        impls = case["implementations"]
        row = [case["name"]]
        row += [_time(impls.get(n), "median_s") for n in names]
        row += [_ratio(case["ratios"].get(a)) for a in anchors]
        row += [_time(impls.get(n), "compile_s") for n in names]
        if has_equal_error:
            row += [_ratio(case.get("equal_error_ratios", {}).get(a)) for a in anchors]
        if has_accuracy:
            row += [_error(impls.get(n)) for n in names]
            row += [_metric(impls)]
        lines.append("| " + " | ".join(row) + " |")
        for n in names:
            if "error" in impls.get(n, {}):
                failures.append(f"{case['name']}, {n}: {impls[n]['error']}")

    versions = report["versions"]
    machine = report["machine"]
    title = f"### {report['suite']}" + (" (quick smoke run)" if report.get("quick") else "")
    about = (
        f"{report['date']}, {machine['platform']}, {machine['cpu_count']} CPUs, "
        f"JAX {versions.get('jax')} on {machine['jax_backend']}; "
        + ", ".join(f"{a} {versions.get(a)}" for a in anchors)
        + ". Median per call; ratio = anchor median / jaxsampling median "
        "(> 1: jaxsampling faster)."
    )
    if has_equal_error:
        about += (
            " At equal error: the ratio times (anchor error / jaxsampling error)^2, "
            "i.e. assuming error^2 ~ 1/N and time ~ N."
        )
    notes = "".join(f"\n\nNote: {n}" for n in report.get("notes", []))
    failed = "".join(f"\n- {f}" for f in failures)
    failed = f"\n\nAnchor failures (the anchor raised on this workload):{failed}" if failed else ""
    return f"{title}\n\n{about}{notes}\n\n" + "\n".join(lines) + failed


def main(argv: list[str] | None = None) -> int:
    """Prints the Markdown tables of every results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tabulate the *.quick.json smoke results"
    )
    parser.add_argument(
        "--write-readme",
        action="store_true",
        help=f"replace the README's text between {BEGIN} and {END} with the tables",
    )
    args = parser.parse_args(argv)
    files = result_files(args.quick)
    if not files:
        print(f"no results in {RESULTS_DIR}", file=sys.stderr)
        return 1
    tables = "\n\n".join(suite_table(json.loads(f.read_text())) for f in files)
    if args.write_readme:
        text = README.read_text()
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        README.write_text(f"{head}{BEGIN}\n{tables}\n{END}{tail}")
    else:
        print(tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
