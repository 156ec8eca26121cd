"""Learners: one module per learner, each with its recipe config (``Config``) and ``run(...)``.

Modules are imported only when their learner is used, so ``rewardlab recipes list`` never pays for TRL.
"""

from __future__ import annotations

import importlib
from types import ModuleType

LEARNERS: dict[str, str] = {
    "bradley_terry": "rewardlab.learners.bradley_terry",
    "goal_contrastive": "rewardlab.learners.goal_contrastive",
    "lipschitz_gail": "rewardlab.learners.lipschitz_gail",
    "polar": "rewardlab.learners.polar",
    "s2e": "rewardlab.learners.s2e",
    "transition_regression": "rewardlab.learners.transition_regression",
}


def get(name: str) -> ModuleType:
    """The learner module for ``name``; it exposes ``Config`` (a pydantic model) and ``run(config, ...)``."""
    if name not in LEARNERS:
        raise KeyError(name)
    return importlib.import_module(LEARNERS[name])
