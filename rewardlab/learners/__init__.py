"""Learners: one module per learner, and ``train``, which does for every learner what is not the method itself.

A learner module declares its recipe and its method, nothing else:

* ``Config``: its recipe (a ``tracking.RecipeBase``);
* ``load(cfg) -> data``: read or build its data; runs before the MLflow run opens, so bad data fails first;
* ``datasets(cfg, data) -> list[DatasetInput]``: what MLflow records as the run's inputs (with their cards);
* ``fit(cfg, data, job) -> Fitted``: train, save the reward folder, evaluate. ``job`` holds the open run, the
  checkpoint to resume from, the caller's callbacks, and ``register`` (for a learner that registers its reward
  before a long tail of work, as S2E does before its RL arms);
* optionally ``tags(cfg, data) -> dict`` (run tags) and ``RESUMABLE = False`` (a learner that keeps no checkpoints).

``train`` then does the bookkeeping once: the resume point and the parameter check, the MLflow run (opened, or
reopened on --resume, its id saved for --resume), the recipe's parameters and file, the dataset inputs, the
evaluation metrics and figures, the logged and registered reward, ``eval.json``, and the printed summary.

Modules are imported only when their learner is used, so ``rewardlab recipes list`` never pays for TRL.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

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


@dataclass
class DatasetInput:
    """One MLflow dataset input of a run: its rows, name, context (training / evaluation), source and card."""

    rows: list[dict]
    name: str
    context: str
    source: str
    card: str | Path | None = None


@dataclass
class Fitted:
    """What a learner's ``fit`` returns. ``folder`` is None on the ranks of a multi-process run other than 0."""

    folder: Path | None
    metrics: dict[str, Any] = field(default_factory=dict)  # logged as eval/<key> at ``step``; written to eval.json
    figures: dict[str, Any] = field(default_factory=dict)  # artifact path -> matplotlib figure
    report: str = ""  # printed before the run summary
    step: int | None = None
    record: dict | None = None  # eval.json's body when it is not ``metrics`` (S2E nests its RL summary)
    extra: dict = field(default_factory=dict)  # returned to the caller beside run_id, model_uri and metrics


@dataclass
class Job:
    """A learner's handle on its run while ``fit`` works."""

    cfg: Any
    run: Any  # tracking.Run
    checkpoint: Path | None
    callbacks: tuple
    model_uri: str | None = None
    _registered: bool = False

    @property
    def out(self) -> Path:
        return self.cfg.out()

    @property
    def resuming(self) -> bool:
        return self.checkpoint is not None

    def register(self, folder: Path) -> str | None:
        """Log the reward folder as the run's model and register it (when the recipe says so); once per run."""
        if not self._registered:
            cfg = self.cfg
            self.model_uri = self.run.log_reward_model(folder, cfg.name if cfg.tracking.register_model else None)
            self.run.set_tags({"model_uri": self.model_uri})
            self._registered = True
        return self.model_uri


def train(cfg, recipe_text: str = "", resume: bool = False, callbacks=(), allow_changed: bool = False) -> dict:
    """Run a learner recipe end to end (see the module docstring); returns run_id, model_uri, output_dir, metrics
    and the learner's extras. ``allow_changed``: on --resume, a recipe value that differs from the run's logged
    parameter is a logged warning instead of an error."""
    from rewardlab import tracking

    module = get(cfg.learner)
    out = cfg.out()
    if resume and not getattr(module, "RESUMABLE", True):
        raise tracking.ResumeError(f"--resume: the {cfg.learner} learner keeps no checkpoints to resume from; run the recipe again")
    resume_id, checkpoint = tracking.resume_point(out, resume)
    data = module.load(cfg)
    tags = module.tags(cfg, data) if hasattr(module, "tags") else {}
    with tracking.tracked_run(cfg, recipe_text, resume_id, tags, allow_changed=allow_changed) as run:
        if not resume:
            for d in module.datasets(cfg, data):
                run.log_dataset(d.rows, d.name, d.card, d.context, d.source)
        job = Job(cfg, run, checkpoint, tuple(callbacks))
        fitted = module.fit(cfg, data, job)
        if fitted.folder is None:  # another rank of a multi-process run: rank 0 saves, evaluates and logs
            return {"run_id": None, **fitted.extra}
        run.log_metrics({f"eval/{k}": v for k, v in fitted.metrics.items()}, step=fitted.step)
        for path, fig in fitted.figures.items():
            run.log_figure(fig, path)
        model_uri = job.register(fitted.folder)
        record = fitted.record if fitted.record is not None else fitted.metrics
        (out / "eval.json").write_text(json.dumps({"run_id": run.run_id, "model_uri": model_uri, **record}, indent=2))
    if fitted.report:
        print(fitted.report)
    print(run.summary(fitted.folder, model_uri), flush=True)
    return {"run_id": run.run_id, "model_uri": model_uri, "output_dir": str(out), "metrics": fitted.metrics, **fitted.extra}
