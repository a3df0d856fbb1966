"""Private: argument checks and key batching of the DPP modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


from jaxsampling import sharding
from jaxsampling.kernels._args import check_int, check_key, is_tracer
from jaxsampling.types import Array, ArrayLike

__all__ = [
    "all_finite",
    "as_keys",
    "check_int",
    "check_orthonormal",
    "check_square_kernel",
    "is_tracer",
    "map_draws",
    "poison",
    "unbatch",
]


def as_keys(key: Any, num_draws: int | None) -> tuple[Array, bool]:
    """Typed keys of shape ``(B,)`` and whether the caller asked for one draw.

    ``num_draws=None`` with one key gives one draw; ``num_draws=B`` splits the
    key into ``B``; a batch of keys (typed ``(B,)`` or legacy ``uint32[B, 2]``)
    gives one draw per key and keeps the keys' sharding.
    """
    dtype = getattr(key, "dtype", None)
    typed = dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key)
    batched = (typed and np.ndim(key) == 1) or (
        not typed and np.ndim(key) == 2 and dtype == jnp.uint32
    )
    if batched:
        if num_draws is not None:
            raise ValueError("pass either a batch of keys or num_draws, not both")
        if not typed and np.shape(key)[1] != 2:
            raise ValueError(f"a batch of legacy keys must be uint32[B, 2], got {np.shape(key)}")
        keys = key if typed else jax.random.wrap_key_data(key)
        if keys.shape[0] == 0:
            raise ValueError("the batch of keys is empty")
        return keys, False
    check_key(key)
    key = key if typed else jax.random.wrap_key_data(key)
    if num_draws is None:
        return key[None], True
    return jax.random.split(key, check_int(num_draws, "num_draws")), False


def map_draws(fn: Callable[..., Any], keys: Array, *shared: Any) -> Any:
    """``fn(keys, *shared)``, run per device when ``keys`` is sharded on an explicit mesh.

    Draws are independent, so each device runs the sampler on its own slice
    of the keys (``jax.shard_map``; ``shared`` inputs replicated) and the
    outputs keep the keys' sharding, with no collective. On Auto meshes and
    unsharded keys it is a plain call.
    """
    return sharding.map_batch(fn, keys, *shared)


def poison(items: Array, *inputs: Array) -> Array:
    """``items``, or all ``-1`` when an input has a non-finite entry.

    Concrete inputs are checked eagerly (``ValueError``); under ``jit`` a NaN
    kernel must not produce a plausible-looking set, so the draw is all padding.
    """
    return jnp.where(all_finite(*inputs), items, -1)


def all_finite(*inputs: Array) -> Array:
    """Scalar ``bool``: every entry of every input is finite."""
    return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in inputs]))


def unbatch(tree: Any, single: bool) -> Any:
    """Drops the leading draw axis of every leaf when the caller asked for one draw."""
    return jax.tree.map(lambda x: x[0], tree) if single else tree


def check_floating(x: ArrayLike, name: str, ndim: int, shape_doc: str) -> Array:
    x = jnp.asarray(x)
    if x.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape_doc}, got shape {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name} must have a floating dtype, got {x.dtype}")
    if 0 in x.shape:
        raise ValueError(f"{name} must be non-empty, got shape {x.shape}")
    if not is_tracer(x) and not np.isfinite(np.asarray(x)).all():
        raise ValueError(f"{name} has non-finite entries")
    return x


def tolerance(dtype: Any, size: int) -> float:
    """Round-off allowance for an orthonormality or symmetry test."""
    return 100.0 * size * float(jnp.finfo(dtype).eps)


def check_orthonormal(V: ArrayLike, name: str = "V") -> Array:
    """``(N, k)`` with ``N >= k``; with concrete values, ``V^T V = I`` to round-off."""
    V = check_floating(V, name, 2, "(N, k)")
    n, k = V.shape
    if n < k:
        raise ValueError(f"{name} must have at least as many rows as columns, got {V.shape}")
    if not is_tracer(V):
        v = np.asarray(V, dtype=np.float64)
        err = float(np.abs(v.T @ v - np.eye(k)).max())
        if err > tolerance(V.dtype, n):
            raise ValueError(
                f"{name} must have orthonormal columns: max |{name}^T {name} - I| = {err:.3g}; "
                "orthonormalise it first (for example with jnp.linalg.qr)"
            )
    return V


def check_square_kernel(M: ArrayLike, name: str) -> Array:
    """A floating ``(N, N)`` matrix; with concrete values, symmetric to round-off."""
    M = check_floating(M, name, 2, "(N, N)")
    if M.shape[0] != M.shape[1]:
        raise ValueError(f"{name} must be square, got shape {M.shape}")
    if not is_tracer(M):
        m = np.asarray(M, dtype=np.float64)
        scale = max(float(np.abs(m).max()), np.finfo(np.float64).tiny)
        asym = float(np.abs(m - m.T).max())
        if asym > tolerance(M.dtype, M.shape[0]) * scale:
            raise ValueError(f"{name} must be symmetric: max |{name} - {name}^T| = {asym:.3g}")
    return M
