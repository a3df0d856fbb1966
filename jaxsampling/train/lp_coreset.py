r"""l_p coresets of a heavy-tailed matrix: subspace distortion and regression error.

A row-sampling coreset ``S A`` of a tall ``A`` (``n x d``) should satisfy
``||S A x||_p ~ ||A x||_p`` for every ``x``. On a matrix with i.i.d. Student-t
entries (``t_df`` = 1.5: infinite variance, a few rows dominate the column
space) this experiment compares the sampling distributions of
:func:`jaxsampling.kernels.leverage.sampling_probabilities` (``uniform``,
``leverage``, ``root_leverage``, ``lewis``, ``sensitivity``,
``lewis_plus_leverage``) at every evaluation norm ``p`` and expected coreset
size ``m``, on two measures:

* the **distortion** :math:`\varepsilon = \max_{x}\, \bigl|\,\|SAx\|_p /
  \|Ax\|_p - 1\bigr|` over the column space:

  - ``p = 2``: exact, :func:`~jaxsampling.kernels.leverage.subspace_distortion`
    (the extreme singular values of the whitened coreset);
  - ``p != 2``: a **lower bound**, the largest ratio error found by a search
    (``distortion_search``), reported by
    :func:`~jaxsampling.kernels.leverage.lp_distortion` on the directions it
    found. Directions are ``x = M z`` with ``W^(1/2 - 1/p) A M`` orthonormal
    (``W`` the l_p Lewis weights: the change of density under which ``l_p``
    looks like ``l_2``; plain whitening at ``p = 2``). The candidates are
    ``num_random_directions`` Gaussian ``z``; the directions
    ``x_i = (A^T W^(1-2/p) A)^-1 a_i`` of the ``num_row_directions`` rows of
    largest Lewis weight (they load ``A x`` on row ``i``: a coreset that
    misses such a row has a ratio near 0); and the same for the
    ``num_sampled_directions`` sampled rows of largest ``weight^p w_i``
    (rows the coreset over-weights: a ratio well above 1). From the
    ``num_optimised / 2`` candidates of largest and of smallest ratio,
    ``opt_steps`` steps of ``optax.adam`` (learning rate
    ``opt_learning_rate``, ``z`` renormalised after each step) push
    ``log(||S A x||_p / ||A x||_p)`` up, respectively down, vmapped over
    directions and coresets; the best iterate of each is kept.
    ``distortion_start`` is the value before the optimisation. The search
    runs at ``p = 2`` too, where ``distortion_search <= distortion`` shows
    how tight it is (full config: medians 0.6% below the exact value on
    average, 4.5% at worst);

* the **regression relative error**
  :math:`(\|A\hat x - b\|_p - \|Ax^\star - b\|_p) / \|Ax^\star - b\|_p` with
  ``b = A x_true + noise`` (Student-t ``noise_df``, times ``noise_scale``),
  :math:`x^\star` from :func:`~jaxsampling.kernels.leverage.lp_regression`
  on the full data and :math:`\hat x` on a coreset of ``[A, b]`` (sampled
  with the probabilities of the augmented matrix, as
  :func:`~jaxsampling.kernels.leverage.coreset` does).

A **cell** is ``(p, method, sampling_p)``: the evaluation norm (also the
reweighting ``pi^(-1/p)``) and the ``p`` of the Lewis weights or
sensitivities behind the probabilities. The grid runs every method of
``methods`` at ``sampling_p = p`` for each ``p`` of ``p_values``, then the
``cross_cells`` ``(method, sampling_p, p)`` (default: the l_1 Lewis and
l_1 Lewis + leverage coresets evaluated at ``p = 2``). One block per cell:
its probabilities (for ``A`` and for ``[A, b]``) are computed once, then
``num_seeds`` Bernoulli coresets
(:func:`~jaxsampling.kernels.leverage.sample_rows`) for every ``m`` of
``sizes`` are drawn and evaluated together. Compilation dominates on a
CPU, so few programs are built: all sizes share one static capacity (that of
the largest ``m``), so the evaluation compiles once per ``p``; the samples
are drawn with the l_1 weights ``pi^(-1)`` and raised to the power ``1/p``
(:func:`reweight`), so the sampling compiles once; the probabilities compile
once per (method, sampling p), with the ``p``-free methods at ``p = 2`` and,
at ``p = 2``, ``lewis``, ``sensitivity`` and ``lewis_plus_leverage``
sampling from the leverage scores they equal there (:func:`canonical`).
Each block's ``metrics.jsonl`` line holds lists over ``sizes``, and
``summary.json`` one row per (cell, m) with the medians over the seeds (and
the quartiles of the distortion).

Float32 settings. The probabilities are computed on an orthonormal basis of
the column space (:func:`probabilities` says why). The Lewis weights use
``lewis_tol`` (default ``1e-3``: a 0.1% relative accuracy, ample for
sampling probabilities, reached in about 10 iterations at every ``p``); the
kernel's default ``1e-6`` is below the float32 rounding of log-weights near
``log(d / n)``, so the iteration would run to its cap of 100 iterations. The
coreset regressions stop at a relative objective decrease of
``regression_tol`` (``1e-7``). The full-data IRLS smooths residuals below
``sqrt(eps) max |b|`` (about 18 here, for a median noise of 0.9), so at
``p = 1`` its float32 objective is 1-2e-4 (relative) above the float64
optimum: the relative errors read low by that much.

Run it from the repository root::

    python -m jaxsampling.main --config=configs/lp_coreset.py \
        --workdir=runs/lp_coreset

Example:
    >>> summary = train_and_evaluate(config, "/tmp/lp_coreset")  # doctest: +SKIP
    >>> summary["results"][0]["distortion"]  # doctest: +SKIP

References:
    Cohen & Peng (2015), l_p row sampling by Lewis weights. Woodruff & Yasuda
    (2023), Sharper bounds for l_p sensitivity sampling.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from jaxsampling.kernels import leverage
from jaxsampling.train import _blocks
from jaxsampling.types import Array, PRNGKey

METHODS = leverage.SAMPLING_METHODS
# Methods whose probabilities depend on the sampling p.
P_DEPENDENT = ("lewis", "sensitivity", "lewis_plus_leverage")


class Cell(NamedTuple):
    """One block of the grid."""

    p: float  # evaluation norm (distortion, regression, reweighting)
    method: str
    sampling_p: float  # p of the Lewis weights / sensitivities


class Problem(NamedTuple):
    """The data (float32 arrays).

    Attributes:
        A: the ``n x d`` Student-t matrix.
        b: regression targets ``A x_true + noise``.
        random: ``d x J_r`` unit Gaussian directions (whitened coordinates).
    """

    A: Array
    b: Array
    random: Array


class Reference(NamedTuple):
    """What every cell evaluated at the norm ``p`` shares.

    Attributes:
        x_opt: the full-data l_p regression solution.
        optimum: ``||A x_opt - b||_p``.
        lewis: the l_p Lewis weights ``w`` of ``A`` (``sum w = d``).
        M: ``d x d`` with ``W^(1/2 - 1/p) A M`` orthonormal (Lewis whitening;
            at ``p = 2`` plain whitening).
        Q: ``A M``; a direction is ``x = M z``, so ``A x = Q z``.
        directions: ``d x J`` fixed candidate ``z``, unit norm: the random
            ones, then ``z_i = M^T a_i`` of the ``num_row_directions`` rows of
            largest Lewis weight (``x_i = (A^T W^(1-2/p) A)^-1 a_i``, the
            direction that loads ``A x`` on row ``i``).
        full_norms: ``||Q z_j||_p`` of the fixed directions.
    """

    x_opt: Array  # float32[d]
    optimum: Array  # float32[]
    lewis: Array  # float32[n]
    M: Array  # float32[d, d]
    Q: Array  # float32[n, d]
    directions: Array  # float32[d, J]
    full_norms: Array  # float32[J]


class ExperimentState(NamedTuple):
    """Results so far; the checkpointed state (``B`` cells, ``K`` sizes, ``S`` seeds).

    Attributes:
        next_block: index of the first cell not yet run.
        distortion: exact at ``p = 2``, the search's lower bound otherwise.
        distortion_search: the direction search's lower bound (every ``p``).
        distortion_start: the same over the candidates only (no optimisation).
        regression_error: relative excess of the full-data l_p residual.
        sample_size: rows in the distortion coreset.
        overflow: a coreset overflowed the static capacity (rows missing).
        optimum: ``||A x* - b||_p`` at the cell's ``p``.
    """

    next_block: Array  # int32[]
    distortion: Array  # float32[B, K, S]
    distortion_search: Array  # float32[B, K, S]
    distortion_start: Array  # float32[B, K, S]
    regression_error: Array  # float32[B, K, S]
    sample_size: Array  # int32[B, K, S]
    overflow: Array  # bool[B, K, S]
    optimum: Array  # float32[B]


def init_state(num_blocks: int, num_sizes: int, num_seeds: int) -> ExperimentState:
    """Returns the state of a run with no finished block (numpy arrays)."""
    shape = (num_blocks, num_sizes, num_seeds)
    nan = np.full(shape, np.nan, np.float32)
    return ExperimentState(
        next_block=np.zeros((), np.int32),
        distortion=nan,
        distortion_search=nan.copy(),
        distortion_start=nan.copy(),
        regression_error=nan.copy(),
        sample_size=np.zeros(shape, np.int32),
        overflow=np.zeros(shape, bool),
        optimum=np.full((num_blocks,), np.nan, np.float32),
    )


def _check_p(p: Any, what: str) -> float:
    value = float(p)
    if not np.isfinite(value) or value < 1:
        raise ValueError(f"{what} must be a finite number >= 1, got {p!r}")
    return value


def _check_method(method: Any) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {list(METHODS)}")
    return str(method)


def make_blocks(config: Any) -> list[Cell]:
    """The cells in run order: ``methods`` at each ``p_values``, then ``cross_cells``.

    Raises:
        ValueError: an unknown method, a ``p < 1``, a malformed cross cell,
            sizes that are not increasing positive ints at most ``num_rows``,
            or search sizes out of range.
    """
    n, d = int(config.num_rows), int(config.num_cols)
    if not 1 <= d <= n:
        raise ValueError(f"need 1 <= num_cols <= num_rows, got {d} and {n}")
    sizes = list(config.sizes)
    if (
        not sizes
        or any(not isinstance(m, int) or isinstance(m, bool) for m in sizes)
        or sorted(set(sizes)) != sizes
        or sizes[0] < d
        or sizes[-1] > n
    ):
        raise ValueError(
            f"sizes must be increasing ints in [num_cols, num_rows] = [{d}, {n}], "
            f"got {tuple(config.sizes)}"
        )
    opt = int(config.num_optimised)
    candidates = (
        int(config.num_random_directions)
        + int(config.num_row_directions)
        + int(config.num_sampled_directions)
    )
    row_dirs, sampled_dirs = int(config.num_row_directions), int(
        config.num_sampled_directions
    )
    if row_dirs > n or sampled_dirs > sizes[0]:
        raise ValueError("more row directions than rows (or sampled rows)")
    if opt < 0 or opt % 2 or opt > candidates or candidates < 1:
        raise ValueError(
            f"num_optimised ({opt}) must be even, >= 0 and at most the "
            f"{candidates} candidate directions"
        )
    cells = [
        Cell(_check_p(p, "p"), _check_method(m), _check_p(p, "p"))
        for p in config.p_values
        for m in config.methods
    ]
    for cross in config.cross_cells:
        if len(cross) != 3:
            raise ValueError(
                f"a cross cell is (method, sampling_p, p), got {tuple(cross)!r}"
            )
        method, sampling_p, p = cross
        p, sampling_p = _check_p(p, "p"), _check_p(sampling_p, "sampling_p")
        cells.append(Cell(p, _check_method(method), sampling_p))
    if len(set(cells)) != len(cells):
        raise ValueError(f"duplicate cells: {cells}")
    return cells


def canonical(cell: Cell) -> tuple[str, float]:
    """``(method, sampling_p)`` of the probabilities a cell samples from.

    Methods that ignore ``p`` get ``p = 2``; at ``p = 2`` the Lewis weights
    are the leverage scores (the exponent ``1/2 - 1/p`` vanishes), and so are
    the sensitivity bounds (``min(w, tau)``) and the Lewis + leverage mixture,
    so those cells sample from the leverage probabilities (with their own
    keys).
    """
    if cell.method not in P_DEPENDENT or cell.sampling_p == 2.0:
        return ("leverage" if cell.method in P_DEPENDENT else cell.method, 2.0)
    return (cell.method, cell.sampling_p)


def label(cell: Cell) -> str:
    """``"<method>"``, or ``"<method> (p=<sampling_p>)"`` for a cross cell."""
    if cell.sampling_p == cell.p or cell.method not in P_DEPENDENT:
        return cell.method
    return f"{cell.method} (p={cell.sampling_p:g})"


# ---------------------------------------------------------------------------
# Data and per-p references.


def make_data(config: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(A, b, x_true)`` in float32 from ``numpy.random.default_rng(data_seed)``.

    ``A`` has i.i.d. Student-t(``t_df``) entries, ``x_true`` standard normal
    entries, and ``b = A x_true + noise_scale * t(noise_df)``.
    """
    n, d = int(config.num_rows), int(config.num_cols)
    rng = np.random.default_rng(int(config.data_seed))
    A = rng.standard_t(float(config.t_df), (n, d))
    x_true = rng.standard_normal(d)
    noise = float(config.noise_scale) * rng.standard_t(float(config.noise_df), n)
    b = A @ x_true + noise
    return A.astype(np.float32), b.astype(np.float32), x_true.astype(np.float32)


def _unit(Z: Array) -> Array:
    """Columns of ``Z`` scaled to unit norm."""
    return Z / jnp.linalg.norm(Z, axis=0, keepdims=True)


def _lp_norms(Y: Array, p: float) -> Array:
    """``||Y[:, j]||_p`` of each column."""
    return jnp.sum(jnp.abs(Y) ** p, axis=0) ** (1.0 / p)


def make_problem(config: Any) -> Problem:
    """The data and the random candidate directions (``data_seed``)."""
    A, b, _ = make_data(config)
    rng = np.random.default_rng([int(config.data_seed), 1])
    random = rng.standard_normal((A.shape[1], int(config.num_random_directions)))
    random /= np.linalg.norm(random, axis=0, keepdims=True)
    return Problem(jnp.asarray(A), jnp.asarray(b), jnp.asarray(random, jnp.float32))


@functools.partial(jax.jit, static_argnames=("p", "num_row_directions"))
def reference(
    problem: Problem, lewis_probabilities: Array, *, p: float, num_row_directions: int
) -> Reference:
    """The full-data l_p regression, the Lewis whitening and the fixed directions.

    Args:
        problem: the data.
        lewis_probabilities: the l_p Lewis sampling probabilities ``w / d``.
        p: the evaluation norm.
        num_row_directions: rows of largest Lewis weight to aim at.
    """
    A, b = problem.A, problem.b
    x_opt, _ = leverage.lp_regression(A, b, p)
    optimum = _lp_norms((A @ x_opt - b)[:, None], p)[0]
    lewis = lewis_probabilities * A.shape[1]
    M, _ = leverage.gram_whitener(A * (lewis ** (0.5 - 1.0 / p))[:, None])
    Q = A @ M
    _, top = jax.lax.top_k(lewis, num_row_directions)
    directions = _unit(jnp.concatenate([problem.random, Q[top].T], axis=1))
    full_norms = _lp_norms(Q @ directions, p)
    return Reference(x_opt, optimum, lewis, M, Q, directions, full_norms)


def _orthonormal_basis(X: Array) -> Array:
    """``X M`` with orthonormal columns (two Cholesky-QR passes)."""
    for _ in range(2):
        M, _ = leverage.gram_whitener(X)
        X = X @ M
    return X


@functools.partial(jax.jit, static_argnames=("method", "p", "lewis_tol"))
def probabilities(
    A: Array, b: Array, *, method: str, p: float, lewis_tol: float
) -> tuple[Array, Array]:
    """``(q_A, q_Ab)``: the sampling probabilities of ``A`` and of ``[A, b]``.

    Every method's probabilities depend only on the column space, so they
    are computed on an orthonormal basis of it. This works around the
    float32 rank tolerance of the kernel's rank-revealing leverage branch
    (``s_max max(n, d) eps``, 2.4% of ``s_max`` at ``n = 200,000``): on
    ``[A, b]`` at ``p = 3`` the Lewis iteration's reweighted matrix takes
    that branch, loses 7 of its 51 directions (the weights sum to 44) and
    the sensitivity "upper bounds" fall 100 times below the sensitivity of
    the largest-residual row, so those coresets miss it.
    """
    q_A = leverage.sampling_probabilities(
        _orthonormal_basis(A), p, method, lewis_tol=lewis_tol
    )
    Ab = _orthonormal_basis(jnp.concatenate([A, b[:, None]], axis=1))
    q_Ab = leverage.sampling_probabilities(Ab, p, method, lewis_tol=lewis_tol)
    return q_A, q_Ab


@functools.partial(jax.jit, static_argnames=("sizes", "capacity"))
def draw(
    keys: PRNGKey,
    q_A: Array,
    q_Ab: Array,
    *,
    sizes: tuple[int, ...],
    capacity: int,
) -> tuple[leverage.RowSample, leverage.RowSample]:
    """Bernoulli coresets of ``A`` and of ``[A, b]`` for each size and key.

    The samples are drawn with the l_1 reweighting ``pi^(-1)``;
    :func:`reweight` turns them into the l_p one, ``pi^(-1/p)``, so this
    program compiles once for every ``p``.

    Args:
        keys: ``[K, S]`` keys, one per (size, seed).

    Returns:
        ``(sample_A, sample_Ab)``, RowSamples with leading axes ``[K, S]``
        and ``capacity`` slots.
    """

    q = jnp.stack([q_A, q_Ab])  # one sample_rows per size, vmapped over both

    def one(key, m):
        sample = functools.partial(leverage.sample_rows, m=m, p=1.0, capacity=capacity)
        return jax.vmap(sample)(jax.random.split(key), q)

    out = [jax.vmap(functools.partial(one, m=m))(keys[i]) for i, m in enumerate(sizes)]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *out)  # leaves [K, S, 2, ...]
    return (
        jax.tree.map(lambda x: x[:, :, 0], stacked),
        jax.tree.map(lambda x: x[:, :, 1], stacked),
    )


def reweight(sample: leverage.RowSample, p: float) -> leverage.RowSample:
    """An l_1-weighted sample (``pi^(-1)``) with the l_p weights ``pi^(-1/p)``."""
    return sample._replace(weights=sample.weights ** (1.0 / p))


# ---------------------------------------------------------------------------
# Evaluation of one coreset.


def _search(
    problem: Problem,
    ref: Reference,
    rows: Array,
    sample: leverage.RowSample,
    p: float,
    num_sampled: int,
    num_optimised: int,
    steps: int,
    learning_rate: float,
) -> tuple[Array, Array]:
    """``(start, found)``: the distortion lower bounds before and after the search."""
    SAM = rows @ ref.M
    # Rows the coreset over-weights: largest weight^p w_i (w_i bounds the
    # l_p sensitivity, up to d^(p/2 - 1) for p > 2) among the sampled.
    score = sample.weights**p * ref.lewis[sample.indices]
    score = jnp.where(sample.mask, score, -jnp.inf)
    _, top = jax.lax.top_k(score, num_sampled)
    Z_s = _unit(ref.Q[sample.indices[top]].T)
    ratio_fixed = _lp_norms(SAM @ ref.directions, p) / ref.full_norms
    ratio_s = _lp_norms(SAM @ Z_s, p) / _lp_norms(ref.Q @ Z_s, p)
    Z = jnp.concatenate([ref.directions, Z_s], axis=1)
    log_ratio = jnp.log(jnp.concatenate([ratio_fixed, ratio_s]))
    start = jnp.maximum(
        leverage.lp_distortion(problem.A, rows, p, ref.M @ ref.directions),
        leverage.lp_distortion(problem.A, rows, p, ref.M @ Z_s),
    )
    if num_optimised == 0:
        return start, start
    half = num_optimised // 2
    order = jnp.argsort(log_ratio)
    z0 = Z[:, jnp.concatenate([order[-half:], order[:half]])]
    sign = jnp.concatenate([jnp.ones(half), -jnp.ones(half)]).astype(rows.dtype)

    def log_ratios(z):
        sub = jnp.log(jnp.sum(jnp.abs(SAM @ z) ** p, axis=0))
        full = jnp.log(jnp.sum(jnp.abs(ref.Q @ z) ** p, axis=0))
        return (sub - full) / p

    def loss(z):
        value = log_ratios(z)
        return -jnp.sum(sign * value), value

    optimizer = optax.adam(learning_rate)

    def step(carry, _):
        z, opt_state, best_err, best_z = carry
        (_, value), grad = jax.value_and_grad(loss, has_aux=True)(z)
        err = jnp.abs(jnp.expm1(value))
        better = err > best_err
        best_err = jnp.where(better, err, best_err)
        best_z = jnp.where(better[None, :], z, best_z)
        updates, opt_state = optimizer.update(grad, opt_state, z)
        z = _unit(optax.apply_updates(z, updates))
        return (z, opt_state, best_err, best_z), None

    init = (z0, optimizer.init(z0), jnp.full((2 * half,), -1.0, rows.dtype), z0)
    (z, _, _, best_z), _ = jax.lax.scan(step, init, None, length=steps)
    found = leverage.lp_distortion(
        problem.A, rows, p, ref.M @ jnp.concatenate([best_z, z], axis=1)
    )
    return start, jnp.maximum(start, found)


@functools.partial(
    jax.jit,
    static_argnames=(
        "p",
        "num_sampled",
        "num_optimised",
        "steps",
        "learning_rate",
        "regression_tol",
        "batch_size",
    ),
)
def evaluate(
    problem: Problem,
    ref: Reference,
    sample_A: leverage.RowSample,
    sample_Ab: leverage.RowSample,
    *,
    p: float,
    num_sampled: int,
    num_optimised: int,
    steps: int,
    learning_rate: float,
    regression_tol: float,
    batch_size: int | None = None,
) -> tuple[Array, Array, Array, Array]:
    """Distortions and regression errors of a batch of coresets.

    Args:
        problem, ref: the data and the references at ``p``.
        sample_A, sample_Ab: RowSamples with one leading batch axis.
        batch_size: coresets per ``vmap`` (``lax.map`` over batches); None:
            all at once.

    Returns:
        ``(distortion, distortion_search, distortion_start, regression_error)``,
        each ``float[batch]``; ``distortion`` is exact at ``p = 2``.
    """

    def one(samples):
        s_A, s_Ab = (reweight(s, p) for s in samples)
        rows = s_A.weights[:, None] * problem.A[s_A.indices]
        start, found = _search(
            problem, ref, rows, s_A, p, num_sampled, num_optimised, steps, learning_rate
        )
        exact = leverage.subspace_distortion(problem.A, rows) if p == 2.0 else found
        rows_b = s_Ab.weights[:, None] * problem.A[s_Ab.indices]
        targets = s_Ab.weights * problem.b[s_Ab.indices]
        x, _ = leverage.lp_regression(rows_b, targets, p, tol=regression_tol)
        value = _lp_norms((problem.A @ x - problem.b)[:, None], p)[0]
        return exact, found, start, (value - ref.optimum) / ref.optimum

    samples = (sample_A, sample_Ab)
    size = sample_A.count.shape[0]
    if batch_size is None or batch_size >= size:
        return jax.vmap(one)(samples)
    return jax.lax.map(one, samples, batch_size=batch_size)


# ---------------------------------------------------------------------------
# Statistics and the training loop.


def cell_rows(
    cell: Cell, sizes: list[int], state: ExperimentState, b: int
) -> list[dict]:
    """One summary row per size: medians over the seeds (float64 on the host)."""
    rows = []
    for k, m in enumerate(sizes):
        eps = np.asarray(state.distortion[b, k], np.float64)
        q25, q50, q75 = np.quantile(eps, [0.25, 0.5, 0.75])
        rows.append(
            {
                "p": cell.p,
                "method": label(cell),
                "sampling_p": cell.sampling_p,
                "m": m,
                "distortion": float(q50),
                "distortion_q25": float(q25),
                "distortion_q75": float(q75),
                "distortion_exact": cell.p == 2.0,
                "distortion_search": float(
                    np.median(np.asarray(state.distortion_search[b, k], np.float64))
                ),
                "distortion_start": float(
                    np.median(np.asarray(state.distortion_start[b, k], np.float64))
                ),
                "regression_error": float(
                    np.median(np.asarray(state.regression_error[b, k], np.float64))
                ),
                "sample_size": float(
                    np.mean(np.asarray(state.sample_size[b, k], np.float64))
                ),
                "overflows": int(np.sum(state.overflow[b, k])),
            }
        )
    return rows


def block_row(cell: Cell, sizes: list[int], state: ExperimentState, b: int) -> dict:
    """The ``metrics.jsonl`` line of a cell: lists over ``sizes``."""
    rows = cell_rows(cell, sizes, state, b)
    keys = (
        "distortion",
        "distortion_q25",
        "distortion_q75",
        "distortion_search",
        "distortion_start",
        "regression_error",
        "sample_size",
    )
    return {
        "p": cell.p,
        "method": label(cell),
        "sampling_p": cell.sampling_p,
        "distortion_exact": cell.p == 2.0,
        "sizes": list(sizes),
        **{key: [r[key] for r in rows] for key in keys},
    }


def _meta(cells: list[Cell], config: Any) -> dict:
    return {
        "cells": [list(c) for c in cells],
        "sizes": [int(m) for m in config.sizes],
        "num_seeds": int(config.num_seeds),
        "data": [
            int(config.num_rows),
            int(config.num_cols),
            float(config.t_df),
            float(config.noise_df),
            float(config.noise_scale),
            int(config.data_seed),
        ],
        "search": [
            int(config.num_random_directions),
            int(config.num_row_directions),
            int(config.num_sampled_directions),
            int(config.num_optimised),
            int(config.opt_steps),
            float(config.opt_learning_rate),
        ],
        "lewis_tol": float(config.lewis_tol),
        "regression_tol": float(config.regression_tol),
        "seed": int(config.seed),
    }


def train_and_evaluate(config: Any, workdir: str) -> dict:
    """Runs the l_p coreset experiment into ``workdir``; returns the summary.

    Writes ``config.json``, ``metrics.jsonl`` (one line per cell, with lists
    over ``sizes``), checkpoints after each cell and ``summary.json``; a
    workdir holding a checkpoint is resumed (:mod:`jaxsampling.train._blocks`).

    Args:
        config: a ConfigDict as in ``configs/lp_coreset.py``; the optional
            ``stop_after_blocks`` (tests) stops once that many cells are done.
        workdir: the run directory.

    Returns:
        The summary: ``optimum`` (``||A x* - b||_p`` per ``p``) and
        ``results``, one row per (cell, m) with ``p, method, sampling_p, m,
        distortion`` (median; exact at ``p = 2``, else a lower bound),
        ``distortion_q25, distortion_q75, distortion_exact,
        distortion_search, distortion_start, regression_error`` (medians),
        ``sample_size`` (mean) and ``overflows``.

    Raises:
        ValueError: a bad method, ``p``, size or search setting; a checkpoint
            of another config.
        FloatingPointError: a non-finite distortion or regression error.
    """
    cells = make_blocks(config)
    sizes = [int(m) for m in config.sizes]
    num_seeds = int(config.num_seeds)
    capacity = leverage.default_capacity(sizes[-1])
    batch_size = int(config.get("seeds_per_batch", 0)) or None
    lewis_tol = float(config.lewis_tol)
    problem = make_problem(config)
    root_key = jax.random.key(config.seed)
    references: dict[float, Reference] = {}
    probs: dict[tuple[str, float], tuple[Array, Array]] = {}

    def get_reference(p):
        if p not in references:
            lewis_q, _ = get_probabilities(Cell(p, "lewis", p))
            references[p] = reference(
                problem, lewis_q, p=p, num_row_directions=int(config.num_row_directions)
            )
            optimum = float(references[p].optimum)
            logging.info("p = %g: ||A x* - b||_p = %.6g", p, optimum)
        return references[p]

    def get_probabilities(cell):
        key = canonical(cell)
        if key not in probs:
            method, sampling_p = key
            probs[key] = probabilities(
                problem.A, problem.b, method=method, p=sampling_p, lewis_tol=lewis_tol
            )
        return probs[key]

    def run_block(b, state):
        cell = cells[b]
        ref = get_reference(cell.p)
        q_A, q_Ab = get_probabilities(cell)
        keys = _blocks.block_keys(root_key, b, len(sizes) * num_seeds)
        keys = keys.reshape(len(sizes), num_seeds)
        sample_A, sample_Ab = draw(
            keys, q_A, q_Ab, sizes=tuple(sizes), capacity=capacity
        )
        def flat(s):
            return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), s)

        out = evaluate(
            problem,
            ref,
            flat(sample_A),
            flat(sample_Ab),
            p=cell.p,
            num_sampled=int(config.num_sampled_directions),
            num_optimised=int(config.num_optimised),
            steps=int(config.opt_steps),
            learning_rate=float(config.opt_learning_rate),
            regression_tol=float(config.regression_tol),
            batch_size=batch_size,
        )
        shape = (len(sizes), num_seeds)
        eps, search, start, reg = (np.asarray(a).reshape(shape) for a in out)
        for name, values in (
            ("distortion", eps),
            ("distortion search", search),
            ("regression error", reg),
        ):
            _blocks.check_finite(name, values.reshape(-1, 1), b, cell)
        state = _blocks.set_block(
            state,
            b,
            distortion=eps,
            distortion_search=search,
            distortion_start=start,
            regression_error=reg,
            sample_size=np.asarray(sample_A.count),
            overflow=np.asarray(sample_A.overflow) | np.asarray(sample_Ab.overflow),
            optimum=np.asarray(ref.optimum),
        )
        return state, block_row(cell, sizes, state, b)

    def summarize(state):
        done = int(state.next_block)
        rows = [r for b in range(done) for r in cell_rows(cells[b], sizes, state, b)]
        return {
            "experiment": "lp_coreset",
            "complete": done == len(cells),
            "num_rows": int(config.num_rows),
            "num_cols": int(config.num_cols),
            "num_seeds": num_seeds,
            "sizes": sizes,
            "optimum": {
                f"{cells[b].p:g}": float(state.optimum[b]) for b in range(done)
            },
            "results": rows,
        }

    return _blocks.run_blocks(
        config,
        workdir,
        num_blocks=len(cells),
        meta=_meta(cells, config),
        state=init_state(len(cells), len(sizes), num_seeds),
        run_block=run_block,
        summarize=summarize,
    )
