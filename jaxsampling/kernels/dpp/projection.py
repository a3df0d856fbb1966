"""Exact projection-DPP draws from an orthonormal basis, batched.

The projection DPP of an ``N x k`` matrix ``V`` with orthonormal columns has
kernel ``K = V V^T`` and always ``k`` items:

    P(S) = det(K_S) = det(V_S)^2,    |S| = k.

:func:`sample_projection` runs the chain rule of :mod:`.chain_rule` on many
draws at once, ``2 N k^2 + 4 k^3`` flops a draw as matrix products, and never
forms the ``N x N`` kernel.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxsampling.kernels import dpp
  >>> V, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(0), (100, 5)))
  >>> S = dpp.sample_projection(jax.random.key(1), V, num_draws=3)
  >>> S.shape, S.dtype
  ((3, 5), dtype('int32'))
  >>> bool((jnp.sort(S, axis=1)[:, 1:] > jnp.sort(S, axis=1)[:, :-1]).all())  # distinct
  True

Reference:
  Hough, Krishnapur, Peres & Virag (2006), Determinantal processes and independence.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from jaxsampling.kernels.dpp import _checks, rejection
from jaxsampling.kernels.dpp.chain_rule import chain_rule, in_groups, projection_group
from jaxsampling.types import Array, ArrayLike

__all__ = ["sample_projection"]


def sample_projection(
    key: Any, V: ArrayLike, *, num_draws: int | None = None, method: str = "auto"
) -> Array:
    """Draws from the projection DPP ``K = V V^T``, exactly.

    Args:
      key: a PRNG key (one draw, or ``num_draws`` draws), or a batch of keys
        ``(B,)`` (one draw per key; the draws keep the keys' sharding).
      V: ``(N, k)`` matrix with orthonormal columns.
      num_draws: static number of draws from one key.
      method: ``"chain_rule"`` (matrix products, ``2 N k^2`` flops a draw),
        ``"rejection"`` (:mod:`.rejection`, cost independent of ``N``) or
        ``"auto"`` (rejection only for ``N`` far above ``k^2``). Same law.

    Returns:
      ``int32[k]`` (one key) or ``int32[B, k]``: ``k`` distinct items per draw,
      in uniformly random order. Under ``jit`` a non-finite ``V`` gives all ``-1``.

    Raises:
      ValueError: ``V`` not 2-D, not floating, ``N < k``, or (concrete) columns
        not orthonormal or non-finite entries.
    """
    V = _checks.check_orthonormal(V)
    method = rejection.check_method(method)
    keys, single = _checks.as_keys(key, num_draws)
    n, k = V.shape
    use_rejection = method == "rejection" or (
        method == "auto" and rejection.prefers_rejection(n, k, k)
    )

    def draws(keys, V):
        b = keys.shape[0]
        sizes = jnp.full(b, k, jnp.int32)
        sets = jnp.broadcast_to(jnp.arange(k, dtype=jnp.int32), (b, k))
        if use_rejection:
            items = rejection.chain_rule_rejection(keys, V, sets, sizes, k)
        else:
            items = in_groups(
                lambda k_, s, z: chain_rule(k_, V, s, z, k), keys, sets, sizes,
                projection_group(k),
            )
        return _checks.poison(items, V)

    items = _checks.map_draws(draws, keys, V)
    return _checks.unbatch(items, single)
