"""Private: argument checks shared by the kernel families.

Shape and dtype problems raise ``ValueError`` at trace time; value checks run
only on concrete arrays (:func:`is_tracer` tells them apart).
"""

from __future__ import annotations

import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsampling.types import Array


def is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


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
