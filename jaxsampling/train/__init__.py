"""Trainers: each composes kernels with optax; an explicit registry of experiments.

Every experiment module exposes ``train_and_evaluate(config, workdir) -> dict``.
:data:`EXPERIMENTS` maps ``config.experiment`` names to those functions by
dotted path, and :func:`get` imports the module on first use, so importing
``jaxsampling.train`` stays cheap (scenic's ``ALL_TRAINERS`` / ``get_trainer``
pattern, STYLE.md section 3).

Example:
    >>> from jaxsampling import train
    >>> train_and_evaluate = train.get("resampling")  # doctest: +SKIP
    >>> summary = train_and_evaluate(config, "/tmp/run")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

TrainFn = Callable[[Any, str], dict]

# name -> "module:function"; resolved lazily by get().
EXPERIMENTS: dict[str, str] = {
    "resampling": "jaxsampling.train.resampling:train_and_evaluate",
    "particle_filter": "jaxsampling.train.particle_filter:train_and_evaluate",
    "smc_mixture": "jaxsampling.train.smc_mixture:train_and_evaluate",
    "fkc_annealing": "jaxsampling.train.fkc_annealing:train_and_evaluate",
    "lp_coreset": "jaxsampling.train.lp_coreset:train_and_evaluate",
    "dpp_wls": "jaxsampling.train.dpp_wls:train_and_evaluate",
    "srrw_sampling": "jaxsampling.train.srrw_sampling:train_and_evaluate",
    "ntk_permutation": "jaxsampling.train.ntk_permutation:train_and_evaluate",
    "srrw_token": "jaxsampling.train.srrw_token:train_and_evaluate",
    "rs2": "jaxsampling.train.rs2:train_and_evaluate",
    "coreset_training": "jaxsampling.train.coreset_training:train_and_evaluate",
}


def get(name: str) -> TrainFn:
    """Returns the ``train_and_evaluate`` function registered under ``name``.

    Args:
        name: an experiment name, a key of :data:`EXPERIMENTS`.

    Returns:
        ``train_and_evaluate(config, workdir) -> dict``.

    Raises:
        ValueError: if ``name`` is not registered; the message lists the known names.

    Example:
        >>> get("nope")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: unknown experiment 'nope'; known: ['fkc_annealing', ...]
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {sorted(EXPERIMENTS)}")
    module_name, fn_name = EXPERIMENTS[name].split(":")
    return getattr(importlib.import_module(module_name), fn_name)


__all__ = ["EXPERIMENTS", "TrainFn", "get"]
