"""Leverage suite: exact and sketched leverage scores, l_1 Lewis weights.

Cases (every implementation of a case gets the same float64 matrix ``A``, with
i.i.d. Student-t entries, ``df = DF``, drawn once by numpy with a fixed seed):

* ``exact``: the leverage scores ``tau_i = ||Q_i||^2`` of ``A``
  (``EXACT_N x EXACT_D``). jaxsampling (``jax.jit(leverage.leverage_scores)``,
  Cholesky-QR with an explicit inverse, no triangular solve over the rows)
  against numpy (``numpy.linalg.qr(A, mode="reduced")`` then the row sums of
  ``Q^2``) and scipy (``scipy.linalg.qr(A, mode="economic")``, same row sums),
  each anchor timed with the BLAS threads numpy / scipy start with and with one
  thread (see :class:`BlasThreads`). ``ratios``: anchor median / jaxsampling
  median, and ``best_anchor_ratio`` against the fastest of them.
* ``lewis``: l_1 Lewis weights of the same matrix to ``LEWIS_TOL``
  (``jax.jit(lambda A: leverage.lewis_weights(A, p=1.0, tol=LEWIS_TOL))``):
  iterations, final residual, and the time as a multiple of the exact case's
  jaxsampling median.
* ``sketch d=...``: at ``SWEEP_N`` rows and each ``d`` of ``SWEEP_DS``, the exact
  jaxsampling scores against ``leverage.approximate_leverage_scores`` with each
  sketch of ``SKETCHES`` at ``eps = SKETCH_EPS`` (library default sizes).
  ``ratios``: exact median / sketched median (above 1: the sketch is faster);
  the crossover is the smallest ``d`` at which the default sketch beats exact.

Accuracy: every implementation's ``max_i |tau_i / tau_ref_i - 1|`` against a
float64 reference from numpy's SVD (``U`` of ``numpy.linalg.svd(A,
full_matrices=False)``, row sums of ``U^2``), computed once per matrix outside
the timing. Times are per call after compilation and warm-up
(``benchmarks.timing``); compile time is reported apart.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from benchmarks import timing
from benchmarks.machine import BlasThreads, blas_note, load_notes, print_record, timed

OURS = "jaxsampling"
SEED = 20240601
#: Degrees of freedom of the Student-t entries of A (heavy tails: many rows of
#: leverage close to 1, which is where CountSketch collisions hurt).
DF = 1.5

EXACT_N, EXACT_D = 200_000, 50
QUICK_EXACT_N, QUICK_EXACT_D = 4_000, 10
LEWIS_P = 1.0
LEWIS_TOL = 1e-6
SWEEP_N = 100_000
SWEEP_DS = (50, 100, 200, 500)
QUICK_SWEEP_N = 4_000
QUICK_SWEEP_DS = (10, 40)
#: Sketches timed in the sweep; the first is the library default.
SKETCHES = ("sparse", "countsketch", "srht")
SKETCH_EPS = 0.5
QUICK_REPEATS = 3

#: The goals of the issue, checked on the results (see :func:`goals`).
GOAL_EXACT_SPEEDUP = 5.0
GOAL_SKETCH_SPEEDUP = 3.0
GOAL_SKETCH_ERROR = 0.5
GOAL_SKETCH_D = 500
GOAL_LEWIS_ITERATIONS = 25
GOAL_LEWIS_COST = 25.0


def _slow_repeats(repeats: int) -> int:
    """Timed repeats for an implementation that takes about a second per call."""
    return max(3, repeats // 3)


def _sweep_repeats(repeats: int) -> int:
    """Timed repeats in the sketch sweep (up to a few seconds per call)."""
    return max(3, repeats // 4)


WORKLOAD = (
    f"A: float64, i.i.d. Student-t(df={DF:g}) entries drawn by numpy "
    "(np.random.default_rng(seed).standard_t), one matrix per shape; jax_enable_x64 "
    "on. Exact scores: jax.jit(leverage.leverage_scores) (method='auto': "
    "column-equilibrated Cholesky-QR, explicit inverse, one GEMM; refined or "
    "rank-revealing only for ill-conditioned A) against numpy.linalg.qr(A, "
    "mode='reduced') and scipy.linalg.qr(A, mode='economic', check_finite=False), "
    "then einsum('ij,ij->i', Q, Q). Sketched: jax.jit of "
    "leverage.approximate_leverage_scores(key, A, sketch=..., eps=0.5) with the "
    "library's default sizes. Lewis: jax.jit of leverage.lewis_weights(A, p=1.0, "
    "tol=1e-6). Accuracy: max_i |tau_i / tau_ref_i - 1| against the row sums of "
    "U^2 of numpy.linalg.svd(A, full_matrices=False) in float64."
)


# ----------------------------------------------------------------------------
# Workload, reference and implementations.
# ----------------------------------------------------------------------------


def make_matrix(n: int, d: int) -> np.ndarray:
    """Student-t(DF) float64 entries, seed fixed per shape."""
    rng = np.random.default_rng([SEED, n, d])
    return rng.standard_t(DF, size=(n, d))


def reference_scores(A: np.ndarray) -> np.ndarray:
    """Row sums of ``U^2`` from numpy's float64 SVD: the accuracy reference."""
    U, _, _ = np.linalg.svd(A, full_matrices=False)
    return np.einsum("ij,ij->i", U, U)


def numpy_qr_scores(A: np.ndarray) -> np.ndarray:
    """``numpy.linalg.qr`` (reduced, Householder, LAPACK) then row sums of ``Q^2``."""
    Q = np.linalg.qr(A, mode="reduced")[0]
    return np.einsum("ij,ij->i", Q, Q)


def scipy_qr_scores(A: np.ndarray) -> np.ndarray:
    """``scipy.linalg.qr`` (economic, LAPACK) then row sums of ``Q^2``."""
    Q = scipy.linalg.qr(A, mode="economic", check_finite=False)[0]
    return np.einsum("ij,ij->i", Q, Q)


def max_relative_error(scores: Any, reference: np.ndarray) -> float:
    """``max_i |scores_i / reference_i - 1|``."""
    scores = np.asarray(scores, np.float64)
    return float(np.max(np.abs(scores / reference - 1.0)))


def _score_check(n: int) -> Callable[[Any], None]:
    def check(out: Any) -> None:
        arr = np.asarray(out)
        if arr.shape != (n,):
            raise ValueError(f"output shape {arr.shape}, expected ({n},)")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{int((~np.isfinite(arr)).sum())} non-finite scores")

    return check


def _accuracy(scores: Any, reference: np.ndarray) -> dict[str, Any]:
    scores = np.asarray(scores, np.float64)
    ratio = scores / reference
    return {
        "metric": "max relative error vs SVD",
        "value": max_relative_error(scores, reference),
        "median_relative_error": float(np.median(np.abs(ratio - 1.0))),
        "sum": float(scores.sum()),
        "runs": 1,
    }


# ----------------------------------------------------------------------------
# Cases.
# ----------------------------------------------------------------------------


def exact_case(
    leverage: Any, blas: BlasThreads, n: int, d: int, repeats: int
) -> dict[str, Any]:
    """Exact scores: jaxsampling against numpy and scipy QR (default and 1 thread)."""
    name = f"exact n={n} d={d}"
    print(f"[leverage] {name}", flush=True)
    A = make_matrix(n, d)
    reference = reference_scores(A)
    check = _score_check(n)
    results: dict[str, dict[str, Any]] = {}

    record, out = timed(
        "jax", leverage.leverage_scores, (jnp.asarray(A),), repeats=repeats,
        warmup=timing.DEFAULT_WARMUP, check=check,
    )
    record["accuracy"] = _accuracy(out, reference)
    results[OURS] = record
    print_record(OURS, record)

    default_threads = blas.info()
    anchors = (("numpy", numpy_qr_scores), ("scipy", scipy_qr_scores))
    for label, fn in anchors:
        for threads in (None, 1):
            impl = label if threads is None else f"{label} (1 thread)"
            limit = contextlib.nullcontext() if threads is None else blas.limit(threads)
            try:
                with limit:
                    record, out = timed(
                        "python", fn, (A,), repeats=_slow_repeats(repeats), warmup=1,
                        check=check,
                    )
                    record["blas_threads"] = [
                        lib.get("num_threads") for lib in blas.info()["libraries"]
                    ]
            except Exception as err:  # an anchor's failure is a result
                record = {"error": f"{type(err).__name__}: {err}"}
            else:
                record["accuracy"] = _accuracy(out, reference)
            results[impl] = record
            print_record(impl, record)

    ours = results[OURS]["median_s"]
    ratios = {
        impl: rec["median_s"] / ours
        for impl, rec in results.items()
        if impl != OURS and "median_s" in rec
    }
    best = min(ratios, key=ratios.get) if ratios else None
    for impl, rec in results.items():
        if "blas_threads" in rec:
            threads = "/".join(str(t) for t in rec["blas_threads"])
            rec["note"] = f"BLAS threads {threads}"
    return {
        "name": name,
        "workload": (
            f"exact leverage scores of one {n} x {d} float64 Student-t({DF:g}) matrix; "
            "numpy / scipy QR with the BLAS threads they start with, and with 1 thread "
            "(the faster is the fair comparison)"
        ),
        "baseline": best,
        "implementations": results,
        "ratios": ratios,
        "best_anchor": best,
        "best_anchor_ratio": ratios.get(best) if best else None,
        "blas_at_start": default_threads,
    }


def lewis_case(
    leverage: Any, n: int, d: int, exact_median_s: float, repeats: int
) -> dict[str, Any]:
    """l_1 Lewis weights to LEWIS_TOL: iterations and cost in exact-leverage units."""
    name = f"lewis p=1 n={n} d={d}"
    print(f"[leverage] {name}", flush=True)
    A = jnp.asarray(make_matrix(n, d))

    def fn(A: jax.Array) -> tuple[jax.Array, Any]:
        return leverage.lewis_weights(A, p=LEWIS_P, tol=LEWIS_TOL)

    def check(out: Any) -> None:
        w, info = out
        if not bool(info.converged):
            raise ValueError(f"not converged: residual {float(info.residual):.3g}")
        if not np.all(np.isfinite(np.asarray(w))):
            raise ValueError("non-finite Lewis weights")

    record, (w, info) = timed(
        "jax", fn, (A,), repeats=_slow_repeats(repeats), warmup=1, check=check
    )
    w = np.asarray(w)
    record["accuracy"] = {
        "metric": "fixed-point residual max_i |log(T(w)_i / w_i)|",
        "value": float(info.residual),
        "runs": 1,
    }
    record["iterations"] = int(info.iterations)
    record["converged"] = bool(info.converged)
    record["sum_weights"] = float(w.sum())
    cost = record["median_s"] / exact_median_s
    record["cost_vs_exact"] = cost
    record["note"] = (
        f"{int(info.iterations)} iterations, residual {float(info.residual):.2g}, "
        f"{cost:.1f}x the exact time"
    )
    print_record(OURS, record)
    print(f"    {record['note']}", flush=True)
    return {
        "name": name,
        "workload": (
            f"l_1 Lewis weights (leverage.lewis_weights, method='auto' = damped "
            f"fixed point, tol={LEWIS_TOL:g}) of the exact case's {n} x {d} matrix; "
            "cost_vs_exact = median / the exact case's jaxsampling median"
        ),
        "baseline": "exact (jaxsampling)",
        "baseline_median_s": exact_median_s,
        "implementations": {OURS: record},
        "ratios": {},
        "cost_vs_exact": cost,
        "iterations": int(info.iterations),
    }


def sketch_case(leverage: Any, n: int, d: int, repeats: int) -> dict[str, Any]:
    """Exact against sketched scores at one ``d``."""
    name = f"sketch n={n} d={d}"
    print(f"[leverage] {name}", flush=True)
    A_np = make_matrix(n, d)
    reference = reference_scores(A_np)
    A = jnp.asarray(A_np)
    del A_np
    check = _score_check(n)
    key = jax.random.key(SEED)
    results: dict[str, dict[str, Any]] = {}
    sweep_repeats = _sweep_repeats(repeats)

    record, out = timed(
        "jax", leverage.leverage_scores, (A,), repeats=sweep_repeats, warmup=1,
        check=check,
    )
    record["accuracy"] = _accuracy(out, reference)
    results["exact"] = record
    print_record("exact", record)

    for sketch in SKETCHES:
        def fn(key: jax.Array, A: jax.Array, sketch: str = sketch) -> jax.Array:
            return leverage.approximate_leverage_scores(
                key, A, sketch=sketch, eps=SKETCH_EPS
            )

        record, out = timed(
            "jax", fn, (key, A), repeats=sweep_repeats, warmup=1, check=check
        )
        record["accuracy"] = _accuracy(out, reference)
        results[sketch] = record
        print_record(sketch, record)
    sizes = _default_sizes(leverage, n, d)
    size_note = f"s={sizes['sketch_size']}, " + (
        "no JL" if sizes["jl_dim"] >= d else f"k={sizes['jl_dim']}"
    )
    for sketch in SKETCHES:
        results[sketch]["note"] = size_note + (
            f", {sizes['sparse_nnz_per_row']} per row" if sketch == "sparse" else ""
        )

    exact = results["exact"]["median_s"]
    ratios = {s: exact / results[s]["median_s"] for s in SKETCHES}
    no_jl = " (no JL map)" if sizes["jl_dim"] >= d else ""
    return {
        "name": name,
        "workload": (
            f"one {n} x {d} float64 Student-t({DF:g}) matrix; exact = "
            "jax.jit(leverage.leverage_scores); sketches = "
            f"approximate_leverage_scores(key, A, sketch=..., eps={SKETCH_EPS}) "
            f"with the default sizes (sketch rows s = {sizes['sketch_size']}, "
            f"JL dim k = {sizes['jl_dim']}{no_jl}); "
            "ratio = exact median / sketched median"
        ),
        "baseline": "exact",
        "d": d,
        "sizes": sizes,
        "implementations": results,
        "ratios": ratios,
    }


def _default_sizes(leverage: Any, n: int, d: int) -> dict[str, Any]:
    """The sketch rows and JL dimension the library picks at SKETCH_EPS."""
    sketch_size, jl_dim = leverage.sketch.default_sizes(n, d, SKETCH_EPS)
    return {
        "sketch_size": sketch_size,
        "jl_dim": jl_dim,
        "sparse_nnz_per_row": leverage.sketch.NNZ_PER_ROW,
    }


# ----------------------------------------------------------------------------
# Goals and the suite.
# ----------------------------------------------------------------------------


def goals(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's goals, checked on the measured cases."""
    nan = float("nan")
    out: list[dict[str, Any]] = []
    exact = next(c for c in cases if c["name"].startswith("exact"))
    ours = exact["implementations"][OURS]["accuracy"]["value"]
    best = exact["best_anchor"]
    best_record = exact["implementations"].get(best, {})
    best_error = best_record.get("accuracy", {}).get("value", nan)
    ratio = exact["best_anchor_ratio"]
    out.append(
        {
            "goal": (
                f"exact scores ({exact['name'][6:]}) at least {GOAL_EXACT_SPEEDUP:g}x "
                "faster than numpy QR at equal accuracy"
            ),
            "measured": (
                f"{exact['ratios'].get('numpy', nan):.1f}x numpy QR, "
                f"{ratio:.1f}x the fastest anchor ({best}); max rel. error "
                f"{ours:.1e} vs {best_error:.1e}"
            ),
            "met": bool(ratio is not None and ratio >= GOAL_EXACT_SPEEDUP),
        }
    )
    sweep = [c for c in cases if c["name"].startswith("sketch")]
    default = SKETCHES[0]
    if sweep:
        # (d, sketch, exact / sketched, max relative error) at the goal's d.
        at_goal = [
            (c["d"], s, c["ratios"][s], c["implementations"][s]["accuracy"]["value"])
            for c in sweep
            for s in SKETCHES
            if c["d"] == GOAL_SKETCH_D
        ]
        good = [
            w
            for w in at_goal
            if w[2] >= GOAL_SKETCH_SPEEDUP and w[3] <= GOAL_SKETCH_ERROR
        ]
        shown = None
        if at_goal:
            shown = max(at_goal, key=lambda w: (w[3] <= GOAL_SKETCH_ERROR, w[2]))
        out.append(
            {
                "goal": (
                    f"sketched scores at d = {GOAL_SKETCH_D} at least "
                    f"{GOAL_SKETCH_SPEEDUP:g}x faster than exact with max rel. error "
                    f"<= {GOAL_SKETCH_ERROR:g}"
                ),
                "measured": (
                    f"{shown[1]}: {shown[2]:.2f}x exact, max rel. error {shown[3]:.3g}"
                    if shown
                    else f"d = {GOAL_SKETCH_D} not in this run"
                ),
                "met": bool(good),
            }
        )
        faster = [c["d"] for c in sweep if c["ratios"][default] > 1.0]
        steps = ", ".join(f"d={c['d']}: {c['ratios'][default]:.2f}x" for c in sweep)
        out.append(
            {
                "goal": "report the crossover (the smallest d where the default "
                "sketch wins)",
                "measured": steps
                + (f"; crossover at d = {min(faster)}" if faster else "; no crossover"),
                "met": True,
                "crossover_d": min(faster) if faster else None,
            }
        )
    lewis = next((c for c in cases if c["name"].startswith("lewis")), None)
    if lewis is not None:
        it, cost = lewis["iterations"], lewis["cost_vs_exact"]
        out.append(
            {
                "goal": (
                    f"l_1 Lewis weights to {LEWIS_TOL:g} in at most "
                    f"{GOAL_LEWIS_ITERATIONS} iterations and at most "
                    f"{GOAL_LEWIS_COST:g}x the exact-leverage time"
                ),
                "measured": f"{it} iterations, {cost:.1f}x",
                "met": bool(it <= GOAL_LEWIS_ITERATIONS and cost <= GOAL_LEWIS_COST),
            }
        )
    return out


def run(quick: bool = False, repeats: int | None = None) -> dict[str, Any]:
    """Runs the leverage suite.

    Args:
      quick: Smoke mode: small matrices, few repeats.
      repeats: Timed repeats of the fast implementations; the slow ones get
        fewer (``_slow_repeats``, ``_sweep_repeats``). Default depends on ``quick``.

    Returns:
      The suite's results: ``workload``, ``notes``, ``blas``, ``cases`` and ``goals``.
    """
    jax.config.update("jax_enable_x64", True)
    from jaxsampling.kernels import leverage

    if repeats is None:
        repeats = QUICK_REPEATS if quick else timing.DEFAULT_REPEATS
    exact_n, exact_d = (QUICK_EXACT_N, QUICK_EXACT_D) if quick else (EXACT_N, EXACT_D)
    sweep_n = QUICK_SWEEP_N if quick else SWEEP_N
    sweep_ds = QUICK_SWEEP_DS if quick else SWEEP_DS

    blas = BlasThreads()
    blas_info = blas.info()
    print(f"[leverage] BLAS: {blas_info}", flush=True)
    cases = [exact_case(leverage, blas, exact_n, exact_d, repeats)]
    exact_median = cases[0]["implementations"][OURS]["median_s"]
    cases.append(lewis_case(leverage, exact_n, exact_d, exact_median, repeats))
    for d in sweep_ds:
        cases.append(sketch_case(leverage, sweep_n, d, repeats))

    notes = [
        blas_note(blas_info, "The anchors are"),
        "Sketch sweep ratios are exact median / sketched median: above 1 the sketch is "
        "faster. Errors are max_i |tau_i / tau_ref_i - 1| against numpy's float64 SVD.",
    ]
    notes += load_notes(cases)
    return {
        "workload": WORKLOAD,
        "notes": notes,
        "blas": blas_info,
        "jax_x64": bool(jax.config.jax_enable_x64),
        "cases": cases,
        "goals": goals(cases),
    }
