"""k-means suite: jaxsampling's k-means++ seeding and Lloyd iterations against scikit-learn.

Workloads (Gaussian blobs: ``k`` centres in ``d`` dimensions, unit spread,
drawn once by numpy with a fixed seed, float32):

* ``seeding``: k-means++ (D^2 sampling) of ``k`` seeds from ``n`` points:
  ``kmeans.kmeans_plusplus`` against ``sklearn.cluster.kmeans_plusplus`` with
  ``n_local_trials=1`` (the plain D^2 rule; scikit-learn's default greedy
  variant tries ``2 + log k`` candidates per seed).
* ``kmeans``: greedy seeding (``2 + floor(ln k)`` D^2 candidates per seed, on
  both sides) plus Lloyd rounds: ``kmeans.kmeans(..., num_iters=I,
  num_candidates=L)`` against ``sklearn.cluster.KMeans(n_clusters=k,
  init="k-means++", n_init=1, algorithm="lloyd", max_iter=I, tol=0)``. Both
  stop early when no assignment changes; the iterations each ran and the
  inertia of each answer are recorded per case (the ratio is per call).

scikit-learn runs its OpenMP/BLAS threads on every core (as does XLA); the
machine's core count is in the results file.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus

from benchmarks import timing
from jaxsampling.kernels import kmeans

SEED = 20261129
CASES = ((100_000, 16, 64), (20_000, 8, 16))
QUICK_CASES = ((5_000, 8, 8),)
ITERATIONS = 20
QUICK_REPEATS = 3
OURS = "jaxsampling"
ANCHORS = ("scikit-learn",)

WORKLOAD = (
    "Gaussian blobs (k centres ~ N(0, 25 I_d), points = centre + N(0, I_d)), float32, "
    f"numpy seed {SEED}. seeding: k-means++ with one candidate per seed; kmeans: "
    f"greedy seeding (2 + floor(ln k) candidates) + at most {ITERATIONS} Lloyd rounds "
    "(both stop when no assignment changes). jaxsampling jitted with k, the "
    "candidates and the iteration cap static."
)


def blobs(n: int, d: int, k: int) -> np.ndarray:
    rng = np.random.default_rng([SEED, n, d, k])
    centres = 5.0 * rng.normal(size=(k, d))
    return (centres[rng.integers(k, size=n)] + rng.normal(size=(n, d))).astype(np.float32)


def _case(name: str, workload: str, impls: dict, repeats: int, extra: dict) -> dict:
    print(f"[kmeans] {name}", flush=True)
    results = {}
    for impl, (kind, fn, args) in impls.items():
        timer = timing.time_jax if kind == "jax" else timing.time_python
        result = timer(fn, args, repeats=repeats)
        results[impl] = result.to_json()
        print(f"    {impl:12s} median {result.median_s * 1e3:9.2f} ms"
              f"  compile {result.compile_s * 1e3:8.1f} ms", flush=True)
    ours = results[OURS]["median_s"]
    ratios = {a: results[a]["median_s"] / ours for a in ANCHORS if a in results}
    return {"name": name, "workload": workload, "implementations": results,
            "ratios": ratios, **extra}


def run(quick: bool = False, repeats: int | None = None) -> dict[str, Any]:
    """Runs the k-means suite; returns ``workload``, ``notes`` and ``cases``."""
    repeats = repeats or (QUICK_REPEATS if quick else 7)
    cases = []
    for n, d, k in QUICK_CASES if quick else CASES:
        x = blobs(n, d, k)
        xj = jax.device_put(x)
        key = jax.random.key(SEED)

        impls = {
            OURS: ("jax", lambda key, x, k=k: kmeans.kmeans_plusplus(key, x, k), (key, xj)),
            "scikit-learn": ("python", lambda x, k=k: kmeans_plusplus(
                x, k, random_state=0, n_local_trials=1), (x,)),
        }
        cases.append(_case(f"seeding n={n} d={d} k={k}",
                           f"k-means++ seeds, n = {n}, d = {d}, k = {k}", impls, repeats, {}))

        trials = 2 + int(np.log(k))
        ours = kmeans.kmeans(key, xj, k, num_iters=ITERATIONS, num_candidates=trials)
        theirs = KMeans(k, init="k-means++", n_init=1, algorithm="lloyd",
                        max_iter=ITERATIONS, tol=0.0, random_state=0).fit(x)
        extra = {
            "iterations": {OURS: int(ours.iterations), "scikit-learn": int(theirs.n_iter_)},
            "inertia": {OURS: float(ours.inertia), "scikit-learn": float(theirs.inertia_)},
        }
        impls = {
            OURS: ("jax", lambda key, x, k=k, t=trials: kmeans.kmeans(
                key, x, k, num_iters=ITERATIONS, num_candidates=t), (key, xj)),
            "scikit-learn": ("python", lambda x, k=k: KMeans(
                k, init="k-means++", n_init=1, algorithm="lloyd", max_iter=ITERATIONS,
                tol=0.0, random_state=0).fit(x), (x,)),
        }
        cases.append(_case(f"kmeans n={n} d={d} k={k}",
                           f"seeding + <= {ITERATIONS} Lloyd rounds, n = {n}, d = {d}, k = {k}",
                           impls, repeats, extra))
    notes = [
        "The seeding case compares the plain D^2 rule (one candidate per seed); the "
        "kmeans case seeds greedily on both sides (2 + floor(ln k) candidates, "
        "scikit-learn's default).",
        "iterations and inertia differ between the two because the seeds differ "
        "(different random streams); both reach a fixed point or the cap.",
    ]
    return {"workload": WORKLOAD, "notes": notes, "cases": cases}
