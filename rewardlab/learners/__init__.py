"""Learners: one module per learner. ``train`` runs one through the run skeleton (``tracking.run_learner``), which
does for every learner what is not the method itself.

A learner module declares its recipe and its method, nothing else:

* ``Config``: its recipe (a ``tracking.RecipeBase``);
* ``load(cfg) -> data``: read or build its data; runs before the MLflow run opens, so bad data fails first;
* ``datasets(cfg, data) -> list[DatasetInput]``: what MLflow records as the run's inputs (with their cards);
* ``fit(cfg, data, job) -> Fitted``: train, save the reward folder, evaluate. ``job`` holds the open run, the
  checkpoint to resume from, the caller's callbacks, and ``register`` (for a learner that registers its reward
  before a long tail of work, as S2E does before its RL arms);
* optionally ``tags(cfg, data) -> dict`` (run tags).

Every learner checkpoints (``tracking.write_checkpoint``) and so resumes.

``tracking.run_learner`` then does the bookkeeping once: the resume point and the parameter check, the MLflow run (opened, or
reopened on --resume, its id saved for --resume), the recipe's parameters and file, the dataset inputs, the
evaluation metrics and figures, the logged and registered reward, ``eval.json``, and the printed summary.

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
    """The learner module for ``name`` (see the module docstring for what it exposes)."""
    if name not in LEARNERS:
        raise KeyError(name)
    return importlib.import_module(LEARNERS[name])


def train(cfg, recipe_text: str = "", resume: bool = False, callbacks=(), allow_changed: bool = False) -> dict:
    """Run the recipe's learner end to end through the run skeleton (``tracking.run_learner``)."""
    from rewardlab import tracking

    return tracking.run_learner(get(cfg.learner), cfg, recipe_text, resume=resume, callbacks=callbacks, allow_changed=allow_changed)
