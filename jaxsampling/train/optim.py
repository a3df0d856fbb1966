"""Optimiser from a config: any optax optimiser by name, with a schedule.

big_vision's pattern (``getattr(optax, name)(**kwargs)``), with the learning
rate replaced by a :mod:`jaxsampling.train.schedules` schedule and an
optional global-norm clip in front.

The config (a ConfigDict) reads:

* ``name``: an optax optimiser taking ``learning_rate`` (``"sgd"``,
  ``"adam"``, ``"adamw"``, ``"lion"``, ...);
* ``kwargs``: its other arguments (``momentum``, ``b1``, ``weight_decay``, ...);
* ``schedule``: ``kind`` (``constant | linear | cosine | refined``),
  ``peak_value``, ``warmup_steps`` and, for ``refined``, ``tau`` and ``power``;
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

from typing import Any

import optax

from jaxsampling.train import schedules

__all__ = ["make"]


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
    name = config.name
    factory = getattr(optax, name, None)
    if not callable(factory) or name.startswith("_"):
        raise ValueError(f"unknown optax optimiser {name!r}")
    schedule = schedules.from_config(config.schedule, total_steps, grad_norms)
    kwargs = dict(config.get("kwargs", None) or {})
    optimizer = factory(learning_rate=schedule, **kwargs)
    clip = config.get("clip_norm", None)
    if clip is not None:
        optimizer = optax.chain(optax.clip_by_global_norm(float(clip)), optimizer)
    return optimizer, schedule
