"""The empirical NTK of any model: ``Theta(x, x') = J(x) J(x')^T`` over its parameters.

For a function ``apply_fn(params, x) -> [n, outputs]`` (a flax ``model.apply``,
or ``nnx.merge`` of a split model inside a function), entry
``[i, j, a, b] = sum_p d f_a(x1_i) / dp  d f_b(x2_j) / dp``. Computed without
materialising the Jacobian: one VJP of ``f(x2)`` per output coordinate of
``x2``, each followed by a JVP of ``f(x1)``, in ``lax.map`` batches of 64, so
memory is 64 parameter-sized tangents at a time.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxsampling.kernels import ntk
  >>> net = ntk.TwoLayer(width=4096, outputs=1)
  >>> x = jnp.eye(3)
  >>> params = net.init(jax.random.key(0), x)
  >>> theta = ntk.empirical_ntk(net.apply, params, x, x)
  >>> bool(jnp.allclose(3 * theta, 3 * ntk.two_layer(x, x).ntk, atol=0.1))
  True
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxsampling.types import Array


def empirical_ntk(
    apply_fn: Callable[[Any, Array], Array],
    params: Any,
    x1: Array,
    x2: Array | None = None,
    *,
    trace_outputs: bool = True,
) -> Array:
    """The NTK of ``apply_fn`` at ``params`` between the rows of ``x1`` and ``x2``.

    Args:
        apply_fn: ``(params, x [n, ...]) -> [n, outputs]``.
        params: Any pytree of float arrays.
        x1, x2: Inputs (``x2`` defaults to ``x1``).
        trace_outputs: Average over the output axis (``Theta[i, j] =
            mean_a Theta[i, j, a, a]``, the per-output kernel of an
            infinite-width network); otherwise the full ``[n1, n2, outputs, outputs]``.

    Returns:
        ``[n1, n2]`` (or ``[n1, n2, outputs, outputs]``).
    """
    x2 = x1 if x2 is None else x2
    out2, pullback = jax.vjp(lambda p: apply_fn(p, x2), params)
    if out2.ndim != 2:
        raise ValueError(f"apply_fn must return [n, outputs], got shape {out2.shape}")
    n2, outputs = out2.shape
    basis = jnp.eye(n2 * outputs, dtype=out2.dtype).reshape(n2 * outputs, n2, outputs)

    def column(cotangent):
        (tangent,) = pullback(cotangent)
        return jax.jvp(lambda p: apply_fn(p, x1), (params,), (tangent,))[1]  # [n1, outputs]

    cols = jax.lax.map(column, basis, batch_size=min(64, n2 * outputs))
    full = cols.reshape(n2, outputs, -1, outputs).transpose(2, 0, 3, 1)  # [n1, n2, a, b]
    if trace_outputs:
        return jnp.trace(full, axis1=2, axis2=3) / outputs
    return full
