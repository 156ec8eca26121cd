"""What every recipe has, whatever its learner; and the run bookkeeping that makes ``--resume`` work."""

from __future__ import annotations

import json
from pathlib import Path

from contextlib import contextmanager

from pydantic import BaseModel, ConfigDict

from rewardlab.tracking import TrackingConfig


class RecipeBase(BaseModel):
    """Fields shared by all recipes. Learners extend this with ``data``, ``model`` and ``train`` sections."""

    model_config = ConfigDict(extra="forbid")
    learner: str
    name: str  # the run name, and the registered model name in MLflow
    description: str = ""
    output_dir: Path | None = None  # default: runs/<name>
    seed: int = 0
    tracking: TrackingConfig = TrackingConfig()

    def out(self) -> Path:
        return Path(self.output_dir) if self.output_dir else Path("runs") / self.name


class ResumeError(RuntimeError):
    """``--resume`` was asked for but there is nothing to resume; the message says where we looked."""


def run_state_path(out: Path) -> Path:
    return out / "run.json"


def save_run_state(out: Path, run_id: str, tracking_uri: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    run_state_path(out).write_text(json.dumps({"run_id": run_id, "tracking_uri": tracking_uri}))


def load_run_state(out: Path) -> dict:
    path = run_state_path(out)
    if not path.exists():
        raise ResumeError(f"--resume: {path} does not exist; no earlier run wrote to {out}")
    return json.loads(path.read_text())


def last_checkpoint(folder: Path) -> Path | None:
    """The newest ``checkpoint-N`` folder (transformers' layout), or None."""
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def resume_point(out: Path, resume: bool) -> tuple[str | None, Path | None]:
    """For ``--resume``: the MLflow run id to reopen and the checkpoint to continue from; (None, None) otherwise."""
    if not resume:
        return None, None
    run_id = load_run_state(out)["run_id"]
    checkpoint = last_checkpoint(out / "checkpoints")
    if checkpoint is None:
        raise ResumeError(f"--resume: no checkpoint-N folder in {out / 'checkpoints'}; nothing to resume from")
    print(f"resuming MLflow run {run_id} from {checkpoint}", flush=True)
    return run_id, checkpoint


@contextmanager
def tracked_run(cfg: RecipeBase, recipe_text: str, resume_id: str | None, tags: dict | None = None):
    """The MLflow run of a training command: opened (or reopened on --resume), its id saved for --resume, the
    recipe's params logged, and on a fresh run the recipe file itself."""
    from rewardlab import tracking

    with tracking.start_run(cfg.tracking, cfg.name, resume_run_id=resume_id, tags={"learner": cfg.learner, **(tags or {})}) as run:
        if tracking.is_main_process():
            save_run_state(cfg.out(), run.run_id, run.uri)
        run.log_params(cfg.model_dump(mode="json"))
        if not resume_id and recipe_text:
            run.log_text(recipe_text, "recipe.yaml")
        yield run
