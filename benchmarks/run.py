"""Benchmark runner: ``python -m benchmarks.run --suite=NAME [--quick] [--repeats=K]``.

Runs one suite and writes ``benchmarks/results/NAME.json`` (``NAME.quick.json`` with
``--quick``, so a smoke run never overwrites the real results) with the machine, the
package versions, the date, the timing protocol and the suite's cases.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import json
import os
import pathlib
import platform
import sys
from typing import Any, Callable

import jax

from benchmarks import timing

#: Suite name -> "module:function"; imported lazily so that one suite's dependencies
#: are not needed to run another.
SUITES: dict[str, str] = {
    "dpp": "benchmarks.dpp:run",
    "kmeans": "benchmarks.kmeans:run",
    "leverage": "benchmarks.leverage:run",
    "ntk": "benchmarks.ntk:run",
    "resampling": "benchmarks.resampling:run",
    "smc": "benchmarks.smc:run",
    "walks": "benchmarks.walks:run",
}

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
VERSIONED = (
    "jax", "jaxlib", "numpy", "scipy", "blackjax", "particles", "numba", "dppy",
    "networkx", "scikit-learn", "torch", "torch-cluster", "pecanpy", "graph-walker", "csrgraph",
)


def load_suite(name: str) -> Callable[..., dict[str, Any]]:
    """Imports and returns the ``run`` function of suite ``name``."""
    module_name, func_name = SUITES[name].split(":")
    return getattr(importlib.import_module(module_name), func_name)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """Versions of Python and of the packages the benchmarks use."""
    import jaxsampling

    out: dict[str, str | None] = {"python": platform.python_version()}
    out.update({dist: _version(dist) for dist in VERSIONED})
    out["jaxsampling"] = jaxsampling.__version__
    return out


def machine() -> dict[str, Any]:
    """Description of the machine the benchmark runs on."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "xla_flags": os.environ.get("XLA_FLAGS"),
    }


def results_path(suite: str, quick: bool) -> pathlib.Path:
    """Where suite results are written."""
    return RESULTS_DIR / (f"{suite}.quick.json" if quick else f"{suite}.json")


def main(argv: list[str] | None = None) -> int:
    """Parses the command line, runs the suite and writes its results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", required=True, choices=sorted(SUITES))
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: small sizes, few repeats"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed repeats per implementation"
    )
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be >= 1")

    run_suite = load_suite(args.suite)
    started = datetime.datetime.now(datetime.timezone.utc)
    suite_results = run_suite(quick=args.quick, repeats=args.repeats)
    report = {
        "suite": args.suite,
        "quick": args.quick,
        "date": started.isoformat(timespec="seconds"),
        "duration_s": round(
            (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(), 1
        ),
        "command": " ".join(["python -m benchmarks.run", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "versions": versions(),
        "protocol": timing.PROTOCOL,
        **suite_results,
    }
    path = results_path(args.suite, args.quick)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
