"""Shared type aliases.

Inputs are annotated ``ArrayLike`` (anything ``jnp.asarray`` accepts), outputs
``Array``; ``PRNGKey`` is a typed key (``jax.random.key``) or a legacy
``uint32[2]`` key (``jax.random.PRNGKey``). This follows BlackJAX's
``blackjax/types.py``.
"""

from typing import Any

import jax

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
PRNGKey = jax.Array
ArrayTree = Any
ArrayLikeTree = Any

__all__ = ["Array", "ArrayLike", "ArrayTree", "ArrayLikeTree", "PRNGKey"]
