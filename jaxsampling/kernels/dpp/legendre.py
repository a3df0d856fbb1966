r"""Orthonormal Legendre polynomials on ``[-1, 1]^d`` (uniform probability measure).

In one dimension, with ``P_j`` the Legendre polynomials (``P_j(1) = 1``),

    phi_j(x) = sqrt(2 j + 1) P_j(x),    int phi_i phi_j dmu = delta_ij,

where ``mu = dx / 2`` is the uniform probability measure on ``[-1, 1]``. In
``d`` dimensions the tensor products ``phi_alpha(x) = prod_k phi_{alpha_k}(x_k)``
over a set of multi-indices ``Lambda`` (``|Lambda| = m``) are orthonormal for
``mu^{otimes d}``. :func:`legendre_indices` gives the first ``m``
multi-indices of the total-degree order (``|alpha|_1``, then lexicographic)
or of the hyperbolic-cross order (``prod_k (alpha_k + 1)``, then
lexicographic); both prefixes are downward closed, so every ``m`` is a valid
polynomial space. In one dimension both give ``0, 1, ..., m - 1``.

A *space* (the argument of every function here and of the continuous
samplers of :mod:`.wls`) is either an int ``m`` (one dimension, degrees
``0..m-1``; points are scalars) or a concrete ``(m, d)`` int array of
multi-indices (points are ``d``-vectors).

The Christoffel bound used by the exact samplers of :mod:`.wls` (Antonov &
Kholshevnikov 1980, Lorch 1983: ``(1 - x^2)^{1/4} |P_j(x)| <= sqrt(2 / pi)
(j + 1/2)^{-1/2}``) reads

    phi_j(x)^2 <= 4 / (pi sqrt(1 - x^2)),                            (*)

four times the arcsine (Chebyshev) density; the constant is sharp as
``j -> infinity`` (``tests/kernels/dpp/test_wls.py`` checks (*) on a grid for
``j < 400``).

Host helpers (numpy, float64) for exact references: :func:`gauss_legendre`
(quadrature for ``mu``, optionally composite over break points) and
:func:`best_approximation` (the L^2(mu) projection of a 1-D function and its
error).

Example:
  >>> import jax.numpy as jnp
  >>> from jaxsampling.kernels import dpp
  >>> dpp.legendre_basis(jnp.array([0.0, 1.0]), 3).round(4)
  Array([[ 1.    ,  0.    , -1.118 ],
         [ 1.    ,  1.7321,  2.2361]], dtype=float32)
  >>> dpp.legendre_indices(2, 6).tolist()
  [[0, 0], [0, 1], [1, 0], [0, 2], [1, 1], [2, 0]]
  >>> x, w = dpp.gauss_legendre(20)
  >>> Phi = dpp.legendre_basis(jnp.asarray(x, jnp.float32), 5)
  >>> bool(jnp.allclose((Phi.T * w) @ Phi, jnp.eye(5), atol=1e-5))
  True
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsampling.kernels.dpp import _checks
from jaxsampling.types import Array, ArrayLike

__all__ = [
    "INDEX_SETS",
    "best_approximation",
    "gauss_legendre",
    "legendre_1d",
    "legendre_basis",
    "legendre_basis_fn",
    "legendre_indices",
    "space_indices",
]

INDEX_SETS = ("total_degree", "hyperbolic_cross")
"""The multi-index orders of :func:`legendre_indices`."""


def legendre_indices(dim: int, m: int, kind: str = "total_degree") -> np.ndarray:
    """The first ``m`` multi-indices in ``dim`` variables, a downward-closed set.

    Args:
      dim: number of variables ``d >= 1``.
      m: number of multi-indices (the dimension of the polynomial space).
      kind: ``"total_degree"`` (order by ``sum_k alpha_k``) or
        ``"hyperbolic_cross"`` (order by ``prod_k (alpha_k + 1)``); ties in
        lexicographic order.

    Returns:
      ``int32[m, dim]`` numpy array.

    Raises:
      ValueError: ``dim`` or ``m`` not a positive int, or an unknown ``kind``.
    """
    dim = _checks.check_int(dim, "dim")
    m = _checks.check_int(m, "m")
    if kind not in INDEX_SETS:
        raise ValueError(f"kind must be one of {INDEX_SETS}, got {kind!r}")
    if kind == "total_degree":
        out: list[tuple[int, ...]] = []
        degree = 0
        while len(out) < m:
            level = [a for a in _compositions(degree, dim)]
            out.extend(sorted(level))
            degree += 1
        return np.asarray(out[:m], np.int32).reshape(m, dim)
    # Hyperbolic cross: every alpha with prod (alpha_k + 1) <= P, for the smallest
    # P that gives at least m of them.
    bound = 1
    while True:
        cand = _hyperbolic(dim, bound)
        if len(cand) >= m:
            break
        bound *= 2
    cand.sort(key=lambda a: (math.prod(k + 1 for k in a), a))
    return np.asarray(cand[:m], np.int32).reshape(m, dim)


def _compositions(total: int, dim: int):
    """Every ``alpha`` in ``N^dim`` with ``sum(alpha) == total``."""
    if dim == 1:
        yield (total,)
        return
    for first in range(total + 1):
        for rest in _compositions(total - first, dim - 1):
            yield (first,) + rest


def _hyperbolic(dim: int, bound: int) -> list[tuple[int, ...]]:
    """Every ``alpha`` in ``N^dim`` with ``prod(alpha_k + 1) <= bound``."""
    if dim == 1:
        return [(k,) for k in range(bound)]
    out = []
    for first in range(bound):
        for rest in _hyperbolic(dim - 1, bound // (first + 1)):
            out.append((first,) + rest)
    return out


def space_indices(space: Any) -> tuple[np.ndarray, bool]:
    """``(indices, scalar_points)``: the ``(m, d)`` multi-indices of a space.

    ``space`` is an int ``m`` (1-D, degrees ``0..m-1``, scalar points) or a
    concrete ``(m, d)`` array of non-negative ints (``d``-vector points).

    Raises:
      ValueError: a traced, non-integer, negative, repeated or empty index set.
    """
    if isinstance(space, (int, np.integer)) and not isinstance(space, bool):
        m = _checks.check_int(space, "space")
        return np.arange(m, dtype=np.int32)[:, None], True
    if _checks.is_tracer(space):
        raise ValueError("space must be concrete (an int m or an (m, d) index array)")
    indices = np.asarray(space)
    if indices.ndim != 2 or 0 in indices.shape:
        raise ValueError(
            f"space must be an int m or an (m, d) array of multi-indices, got shape "
            f"{indices.shape}"
        )
    if not np.issubdtype(indices.dtype, np.integer) or (indices < 0).any():
        raise ValueError("space must hold non-negative integer multi-indices")
    if len({tuple(a) for a in indices.tolist()}) != indices.shape[0]:
        raise ValueError("space has repeated multi-indices")
    return indices.astype(np.int32), False


def _recurrence(num: int) -> tuple[np.ndarray, np.ndarray]:
    """``(a_j, b_j)`` for ``j = 1..num-2`` of the orthonormal recurrence (float64)."""
    j = np.arange(1, max(num - 1, 1), dtype=np.float64)
    a = np.sqrt((2 * j + 1) * (2 * j + 3)) / (j + 1)
    b = j * np.sqrt(2 * j + 3) / ((j + 1) * np.sqrt(2 * j - 1))
    return a, b


def legendre_1d(x: ArrayLike, num: int) -> Array:
    """``phi_0(x), ..., phi_{num-1}(x)`` stacked on a new last axis.

    The three-term recurrence of the orthonormal polynomials,
    ``phi_{j+1} = a_j x phi_j - b_j phi_{j-1}`` with
    ``a_j = sqrt((2j+1)(2j+3)) / (j+1)`` and
    ``b_j = j sqrt(2j+3) / ((j+1) sqrt(2j-1))``, as a ``lax.scan`` (an
    unrolled recurrence compiles slowly for large ``num``).

    Args:
      x: points, any shape, floating.
      num: static number of polynomials.

    Returns:
      ``x.shape + (num,)``.
    """
    num = _checks.check_int(num, "num")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    first = [jnp.ones_like(x), math.sqrt(3.0) * x][:num]
    if num <= 2:
        return jnp.stack(first, axis=-1)
    a, b = (jnp.asarray(c, x.dtype) for c in _recurrence(num))

    def step(carry, ab):
        prev, cur = carry
        nxt = ab[0] * x * cur - ab[1] * prev
        return (cur, nxt), nxt

    _, rest = jax.lax.scan(step, tuple(first), (a, b))
    head = jnp.stack(first, axis=-1)
    return jnp.concatenate([head, jnp.moveaxis(rest, 0, -1)], axis=-1)


def _runs(col: np.ndarray) -> list[tuple[int, int]]:
    """``col`` as runs of consecutive integers: ``[(start, length), ...]``."""
    runs: list[tuple[int, int]] = []
    for j in col.tolist():
        if runs and runs[-1][0] + runs[-1][1] == j:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((j, 1))
    return runs


def _static_take(table: Array, col: np.ndarray) -> Array:
    """``table[..., col]`` for a static ``col`` by slicing (gathers are slow on CPU)."""
    parts = [table[..., s : s + n] for s, n in _runs(col)]
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)


def _tensor_basis(x: Array, indices: np.ndarray) -> Array:
    """``phi_alpha(x)`` for ``x`` of shape ``(..., d)``: ``(..., m)``."""
    d = indices.shape[1]
    table = legendre_1d(x, int(indices.max()) + 1)  # (..., d, degree)
    out = _static_take(table[..., 0, :], indices[:, 0])
    for k in range(1, d):
        out = out * _static_take(table[..., k, :], indices[:, k])
    return out


def legendre_basis(x: ArrayLike, space: Any) -> Array:
    """The orthonormal Legendre basis of ``space`` at the points ``x``.

    Args:
      x: for an int space, points of any shape ``S``; for an ``(m, d)`` index
        set, points of shape ``S + (d,)``.
      space: an int ``m`` or a concrete ``(m, d)`` multi-index array.

    Returns:
      ``S + (m,)``: ``phi_alpha(x)``.

    Raises:
      ValueError: a bad space, or points whose last axis is not ``d``.
    """
    indices, scalar = space_indices(space)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must have a floating dtype, got {x.dtype}")
    if scalar:
        return _tensor_basis(x[..., None], indices)
    d = indices.shape[1]
    if x.ndim < 1 or x.shape[-1] != d:
        raise ValueError(f"x must have shape (..., {d}) for this space, got {x.shape}")
    return _tensor_basis(x, indices)


def legendre_basis_fn(space: Any) -> Callable[[ArrayLike], Array]:
    """A jitted ``basis(x) -> (..., m)`` for a fixed space (:func:`legendre_basis`)."""
    indices, scalar = space_indices(space)
    spec = int(indices.shape[0]) if scalar else indices
    return jax.jit(lambda x: legendre_basis(x, spec))


@functools.lru_cache(maxsize=32)
def _leggauss(num: int) -> tuple[np.ndarray, np.ndarray]:
    t, w = np.polynomial.legendre.leggauss(num)
    t.setflags(write=False)
    w.setflags(write=False)
    return t, w


def gauss_legendre(
    num: int, breakpoints: Sequence[float] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights for ``mu = dx / 2`` on ``[-1, 1]`` (float64).

    With ``breakpoints`` (inside ``(-1, 1)``) the rule is composite: ``num``
    nodes on each piece, exact for piecewise polynomials of degree
    ``2 num - 1`` with kinks at the break points. The weights sum to 1.

    Returns:
      ``(nodes, weights)``, numpy float64 arrays.
    """
    num = _checks.check_int(num, "num")
    edges = [-1.0, *sorted(float(b) for b in breakpoints), 1.0]
    if any(not -1.0 < b < 1.0 for b in edges[1:-1]) or len(set(edges)) != len(edges):
        raise ValueError(
            f"breakpoints must be distinct and inside (-1, 1), got {breakpoints}"
        )
    t, w = _leggauss(num)
    nodes, weights = [], []
    for lo, hi in itertools.pairwise(edges):
        half = (hi - lo) / 2
        nodes.append(lo + half * (t + 1))
        weights.append(w * half / 2)
    return np.concatenate(nodes), np.concatenate(weights)


def _legendre_1d_np(x: np.ndarray, num: int) -> np.ndarray:
    """:func:`legendre_1d` in float64 numpy."""
    values = [np.ones_like(x), np.sqrt(3.0) * x][:num]
    for a, b in zip(*_recurrence(num)):
        values.append(a * x * values[-1] - b * values[-2])
    return np.stack(values, axis=-1)


def best_approximation(
    f: Callable[[np.ndarray], np.ndarray],
    m: int,
    *,
    num_nodes: int = 400,
    breakpoints: Sequence[float] = (),
) -> tuple[np.ndarray, float, float]:
    """The L^2(mu) projection of a 1-D function onto polynomials of degree < m.

    ``c_j = int f phi_j dmu`` and ``e_m(f)^2 = int (f - sum_j c_j phi_j)^2 dmu``
    by composite Gauss-Legendre quadrature in float64 (:func:`gauss_legendre`;
    put a break point at every kink of ``f``). For any coefficients ``c``,
    ``||f - sum_j c_j phi_j||^2 = e_m(f)^2 + ||c - c*||^2`` (Parseval).

    Args:
      f: a numpy function of a float64 array.
      m: dimension of the polynomial space.
      num_nodes: nodes per piece.
      breakpoints: kinks of ``f`` inside ``(-1, 1)``.

    Returns:
      ``(c_star, e_m(f)^2, ||f||^2)``: float64 ``[m]`` and two floats.
    """
    m = _checks.check_int(m, "m")
    x, w = gauss_legendre(num_nodes, breakpoints)
    fx = np.asarray(f(x), np.float64)
    Phi = _legendre_1d_np(x, m)
    coef = Phi.T @ (w * fx)
    residual = fx - Phi @ coef
    return coef, float(np.sum(w * residual**2)), float(np.sum(w * fx**2))
