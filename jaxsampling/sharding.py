"""Mesh and batch-sharding helpers shared by kernels and trainers.

A *batch axis* (particles, walkers, draws, ensemble members, rows of a tall
matrix) is the leading axis of an array. These helpers build a 1-D mesh over
the available devices, place a batch axis on it, and let a kernel read the
explicit sharding of its input so that its output keeps it.

Both mesh flavours of ``jax.make_mesh`` are supported:

* ``AxisType.Explicit`` (the default in jax 0.10): shardings are part of the
  array type; ops that need the whole axis (``cumsum``, gathers across the
  axis) must ``jax.reshard`` first. Kernels call :func:`unshard` on entry and
  :func:`reshard_like` on exit.
* ``AxisType.Auto``: the compiler propagates shardings and inserts the
  collectives itself; :func:`unshard` and :func:`reshard_like` are no-ops.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxsampling import sharding
  >>> mesh = sharding.batch_mesh()
  >>> x = sharding.shard_batch(jnp.zeros((8 * jax.device_count(), 3)), mesh)
  >>> x.sharding.spec[0]
  'batch'
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import jax
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "BATCH_AXIS",
    "axis_size",
    "batch_mesh",
    "batch_sharding",
    "explicit_batch_axis",
    "gather_batch",
    "map_batch",
    "replicate",
    "reshard_like",
    "shard_batch",
    "unshard",
]

BATCH_AXIS = "batch"


def batch_mesh(
    axis_name: str = BATCH_AXIS,
    *,
    axis_type: AxisType = AxisType.Explicit,
    devices: Sequence[jax.Device] | None = None,
) -> Mesh:
    """A 1-D mesh over ``devices`` (all devices by default).

    Args:
      axis_name: name of the single mesh axis.
      axis_type: ``AxisType.Explicit`` (default) or ``AxisType.Auto``.
      devices: devices to use; defaults to ``jax.devices()``.

    Returns:
      A ``jax.sharding.Mesh`` of shape ``(len(devices),)``.
    """
    devices = list(jax.devices() if devices is None else devices)
    return jax.make_mesh(
        (len(devices),), (axis_name,), axis_types=(axis_type,), devices=devices
    )


def batch_sharding(mesh: Mesh, ndim: int = 1) -> NamedSharding:
    """Sharding that splits the leading axis over the mesh's first axis."""
    return NamedSharding(mesh, P(mesh.axis_names[0], *([None] * (ndim - 1))))


def shard_batch(tree: Any, mesh: Mesh) -> Any:
    """Places every leaf of ``tree`` with its leading axis split over ``mesh``.

    Raises:
      ValueError: if a leaf's leading axis is not divisible by the mesh size.
    """
    size = mesh.devices.size

    def put(x):
        if x.ndim == 0 or x.shape[0] % size:
            raise ValueError(
                f"leading axis of shape {x.shape} is not divisible by the "
                f"{size} devices of the mesh"
            )
        return jax.device_put(x, batch_sharding(mesh, x.ndim))

    return jax.tree.map(put, tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places every leaf of ``tree`` fully replicated on ``mesh``."""
    return jax.tree.map(lambda x: jax.device_put(x, NamedSharding(mesh, P())), tree)


def explicit_batch_axis(x: jax.Array) -> str | tuple[str, ...] | None:
    """The explicit mesh axis (or axes) that shard ``x``'s leading axis, if any.

    Works on concrete arrays and on tracers. Returns ``None`` for unsharded
    arrays and for arrays on ``AxisType.Auto`` meshes, whose sharding is not
    part of the type.
    """
    spec = jax.typeof(x).sharding.spec
    if not spec:
        return None
    return spec[0]


def unshard(x: jax.Array) -> jax.Array:
    """Replicates ``x`` if it is sharded on an explicit mesh axis; else returns it.

    This is an all-gather of ``x``: kernels call it only where the math needs
    the whole axis (a global prefix sum, a gather across the axis).
    """
    if any(axis is not None for axis in jax.typeof(x).sharding.spec):
        return jax.reshard(x, P())
    return x


def axis_size(x: jax.Array, axis: str | tuple[str, ...]) -> int:
    """Number of devices along the mesh ``axis`` (or axes) of ``x``'s sharding."""
    mesh = jax.typeof(x).sharding.mesh
    names = axis if isinstance(axis, tuple) else (axis,)
    return math.prod(mesh.shape[name] for name in names)


def reshard_like(y: jax.Array, axis: str | tuple[str, ...] | None) -> jax.Array:
    """Shards ``y``'s leading axis over the explicit mesh ``axis`` (if any).

    ``axis`` comes from :func:`explicit_batch_axis` of the kernel's input. The
    result stays replicated when ``y``'s leading axis does not divide evenly.
    """
    if axis is None or y.ndim == 0 or y.shape[0] % axis_size(y, axis):
        return y
    return jax.reshard(y, P(axis, *([None] * (y.ndim - 1))))


def gather_batch(x: jax.Array, indices: jax.Array) -> jax.Array:
    """``x[indices]`` along the leading axis, keeping ``x``'s explicit sharding.

    On an explicit mesh the operand is all-gathered (the rows a device needs
    may live anywhere) and each device gathers its own slice of ``indices``,
    so the result is sharded like ``x``. Elsewhere it is plain indexing.
    """
    axis = explicit_batch_axis(x)
    x = unshard(x)
    indices = unshard(indices)
    if axis is None:
        return x[indices]
    indices = reshard_like(indices, axis)
    if not any(a is not None for a in jax.typeof(indices).sharding.spec):
        return reshard_like(x[indices], axis)
    return x.at[indices].get(out_sharding=P(axis, *([None] * (x.ndim - 1))))


def map_batch(fn: Callable[..., Any], batched: Any, *shared: Any) -> Any:
    """``fn(batched, *shared)``, run per device when ``batched`` is sharded on an explicit mesh.

    For independent batch members (draws, chains, each with its own key):
    each device runs ``fn`` on its slice of every leaf of ``batched``
    (``jax.shard_map``; ``shared`` inputs replicated) and the outputs keep
    the batch sharding, with no collective. On Auto meshes and unsharded
    inputs it is a plain call. Inside ``fn``, batched gathers need no
    ``out_sharding``: each device sees plain local arrays.
    """
    first = jax.tree.leaves(batched)[0]
    axis = explicit_batch_axis(first)
    if axis is None:
        return fn(batched, *shared)
    shared = jax.tree.map(unshard, shared)
    mesh = jax.typeof(first).sharding.mesh
    batched = jax.tree.map(
        lambda x: x if explicit_batch_axis(x) == axis else reshard_like(unshard(x), axis), batched
    )
    specs = (P(axis), *([P()] * len(shared)))
    mapped = jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=P(axis), check_vma=False)
    return mapped(batched, *shared)
