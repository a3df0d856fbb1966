"""DPP suite: batched exact DPP draws against DPPy.

Cases (every implementation of a case gets the same float64 inputs, built once
by numpy with a fixed seed; jaxsampling also gets them cast to float32, a
separate row):

* ``projection N=... k=...``: draws from the projection DPP ``K = V V^T`` of an
  ``N x k`` matrix ``V`` with orthonormal columns (QR of a Gaussian matrix).
  jaxsampling draws ``NUM_DRAWS`` at once
  (``jax.jit(lambda key, V: dpp.sample_projection(key, V, num_draws=...))``)
  and its time per draw is the call's median over ``NUM_DRAWS``. DPPy draws
  one at a time with ``FiniteDPP('correlation', projection=True, ...)``:
  every exact projection mode (``K_eig_dec=(1, V)`` with ``'GS'``,
  ``'GS_bis'``, ``'KuTa12'``; ``K = V V^T``, formed outside the timing, with
  ``'GS'``, ``'Chol'``, ``'Schur'``) is first timed on a few draws
  (``dppy_modes``), then the fastest is timed properly (median of single
  draws), with the BLAS threads numpy starts with and with 1 thread
  (:class:`benchmarks.machine.BlasThreads`).
* ``eigendecomposition N=...``: the L-ensemble kernel
  ``L_ij = exp(-||x_i - x_j||^2 / (2 h^2))``, ``h = BANDWIDTH`` (the Gaussian
  convention: ``h`` is the standard deviation, not ``2 h^2``), on ``N``
  uniform points of ``[0, 1]^2``: ``jax.jit(dpp.spectrum_from_likelihood)``
  (``jnp.linalg.eigh`` and the sort) against ``scipy.linalg.eigh(L)`` (what
  DPPy calls) and ``numpy.linalg.eigh(L)``.
* ``L-ensemble N=...``: draws from the DPP of that ``L`` with the
  eigendecomposition reused: jaxsampling ``dpp.sample(key, spectrum,
  max_size=..., num_draws=...)`` on the spectrum computed once (eagerly, so
  eigenvalues that are zero to round-off are dropped) against DPPy
  ``FiniteDPP('likelihood', L_eig_dec=scipy.linalg.eigh(L)).sample_exact``
  with its fastest eigendecomposition mode (``'GS'``, ``'GS_bis'``,
  ``'KuTa12'``).
* ``k-DPP N=... k=...``: the same with ``dpp.sample_k`` against DPPy
  ``sample_exact_k_dpp(k, mode)`` (whose first call also computes its table
  of elementary symmetric polynomials; it is reported as its compile time).

Correctness (``accuracy``; a z-score, 5 passes): every implementation's draws
are checked against the exact law: the inclusion frequencies of
``CHECK_ITEMS`` fixed items against ``K_ii`` (projection and L-ensemble) or
the exact k-DPP marginals, as Binomial counts, and for the L-ensemble the
mean size against ``tr K`` (standard error from ``Var |S| = sum p (1 - p)``).
jaxsampling is checked on the ``NUM_DRAWS`` draws of one call, DPPy on all the
draws it made while being timed. The eigendecomposition is checked by its
residual ``max_j ||L v_j - lambda_j v_j|| / ||L||_2``.

Times per draw after compilation and warm-up (``benchmarks.timing``); compile
time is reported apart. ``ratios``: DPPy median per draw / jaxsampling
(float64) median per draw, for every DPPy row; ``best_anchor_ratio`` against
the fastest.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from benchmarks import timing
from benchmarks.machine import BlasThreads, blas_note, load_notes, print_record, timed

OURS = "jaxsampling"
OURS32 = "jaxsampling (float32)"
DPPY = "dppy"
SEED = 20240611

PROJECTION_SIZES = ((1000, 50), (5000, 200))
QUICK_PROJECTION_SIZES = ((300, 20), (600, 40))
ENSEMBLE_N = 2000
QUICK_ENSEMBLE_N = 400
#: Standard deviation of the Gaussian (RBF) kernel: exp(-d^2 / (2 h^2)).
BANDWIDTH = 0.1
K_DPP = 50
QUICK_K_DPP = 10
#: The repeated-sampling crossover: projection DPPs of rank CROSSOVER_K, chain
#: rule (matrix products, ``2 N k^2`` flops a draw) against the rejection path
#: (cost per draw independent of N), batches of CROSSOVER_DRAWS.
CROSSOVER_NS = (2_000, 5_000, 20_000, 50_000, 200_000)
QUICK_CROSSOVER_NS = (1_000, 8_000)
CROSSOVER_K = 50
CROSSOVER_DRAWS = 256
REJECTION = "jaxsampling (rejection)"
NUM_DRAWS = 1000
QUICK_NUM_DRAWS = 100
QUICK_REPEATS = 3
#: Items whose inclusion frequency is checked (evenly spaced indices).
CHECK_ITEMS = 5
#: A correctness check passes when every z-score is at most this.
NUM_SIGMA = 5.0
#: DPPy modes: (representation, mode) for projection DPPs, and the
#: eigendecomposition modes for L-ensembles and k-DPPs.
PROJECTION_MODES = (
    ("eig", "GS"),
    ("eig", "GS_bis"),
    ("eig", "KuTa12"),
    ("kernel", "GS"),
    ("kernel", "Chol"),
    ("kernel", "Schur"),
)
EIG_MODES = ("GS", "GS_bis", "KuTa12")
#: The mode scan times each DPPy mode on up to this many draws, stopping after
#: SCAN_BUDGET_S seconds (at least one draw).
SCAN_DRAWS = 3
SCAN_BUDGET_S = 2.0

#: The goals of the issue, checked on the results (see :func:`goals`).
GOAL_PROJECTION = 20.0
GOAL_ENSEMBLE = 10.0

WORKLOAD = (
    "float64 inputs drawn by numpy with fixed seeds, jax_enable_x64 on; jaxsampling "
    "also on the same inputs cast to float32 (separate rows). Projection DPP: V = Q of "
    "a Gaussian N x k matrix; jaxsampling draws a batch (dpp.sample_projection(key, V, "
    f"num_draws={NUM_DRAWS})), DPPy one draw at a time (FiniteDPP('correlation', "
    "projection=True, ...).sample_exact, fastest mode). L-ensemble: "
    f"L_ij = exp(-||x_i - x_j||^2 / (2 * {BANDWIDTH}^2)) on N uniform points of "
    "[0, 1]^2; eigendecomposition timed apart (jax.jit(dpp.spectrum_from_likelihood) "
    "vs scipy.linalg.eigh, which DPPy uses, and numpy.linalg.eigh); draws with the "
    "eigendecomposition reused: dpp.sample / dpp.sample_k (batches) vs "
    "FiniteDPP('likelihood', L_eig_dec=...).sample_exact / sample_exact_k_dpp "
    "(fastest mode). Crossover: projection DPPs of rank "
    f"{CROSSOVER_K} for N = {', '.join(map(str, CROSSOVER_NS))}, chain rule vs "
    "rejection path. Times are per draw (a batch's median / its draws)."
)


# ----------------------------------------------------------------------------
# Inputs and exact references (numpy, float64).
# ----------------------------------------------------------------------------


def orthonormal(n: int, k: int) -> np.ndarray:
    """``Q`` of a Gaussian ``n x k`` matrix (seed fixed per shape)."""
    rng = np.random.default_rng([SEED, n, k])
    return np.linalg.qr(rng.standard_normal((n, k)))[0]


def rbf_kernel(n: int) -> np.ndarray:
    """``exp(-||x_i - x_j||^2 / (2 BANDWIDTH^2))``, ``n`` uniform points of [0, 1]^2."""
    x = np.random.default_rng([SEED, n]).uniform(size=(n, 2))
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    L = np.exp(-d2 / (2 * BANDWIDTH**2))
    return (L + L.T) / 2


def check_items(n: int) -> np.ndarray:
    return np.linspace(0, n - 1, CHECK_ITEMS).round().astype(int)


def k_dpp_marginals(lam: np.ndarray, V: np.ndarray, k: int) -> np.ndarray:
    """``P(i in S)`` of the k-DPP: ``sum_j V_ij^2 P(j in J)``, ``P(j in J) = lambda_j
    e_{k-1}(lambda_{-j}) / e_k(lambda)`` (prefix and suffix tables, scaled)."""
    lam = np.clip(lam, 0, None) / lam.max()  # the marginals are scale-free
    n = lam.size
    pre = np.zeros((n + 1, k + 1))
    suf = np.zeros((n + 2, k + 1))
    pre[0, 0] = suf[n + 1, 0] = 1.0
    for j in range(n):
        pre[j + 1] = pre[j]
        pre[j + 1, 1:] += lam[j] * pre[j, :-1]
    for j in range(n, 0, -1):
        suf[j] = suf[j + 1]
        suf[j, 1:] += lam[j - 1] * suf[j + 1, :-1]
    # e_{k-1} of all values but j: sum_a e_a(prefix before j) e_{k-1-a}(suffix after j).
    rest = np.einsum("ja,ja->j", pre[:n, :k], suf[2 : n + 2, k - 1 :: -1])
    p_eig = lam * rest / pre[n, k]
    return (V**2) @ p_eig


# ----------------------------------------------------------------------------
# Correctness of the draws.
# ----------------------------------------------------------------------------


def _z(count: float, n: int, p: float) -> float:
    sd = math.sqrt(n * p * (1 - p))
    return abs(count - n * p) / sd if sd > 0 else (0.0 if count == n * p else math.inf)


def check_draws(
    sets: list[np.ndarray],
    items: np.ndarray,
    marginals: np.ndarray,
    *,
    size: int | None = None,
    mean_size: float | None = None,
    size_var: float | None = None,
) -> dict[str, Any]:
    """z-scores of the draws against the exact law (see the module docstring)."""
    n = len(sets)
    counts = np.zeros(marginals.size)
    sizes = np.array([len(s) for s in sets])
    distinct = all(len(set(np.asarray(s).tolist())) == len(s) for s in sets)
    for s in sets:
        counts[np.asarray(s, dtype=int)] += 1
    z_items = [_z(counts[i], n, float(marginals[i])) for i in items]
    out: dict[str, Any] = {
        "draws": n,
        "distinct_items": bool(distinct),
        "items": items.tolist(),
        "expected_inclusion": [float(marginals[i]) for i in items],
        "observed_inclusion": [float(counts[i] / n) for i in items],
        "z_items": z_items,
        "mean_size": float(sizes.mean()),
    }
    z = list(z_items)
    if size is not None:
        out["sizes_ok"] = bool((sizes == size).all())
        z.append(0.0 if out["sizes_ok"] else math.inf)
    if mean_size is not None and size_var is not None:
        out["expected_mean_size"] = mean_size
        out["z_mean_size"] = abs(sizes.mean() - mean_size) / math.sqrt(size_var / n)
        z.append(out["z_mean_size"])
    if not distinct:
        z.append(math.inf)
    out["max_z"] = float(max(z))
    out["passed"] = bool(out["max_z"] <= NUM_SIGMA)
    return out


def _accuracy(check: dict[str, Any]) -> dict[str, Any]:
    what = "inclusion of %d items" % len(check["items"])
    if "z_mean_size" in check:
        what += ", mean size"
    return {
        "metric": f"max z-score vs the exact law ({what}; pass <= {NUM_SIGMA:g})",
        "value": check["max_z"],
        "runs": check["draws"],
        **check,
    }


# ----------------------------------------------------------------------------
# Timing.
# ----------------------------------------------------------------------------


def _per_draw(record: dict[str, Any], draws: int) -> dict[str, Any]:
    """Rescales a per-call timing record to per draw (the raw call time is kept)."""
    out = dict(record)
    out["draws_per_call"] = draws
    out["per_call_median_s"] = record["median_s"]
    for field in ("median_s", "min_s", "iqr_s"):
        out[field] = record[field] / draws
    out["samples_s"] = [s / draws for s in record["samples_s"]]
    return out


def _time_jax(
    fn: Callable[..., Any], args: tuple[Any, ...], repeats: int, warmup: int
) -> tuple[dict[str, Any], Any]:
    return timed("jax", fn, args, repeats=repeats, warmup=warmup)


def _time_dppy(
    draw: Callable[[], Any], repeats: int, sink: list[Any]
) -> dict[str, Any]:
    """Times single DPPy draws; every draw made (warm-up included) goes to ``sink``."""

    def call() -> Any:
        out = draw()
        sink.append(np.asarray(out, dtype=int))
        return out

    return timed("python", call, (), repeats=repeats, warmup=1)[0]


def _scan_modes(samplers: dict[str, Callable[[], Any]]) -> dict[str, dict[str, Any]]:
    """A few draws of each DPPy mode: the median time, or the error it raised."""
    scan: dict[str, dict[str, Any]] = {}
    for name, draw in samplers.items():
        times: list[float] = []
        try:
            start = time.perf_counter()
            while len(times) < SCAN_DRAWS and (
                not times or time.perf_counter() - start < SCAN_BUDGET_S
            ):
                t0 = time.perf_counter()
                draw()
                times.append(time.perf_counter() - t0)
        except Exception as err:  # a mode's failure is a result
            scan[name] = {"error": f"{type(err).__name__}: {err}"}
        else:
            scan[name] = {"median_s": statistics.median(times), "draws": len(times)}
        print(f"    scan {name:22s} {scan[name]}", flush=True)
    return scan


def _fastest(scan: dict[str, dict[str, Any]]) -> str:
    """The DPPy mode with the smallest scan median."""
    timed = [m for m in scan if "median_s" in scan[m]]
    if not timed:
        raise RuntimeError(f"every DPPy mode failed: {scan}")
    return min(timed, key=lambda m: scan[m]["median_s"])


def _repeats(scan: dict[str, dict[str, Any]], mode: str, repeats: int) -> int:
    """Timed single draws of DPPy: fewer when a draw takes longer than 0.2 s."""
    return repeats if scan[mode]["median_s"] < 0.2 else max(5, repeats // 3)


def _print(name: str, record: dict[str, Any]) -> None:
    print_record(name, record, accuracy="max z", width=28)


def _dppy_rows(
    name: str,
    draw: Callable[[], Any],
    blas: BlasThreads,
    repeats: int,
    sink: list[Any],
) -> dict[str, dict[str, Any]]:
    """The chosen DPPy mode with numpy's BLAS threads and with 1 thread."""
    rows: dict[str, dict[str, Any]] = {}
    for threads in (None, 1):
        label = name if threads is None else f"{name} (1 thread)"
        limit = contextlib.nullcontext() if threads is None else blas.limit(threads)
        try:
            with limit:
                record = _time_dppy(draw, repeats, sink)
                used = [lib.get("num_threads") for lib in blas.info()["libraries"]]
        except Exception as err:  # an anchor's failure is a result
            record = {"error": f"{type(err).__name__}: {err}"}
        else:
            record["blas_threads"] = used
            record["note"] = "BLAS threads " + "/".join(str(t) for t in used)
        rows[label] = record
    return rows


def _finish_case(
    name: str,
    workload: str,
    results: dict[str, dict[str, Any]],
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Ratios (DPPy / jaxsampling float64, per draw) and the baseline."""
    ours = results[OURS].get("median_s")
    anchors = {
        impl: rec["median_s"]
        for impl, rec in results.items()
        if impl not in (OURS, OURS32) and "median_s" in rec
    }
    ratios = {impl: t / ours for impl, t in anchors.items()} if ours else {}
    best = min(anchors, key=anchors.get) if anchors else None
    ratios_f32 = {}
    if OURS32 in results and "median_s" in results[OURS32]:
        ours32 = results[OURS32]["median_s"]
        ratios_f32 = {impl: t / ours32 for impl, t in anchors.items()}
    return {
        "name": name,
        "workload": workload,
        "baseline": best,
        "implementations": results,
        "ratios": ratios,
        "ratios_float32": ratios_f32,
        "best_anchor": best,
        "best_anchor_ratio": ratios.get(best) if best else None,
        "best_anchor_ratio_float32": ratios_f32.get(best) if best else None,
        **extra,
    }


def _dppy_mode_name(mode: tuple[str, str] | str) -> str:
    if isinstance(mode, tuple):
        rep, m = mode
        return f"{DPPY} {m} ({'K' if rep == 'kernel' else 'eig'})"
    return f"{DPPY} {mode}"


def _ours_note(record: dict[str, Any], extra: str = "") -> str:
    call = record["per_call_median_s"]
    note = f"per draw; batches of {record['draws_per_call']}, {call:.3g} s a call"
    return note + (f"; {extra}" if extra else "")


# ----------------------------------------------------------------------------
# Cases.
# ----------------------------------------------------------------------------


def projection_case(
    dpp: Any,
    FiniteDPP: Any,
    blas: BlasThreads,
    n: int,
    k: int,
    draws: int,
    repeats: int,
) -> dict[str, Any]:
    name = f"projection N={n} k={k}"
    print(f"[dpp] {name}", flush=True)
    V = orthonormal(n, k)
    marginals = np.einsum("ij,ij->i", V, V)
    items = check_items(n)
    # A batch of the large case takes seconds: three timed calls.
    ours_repeats = repeats if n * k * k <= 10**8 else max(3, repeats // 7)
    results: dict[str, dict[str, Any]] = {}

    for label, dtype in ((OURS, jnp.float64), (OURS32, jnp.float32)):

        def fn(key: jax.Array, V: jax.Array) -> jax.Array:
            return dpp.sample_projection(key, V, num_draws=draws)

        args = (jax.random.key(SEED), jnp.asarray(V, dtype))
        record, out = _time_jax(fn, args, ours_repeats, warmup=1)
        record = _per_draw(record, draws)
        record["accuracy"] = _accuracy(
            check_draws(list(np.asarray(out)), items, marginals, size=k)
        )
        record["note"] = _ours_note(record)
        results[label] = record
        _print(label, record)

    # DPPy: pick the fastest exact projection mode, then time it properly.
    rng = np.random.RandomState(SEED)
    eig = FiniteDPP("correlation", projection=True, K_eig_dec=(np.ones(k), V))
    K = V @ V.T
    kernel = FiniteDPP("correlation", projection=True, K=K)
    def sampler(obj: Any, mode: str) -> Callable[[], Any]:
        return lambda: obj.sample_exact(mode=mode, random_state=rng)

    samplers = {
        _dppy_mode_name(mode): sampler(eig if mode[0] == "eig" else kernel, mode[1])
        for mode in PROJECTION_MODES
    }
    scan = _scan_modes(samplers)
    fastest = _fastest(scan)
    sink: list[Any] = []
    dppy_repeats = _repeats(scan, fastest, repeats)
    rows = _dppy_rows(fastest, samplers[fastest], blas, dppy_repeats, sink)
    check = check_draws(sink, items, marginals, size=k)
    for label, record in rows.items():
        if "error" not in record:
            record["accuracy"] = _accuracy(check)
        results[label] = record
        _print(label, record)
    eig.flush_samples()
    kernel.flush_samples()
    return _finish_case(
        name,
        (
            f"projection DPP K = V V^T, V: {n} x {k} orthonormal (float64); "
            f"jaxsampling: batches of {draws} draws, time per draw; DPPy: single "
            f"draws of its fastest mode ({fastest}); DPPy modes scanned: "
            + ", ".join(_dppy_mode_name(m) for m in PROJECTION_MODES)
        ),
        results,
        {"dppy_modes": scan, "dppy_fastest_mode": fastest, "n": n, "k": k},
    )


def _residual(L: np.ndarray, lam: np.ndarray, V: np.ndarray) -> float:
    """``max_j ||L v_j - lambda_j v_j|| / ||L||_2``."""
    R = L @ V - V * lam
    return float(np.sqrt((R * R).sum(0)).max() / np.abs(lam).max())


def eigendecomposition_case(
    dpp: Any, blas: BlasThreads, L: np.ndarray, repeats: int
) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray]]:
    n = L.shape[0]
    name = f"eigendecomposition N={n}"
    print(f"[dpp] {name}", flush=True)
    slow = max(3, repeats // 3)
    results: dict[str, dict[str, Any]] = {}
    for label, dtype in ((OURS, jnp.float64), (OURS32, jnp.float32)):
        record, out = _time_jax(
            dpp.spectrum_from_likelihood, (jnp.asarray(L, dtype),), slow, warmup=1
        )
        lam = np.exp(np.asarray(out.log_eigenvalues, np.float64))
        V = np.asarray(out.eigenvectors, np.float64)
        finite = np.isfinite(lam)
        record["accuracy"] = {
            "metric": "max_j ||L v_j - lambda_j v_j|| / ||L||_2",
            "value": _residual(L, lam[finite], V[:, finite]),
            "runs": 1,
        }
        record["note"] = "jnp.linalg.eigh + sort (jitted, so no rank truncation)"
        results[label] = record
        _print(label, record)
    anchors = (
        ("scipy eigh", lambda L: scipy.linalg.eigh(L, check_finite=False)),
        ("numpy eigh", np.linalg.eigh),
    )
    reference = None
    for label, fn in anchors:
        for threads in (None, 1):
            impl = label if threads is None else f"{label} (1 thread)"
            limit = contextlib.nullcontext() if threads is None else blas.limit(threads)
            try:
                with limit:
                    record, (lam, V) = timed("python", fn, (L,), repeats=slow, warmup=1)
                    used = [lib.get("num_threads") for lib in blas.info()["libraries"]]
            except Exception as err:
                record = {"error": f"{type(err).__name__}: {err}"}
            else:
                record["blas_threads"] = used
                record["note"] = "BLAS threads " + "/".join(str(t) for t in used)
                record["accuracy"] = {
                    "metric": "max_j ||L v_j - lambda_j v_j|| / ||L||_2",
                    "value": _residual(L, lam, V),
                    "runs": 1,
                }
                if label == "scipy eigh" and reference is None:
                    reference = (lam, V)
            results[impl] = record
            _print(impl, record)
    if reference is None:
        reference = scipy.linalg.eigh(L)
    case = _finish_case(
        name,
        (
            f"eigendecomposition of the {n} x {n} RBF kernel (bandwidth {BANDWIDTH}), "
            "float64: jax.jit(dpp.spectrum_from_likelihood) vs scipy.linalg.eigh "
            "(DPPy's) and numpy.linalg.eigh, each with numpy's BLAS threads and 1 "
            "thread"
        ),
        results,
        {"n": n},
    )
    return case, reference


def _spectrum_args(spectrum: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
    return spectrum.eigenvectors, spectrum.marginals, spectrum.log_eigenvalues


def ensemble_cases(
    dpp: Any,
    FiniteDPP: Any,
    blas: BlasThreads,
    L: np.ndarray,
    eigh: tuple[np.ndarray, np.ndarray],
    k: int,
    draws: int,
    repeats: int,
) -> list[dict[str, Any]]:
    """L-ensemble and k-DPP draws with the eigendecomposition reused."""
    n = L.shape[0]
    lam, V = eigh
    lam_pos = np.clip(lam, 0, None)
    p = lam_pos / (1 + lam_pos)
    K_diag = (V**2) @ p
    mean_size, size_var = float(p.sum()), float((p * (1 - p)).sum())
    k_marginals = k_dpp_marginals(lam_pos, V, k)
    items = check_items(n)
    slow = max(3, repeats // 3)
    spectra = {
        OURS: dpp.spectrum_from_likelihood(jnp.asarray(L, jnp.float64)),
        OURS32: dpp.spectrum_from_likelihood(jnp.asarray(L, jnp.float32)),
    }
    cases = []
    for kind in ("L-ensemble", "k-DPP"):
        name = f"{kind} N={n}" + (f" k={k}" if kind == "k-DPP" else "")
        print(f"[dpp] {name}", flush=True)
        results: dict[str, dict[str, Any]] = {}
        for label, spectrum in spectra.items():
            max_size = dpp.max_size_for(spectrum)
            S = dpp.Spectrum
            if kind == "L-ensemble":

                def fn(key, V, p, log_lam, max_size=max_size):
                    return dpp.sample(
                        key, S(V, p, log_lam), max_size=max_size, num_draws=draws
                    )

            else:

                def fn(key, V, p, log_lam):
                    return dpp.sample_k(key, S(V, p, log_lam), k, num_draws=draws)

            args = (jax.random.key(SEED + 1), *_spectrum_args(spectrum))
            record, out = _time_jax(fn, args, slow, warmup=1)
            record = _per_draw(record, draws)
            if kind == "L-ensemble":
                idx = np.asarray(out.indices)
                sets = [row[row >= 0] for row in idx]
                overflow = int(np.asarray(out.overflow).sum())
                check = check_draws(
                    sets, items, K_diag, mean_size=mean_size, size_var=size_var
                )
                check["overflow"] = overflow
                if overflow:
                    check["passed"], check["max_z"] = False, math.inf
                extra = f"rank {spectrum.rank}, max_size {max_size}"
            else:
                sets = list(np.asarray(out))
                check = check_draws(sets, items, k_marginals, size=k)
                extra = f"rank {spectrum.rank}"
            record["accuracy"] = _accuracy(check)
            record["rank"] = spectrum.rank
            record["note"] = _ours_note(record, extra)
            results[label] = record
            _print(label, record)

        rng = np.random.RandomState(SEED + 2)
        dppy_obj = FiniteDPP("likelihood", L_eig_dec=(lam, V))
        if kind == "L-ensemble":
            samplers = {
                _dppy_mode_name(m): (
                    lambda m=m: dppy_obj.sample_exact(mode=m, random_state=rng)
                )
                for m in EIG_MODES
            }
        else:
            start = time.perf_counter()  # the first call builds DPPy's e_k table
            dppy_obj.sample_exact_k_dpp(k, mode="GS", random_state=rng)
            setup_s = time.perf_counter() - start
            samplers = {
                _dppy_mode_name(m): (
                    lambda m=m: dppy_obj.sample_exact_k_dpp(k, mode=m, random_state=rng)
                )
                for m in EIG_MODES
            }
        scan = _scan_modes(samplers)
        fastest = _fastest(scan)
        sink: list[Any] = []
        dppy_repeats = _repeats(scan, fastest, repeats)
        rows = _dppy_rows(fastest, samplers[fastest], blas, dppy_repeats, sink)
        if kind == "L-ensemble":
            check = check_draws(
                sink, items, K_diag, mean_size=mean_size, size_var=size_var
            )
        else:
            check = check_draws(sink, items, k_marginals, size=k)
        for label, record in rows.items():
            if "error" not in record:
                record["accuracy"] = _accuracy(check)
                if kind == "k-DPP":
                    record["first_call_with_table_s"] = setup_s
                    record["note"] += (
                        f"; first call (builds the e_k table) {setup_s:.3g} s"
                    )
            results[label] = record
            _print(label, record)
        dppy_obj.flush_samples()
        cases.append(
            _finish_case(
                name,
                (
                    f"{kind} of the {n} x {n} RBF kernel (bandwidth {BANDWIDTH}), "
                    f"E|S| = tr K = {mean_size:.2f}"
                    + (f", |S| = {k}" if kind == "k-DPP" else "")
                    + "; eigendecomposition reused (not timed): jaxsampling on "
                    "spectrum_from_likelihood(L) computed once, DPPy on "
                    f"scipy.linalg.eigh(L); jaxsampling: batches of {draws}, time "
                    f"per draw; DPPy: single draws of its fastest mode ({fastest})"
                ),
                results,
                {
                    "dppy_modes": scan,
                    "dppy_fastest_mode": fastest,
                    "n": n,
                    "expected_size": mean_size if kind == "L-ensemble" else k,
                },
            )
        )
    return cases


def crossover_cases(
    dpp: Any, ns: tuple[int, ...], k: int, draws: int, repeats: int
) -> list[dict[str, Any]]:
    """The projection DPP of an ``N x k`` orthonormal ``V`` for growing ``N``:
    ``method="chain_rule"`` (the baseline) against ``method="rejection"``.

    The rejection path's ``O(N k)`` running sums are built inside the timed
    call (once per batch), so its time per draw includes their share.
    """
    cases = []
    for n in ns:
        name = f"crossover N={n} k={k}"
        print(f"[dpp] {name}", flush=True)
        V = orthonormal(n, k)
        marginals = np.einsum("ij,ij->i", V, V)
        items = check_items(n)
        results: dict[str, dict[str, Any]] = {}
        for label, method in ((OURS, "chain_rule"), (REJECTION, "rejection")):

            def fn(key: jax.Array, V: jax.Array, method: str = method) -> jax.Array:
                return dpp.sample_projection(key, V, num_draws=draws, method=method)

            args = (jax.random.key(SEED + 3), jnp.asarray(V))
            record, out = _time_jax(fn, args, max(3, repeats // 3), warmup=1)
            record = _per_draw(record, draws)
            record["accuracy"] = _accuracy(
                check_draws(list(np.asarray(out)), items, marginals, size=k)
            )
            record["note"] = _ours_note(record, f"method={method!r}")
            results[label] = record
            _print(label, record)
        chain, rej = (results[x].get("median_s") for x in (OURS, REJECTION))
        cases.append(
            {
                "name": name,
                "workload": (
                    f"projection DPP K = V V^T, V: {n} x {k} orthonormal (float64), "
                    f"batches of {draws} draws, time per draw: the chain rule "
                    "(baseline) against the rejection path"
                ),
                "baseline": OURS,
                "implementations": results,
                "ratios": {REJECTION: chain / rej} if chain and rej else {},
                "n": n,
                "k": k,
            }
        )
    return cases


def crossover_n(cases: list[dict[str, Any]]) -> float | None:
    """``N`` where the rejection path starts to win: log-log interpolation of the
    chain-rule / rejection time ratio between the first two sizes around 1."""
    points = [
        (c["n"], c["ratios"][REJECTION]) for c in cases if c.get("ratios", {}).get(REJECTION)
    ]
    for (n0, r0), (n1, r1) in zip(points, points[1:]):
        if r0 < 1 <= r1:
            frac = -math.log(r0) / (math.log(r1) - math.log(r0))
            return math.exp(math.log(n0) + frac * (math.log(n1) - math.log(n0)))
    if points and points[0][1] >= 1:
        return float(points[0][0])
    return None


# ----------------------------------------------------------------------------
# Goals and the suite.
# ----------------------------------------------------------------------------


def _x(ratio: float | None, digits: int = 1) -> str:
    return "n/a" if ratio is None else f"{ratio:.{digits}f}x"


def goals(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's goals, checked on the measured cases."""
    out: list[dict[str, Any]] = []

    def passed(case: dict[str, Any]) -> bool:
        return all(
            rec.get("accuracy", {}).get("passed", True)
            for rec in case["implementations"].values()
            if "error" not in rec
        )

    projection = [c for c in cases if c["name"].startswith("projection")]
    if projection:
        measured = "; ".join(
            f"{c['name'][11:]}: {_x(c['best_anchor_ratio'])} the fastest DPPy row "
            f"({c['best_anchor']}; float32 {_x(c['best_anchor_ratio_float32'])})"
            for c in projection
        )
        out.append(
            {
                "goal": (
                    f"batched projection draws at least {GOAL_PROJECTION:g}x DPPy per "
                    "draw at both sizes"
                ),
                "measured": measured,
                "met": all(
                    (c["best_anchor_ratio"] or 0) >= GOAL_PROJECTION and passed(c)
                    for c in projection
                ),
            }
        )
    for kind in ("L-ensemble", "k-DPP"):
        case = next((c for c in cases if c["name"].startswith(kind)), None)
        if case is None:
            continue
        out.append(
            {
                "goal": (
                    f"{kind} draws ({case['name'][len(kind) + 1:]}) at least "
                    f"{GOAL_ENSEMBLE:g}x DPPy per draw, eigendecomposition reused"
                ),
                "measured": (
                    f"{_x(case['best_anchor_ratio'])} the fastest DPPy row "
                    f"({case['best_anchor']}; float32 "
                    f"{_x(case['best_anchor_ratio_float32'])})"
                ),
                "met": bool(
                    (case["best_anchor_ratio"] or 0) >= GOAL_ENSEMBLE and passed(case)
                ),
            }
        )
    crossover = [c for c in cases if c["name"].startswith("crossover")]
    if crossover:
        times = [
            (c["n"], c["implementations"][REJECTION].get("median_s"),
             c["implementations"][OURS].get("median_s"))
            for c in crossover
        ]
        growth = (
            times[-1][1] / times[0][1] if times[0][1] and times[-1][1] else math.inf
        )
        where = crossover_n(crossover)
        out.append(
            {
                "goal": (
                    "a repeated-sampling path whose cost per draw does not grow with N "
                    "after preprocessing, with the crossover in N measured"
                ),
                "measured": (
                    "rejection path per draw "
                    + ", ".join(f"{t * 1e3:.3g} ms" for _, t, _ in times if t)
                    + " vs chain rule "
                    + ", ".join(f"{t * 1e3:.3g} ms" for _, _, t in times if t)
                    + " at N = " + ", ".join(str(n) for n, _, _ in times)
                    + f" (k = {crossover[0]['k']}): the rejection path grows "
                    f"{growth:.2f}x over {times[-1][0] / times[0][0]:.0f}x N; "
                    + (f"crossover at N = {where:,.0f}" if where else "no crossover")
                ),
                "crossover_n": where,
                "rejection_growth": growth,
                "met": bool(where is not None and growth < 2.0),
            }
        )
    eig = next((c for c in cases if c["name"].startswith("eigendecomposition")), None)
    if eig is not None:
        out.append(
            {
                "goal": "report the eigendecomposition (timed apart)",
                "measured": (
                    f"{_x(eig['best_anchor_ratio'], 2)} the fastest of scipy / numpy "
                    f"eigh ({eig['best_anchor']})"
                ),
                "met": True,
            }
        )
    failed = [
        f"{c['name']}: {impl}"
        for c in cases
        for impl, rec in c["implementations"].items()
        if not rec.get("accuracy", {}).get("passed", True)
    ]
    out.append(
        {
            "goal": f"every sampler's draws match the exact law (z <= {NUM_SIGMA:g})",
            "measured": "all passed" if not failed else "failed: " + "; ".join(failed),
            "met": not failed,
        }
    )
    return out


def run(quick: bool = False, repeats: int | None = None) -> dict[str, Any]:
    """Runs the DPP suite.

    Args:
      quick: Smoke mode: small sizes, 100 draws a batch, few repeats.
      repeats: Timed repeats of the fast implementations; the slow ones get
        fewer. Default depends on ``quick``.

    Returns:
      The suite's results: ``workload``, ``notes``, ``blas``, ``cases`` and ``goals``.
    """
    jax.config.update("jax_enable_x64", True)
    from dppy.finite_dpps import FiniteDPP

    from jaxsampling.kernels import dpp

    if repeats is None:
        repeats = QUICK_REPEATS if quick else timing.DEFAULT_REPEATS
    sizes = QUICK_PROJECTION_SIZES if quick else PROJECTION_SIZES
    n_ens = QUICK_ENSEMBLE_N if quick else ENSEMBLE_N
    k = QUICK_K_DPP if quick else K_DPP
    draws = QUICK_NUM_DRAWS if quick else NUM_DRAWS

    blas = BlasThreads()
    blas_info = blas.info()
    print(f"[dpp] BLAS: {blas_info}", flush=True)
    cases = [
        projection_case(dpp, FiniteDPP, blas, n, kk, draws, repeats) for n, kk in sizes
    ]
    L = rbf_kernel(n_ens)
    eig_case, eigh = eigendecomposition_case(dpp, blas, L, repeats)
    cases.append(eig_case)
    cases.extend(ensemble_cases(dpp, FiniteDPP, blas, L, eigh, k, draws, repeats))
    crossover_ns = QUICK_CROSSOVER_NS if quick else CROSSOVER_NS
    crossover_draws = QUICK_NUM_DRAWS if quick else CROSSOVER_DRAWS
    cases.extend(crossover_cases(dpp, crossover_ns, CROSSOVER_K, crossover_draws, repeats))

    notes = [
        "Draw cases: median ms is per draw. jaxsampling draws batches of "
        f"{draws} (one jitted call; per draw = the call's median / {draws}); DPPy "
        "draws one set per call (its samplers are sequential numpy loops). "
        "Compile ms: jaxsampling's jit compile of the batch; DPPy's first timed call "
        "minus its median (the k-DPP's table of elementary symmetric polynomials is "
        "built by an earlier call, timed in the notes column).",
        blas_note(blas_info, "DPPy and numpy/scipy eigh are"),
        "Error column: for draws, the largest z-score of the correctness checks "
        f"against the exact law (inclusion frequencies of {CHECK_ITEMS} items; mean "
        "size for the L-ensemble; a check passes at z <= 5); jaxsampling on the draws "
        "of one batch, DPPy on all its timed draws (fewer, so a weaker check). For the "
        "eigendecomposition: max_j ||L v_j - lambda_j v_j|| / ||L||_2.",
        "crossover cases: the projection DPP of an N x k orthonormal V for growing N, "
        "dpp.sample_projection(..., method='chain_rule') (the baseline, 2 N k^2 flops a "
        "draw as matrix products) against method='rejection' (leverage-mixture "
        "proposals; its O(N k) running sums are built inside each timed call); speed "
        "vs baseline above 1: the rejection path is faster at that N.",
        "float32 rows: the same inputs cast to float32. spectrum_from_likelihood drops "
        "eigenvalues at most eps lambda_max (zero to round-off), so the float32 "
        "spectrum keeps fewer "
        "eigenvectors (rank in the notes) and its draws are cheaper; their correctness "
        "is checked against the float64 law.",
    ]
    notes += load_notes(cases)
    return {
        "workload": WORKLOAD,
        "notes": notes,
        "anchor_packages": ["dppy"],
        "blas": blas_info,
        "jax_x64": bool(jax.config.jax_enable_x64),
        "cases": cases,
        "goals": goals(cases),
    }
