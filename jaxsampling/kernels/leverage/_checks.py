"""Private: argument checks shared by the leverage modules."""

from __future__ import annotations

import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsampling.types import Array, ArrayLike


def is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def check_matrix(A: ArrayLike, name: str = "A", *, tall: bool = True) -> Array:
    """A floating ``(n, d)`` matrix; with concrete values, finite entries."""
    A = jnp.asarray(A)
    if A.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d), got shape {A.shape}")
    if not jnp.issubdtype(A.dtype, jnp.floating):
        raise ValueError(f"{name} must have a floating dtype, got {A.dtype}")
    n, d = A.shape
    if n == 0 or d == 0:
        raise ValueError(f"{name} must be non-empty, got shape {A.shape}")
    if tall and n < d:
        raise ValueError(f"{name} must be tall (n >= d), got shape {A.shape}")
    if not is_tracer(A):
        bad = ~np.isfinite(np.asarray(A)).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise ValueError(
                f"{name} has non-finite entries in {rows.size} row(s), first rows "
                f"{rows[:5].tolist()}"
            )
    return A


def check_vector(b: ArrayLike, n: int, name: str = "b", dtype: Any = None) -> Array:
    b = jnp.asarray(b, dtype=dtype)
    if b.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got shape {b.shape}")
    if not jnp.issubdtype(b.dtype, jnp.floating):
        raise ValueError(f"{name} must have a floating dtype, got {b.dtype}")
    if not is_tracer(b) and not np.isfinite(np.asarray(b)).all():
        i = int(np.argmax(~np.isfinite(np.asarray(b))))
        raise ValueError(f"{name} must be finite; {name}[{i}] = {np.asarray(b)[i]}")
    return b


def check_p(p: Any, *, name: str = "p") -> float:
    """The norm exponent: a Python number >= 1 (it selects the algorithm)."""
    try:
        value = float(p)
    except (TypeError, jax.errors.ConcretizationTypeError):
        raise ValueError(f"{name} must be a Python number, got {type(p).__name__}") from None
    if not np.isfinite(value) or value < 1:
        raise ValueError(f"{name} must be a finite number >= 1, got {p}")
    return value


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    try:
        n = operator.index(value)
    except TypeError:
        raise ValueError(
            f"{name} must be a Python int (it fixes a shape), got {type(value).__name__}"
        ) from None
    if n < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {n}")
    return n


def check_key(key: Any) -> None:
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"key must be a single typed key, got shape {key.shape}")
        return
    if np.shape(key) != (2,) or dtype != jnp.uint32:
        raise ValueError(
            "key must be a typed key (jax.random.key) or a uint32[2] legacy key, got "
            f"shape {np.shape(key)} and dtype {dtype}"
        )


def raise_if_rank_deficient(A: Array, name: str = "A") -> None:
    """With concrete ``A``: ``ValueError`` when its columns are numerically dependent.

    A cheap test on the column-equilibrated Gram matrix clears well-conditioned
    input (``lambda_min > 100 d eps lambda_max``); otherwise the singular
    values of ``A`` (float64 SVD) decide, with the cut-off
    ``s_max sqrt(n) d eps`` of the rank-revealing leverage branch.
    """
    if is_tracer(A):
        return
    values = np.asarray(A, dtype=np.float64)
    gram = values.T @ values
    scale = np.sqrt(np.diag(gram))
    if (scale == 0).any():
        j = int(np.argmax(scale == 0))
        raise ValueError(f"{name} is rank-deficient: column {j} is zero")
    eig = np.linalg.eigvalsh(gram / np.outer(scale, scale))
    n, d = values.shape
    eps = np.finfo(np.asarray(A).dtype).eps
    if eig[0] > 100 * d * eps * eig[-1]:
        return
    s = np.linalg.svd(values / scale, compute_uv=False)
    rank = int((s > s[0] * np.sqrt(n) * d * eps).sum())
    if rank < d:
        raise ValueError(
            f"{name} is rank-deficient: numerical rank {rank} < {d} columns "
            f"(condition number {s[0] / max(s[-1], 1e-300):.3g}); drop or combine "
            "dependent columns"
        )
