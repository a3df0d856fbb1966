"""Private: argument checks of the leverage modules (generic ones live in ``kernels._args``)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsampling.kernels._args import check_int, check_key, is_tracer, raise_if_rank_deficient
from jaxsampling.types import Array, ArrayLike

__all__ = [
    "check_int",
    "check_key",
    "check_matrix",
    "check_p",
    "check_vector",
    "is_tracer",
    "raise_if_rank_deficient",
]


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
