"""Optimiser from a config: any optax optimiser by name, with a schedule.

big_vision's pattern (``getattr(optax, name)(**kwargs)``), with the learning
rate replaced by a :mod:`jaxsampling.train.schedules` schedule and an
optional global-norm clip in front.

The config (a ConfigDict) reads:

* ``name``: an optax optimiser taking ``learning_rate`` (``"sgd"``,
  ``"adam"``, ``"adamw"``, ``"lion"``, ...);
* ``kwargs``: its other arguments (``momentum``, ``b1``, ``weight_decay``, ...);
* ``schedule``: ``kind`` (``constant | linear | cosine | refined | power``),
  ``peak_value``, ``warmup_steps``, for ``refined`` ``tau`` and ``power``,
  for ``power`` ``exponent`` and ``offset``;
* ``clip_norm``: clip gradients to this global norm first (None: no clip).

Example:
    >>> import ml_collections
    >>> config = ml_collections.ConfigDict(dict(
    ...     name="sgd", kwargs=dict(momentum=0.9), clip_norm=None,
    ...     schedule=dict(kind="linear", peak_value=0.1, warmup_steps=0)))
    >>> optimizer, schedule = make(config, total_steps=100)
    >>> round(float(schedule(0)), 6)
    0.1
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import optax

from jaxsampling.train import schedules

__all__ = ["factory", "make"]


def factory(config: Any) -> Callable[[Any], optax.GradientTransformation]:
    """``learning_rate -> optimizer`` for the optimiser named in ``config``.

    The learning rate may be a float or any optax schedule; everything else
    (name, kwargs, clip) comes from ``config``. The training loop builds its
    optimiser inside the traced update from a table of learning rates, so
    one compiled update serves every schedule.

    Raises:
        ValueError: unknown optimiser name.
    """
    name = config.name
    optimizer_fn = getattr(optax, name, None)
    if not callable(optimizer_fn) or name.startswith("_"):
        raise ValueError(f"unknown optax optimiser {name!r}")
    kwargs = dict(config.get("kwargs", None) or {})
    if "learning_rate" in kwargs:
        raise ValueError(
            "set the learning rate through optimizer.schedule (peak_value), not kwargs"
        )
    if "learning_rate" not in inspect.signature(optimizer_fn).parameters:
        raise ValueError(f"optax.{name} takes no learning_rate: not an optimiser the loop can schedule")
    clip = config.get("clip_norm", None)

    def build(learning_rate: Any) -> optax.GradientTransformation:
        optimizer = optimizer_fn(learning_rate=learning_rate, **kwargs)
        if clip is not None:
            optimizer = optax.chain(optax.clip_by_global_norm(float(clip)), optimizer)
        return optimizer

    return build


def make(
    config: Any, total_steps: int, grad_norms: Any | None = None
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Builds ``(optimizer, schedule)`` from ``config``.

    Args:
        config: the optimiser ConfigDict described in the module docstring.
        total_steps: the run's number of steps (the schedule's horizon).
        grad_norms: a previous run's gradient norms, for ``refined`` schedules.

    Returns:
        The optax transformation and its learning-rate schedule.

    Raises:
        ValueError: unknown optimiser name, or a bad schedule (see
            :func:`jaxsampling.train.schedules.from_config`).
    """
    build = factory(config)
    schedule = schedules.from_config(config.schedule, total_steps, grad_norms)
    return build(schedule), schedule
