"""Experiment tracking: the only module that imports mlflow.

Every run is an MLflow run. The store is local SQLite unless ``MLFLOW_TRACKING_URI`` or a recipe's ``tracking.uri``
points elsewhere, and it does not move with the working directory: the nearest ``mlflow.db`` in the current folder
or one above it (as git finds its repository), else one in the user's data directory
(``$XDG_DATA_HOME/rewardlab/mlflow.db``, by default ``~/.local/share/rewardlab/mlflow.db``). The experiments rewardlab
creates in a SQLite store keep their artifacts beside it, in ``mlartifacts/`` next to ``mlflow.db`` (MLflow's
``--default-artifact-root`` idea), wherever a command runs. A run that raises is ended FAILED with the traceback logged
as ``error.txt``, and one that is interrupted (Ctrl-C, SIGTERM) is ended KILLED; whatever it logged before stays.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import traceback
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"  # beside the store, as `mlflow server` keeps its artifacts in ./mlartifacts
DEFAULT_EXPERIMENT = "rewardlab"



def user_store() -> Path:
    """The store used when no ``mlflow.db`` is found from the working directory up: in the user's data directory."""
    root = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(root) / "rewardlab" / STORE_FILE


def default_uri(start: Path | None = None) -> str:
    """``sqlite:///`` the nearest ``mlflow.db`` in ``start`` (the cwd) or a folder above it, else ``user_store()``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / STORE_FILE).is_file():
            return f"sqlite:///{folder / STORE_FILE}"
    store = user_store()
    store.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store}"


class TrackingConfig(BaseModel):
    """Where runs go. ``uri`` None means ``$MLFLOW_TRACKING_URI``, else ``default_uri()`` (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")
    uri: str | None = None
    experiment: str = DEFAULT_EXPERIMENT
    register_model: bool = True  # register the trained reward under the recipe's name (moves its `latest`)


def resolve_uri(uri: str | None = None) -> str:
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_uri()


class StoreError(ValueError):
    """A tracking store rewardlab cannot use (a plain folder, a SQLite file in a folder that does not exist, a tracking
    server that does not answer); the message names the store and where its URI came from."""


def _uri_origin(uri: str | None) -> str:
    if uri:
        return "the recipe's tracking.uri"
    return "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else "the default store"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (three slashes: relative to the working directory, four: absolute),
    else None (an in-memory or non-SQLite store)."""
    if not uri.startswith("sqlite:///"):
        return None
    rest = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(rest) if rest and rest != ":memory:" else None


def artifact_root(uri: str) -> str | None:
    """Where experiments created in the store ``uri`` keep their artifacts: ``mlartifacts/`` beside a SQLite file; None
    for other stores (a tracking server decides for itself, as ``mlflow server --default-artifact-root`` does)."""
    db = sqlite_path(uri)
    return (db.resolve().parent / ARTIFACTS_DIR).as_uri() if db is not None else None


def check_store(uri: str | None = None, timeout_s: float = 5.0) -> str:
    """The resolved store URI, checked before any work: a plain folder (MLflow's retired file store), a SQLite file
    whose folder does not exist (a typo would create a new, empty store) and a tracking server that does not answer
    within ``timeout_s`` are ``StoreError``s that name the URI and where it came from."""
    store = resolve_uri(uri)
    origin = _uri_origin(uri)
    scheme = store.split("://", 1)[0] if "://" in store else ""
    if scheme == "file" or (scheme == "" and not store.startswith("databricks")):  # `databricks` is a URI of its own
        folder = store[len("file://"):] if scheme == "file" else store
        raise StoreError(f"{origin} is {store!r}: a folder is MLflow's file store, which rewardlab does not use; use a SQLite "
                         f"database, e.g. sqlite:///{Path(folder).expanduser().resolve() / STORE_FILE} (its artifacts go beside it)")
    db = sqlite_path(store)
    if db is not None and not db.resolve().parent.is_dir():
        raise StoreError(f"{origin} is {store!r}, but the folder {db.resolve().parent} does not exist; create it for a new store, "
                         "or correct the path (rewardlab does not create a store in a folder that is not there)")
    if scheme in ("http", "https"):
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(store.rstrip("/") + "/health", timeout=timeout_s) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StoreError(f"{origin} is {store!r}: the tracking server did not answer /health within {timeout_s:g} s ({reason}); "
                             "start it (`mlflow server`) or point MLFLOW_TRACKING_URI elsewhere") from None
    return store


def use_experiment(name: str, uri: str) -> str:
    """Make ``name`` the active experiment of the store ``uri``, creating it with its artifacts beside a SQLite store
    (``artifact_root``) rather than in the working directory's ``mlruns/``; returns its id."""
    mlflow = _mlflow()
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        try:
            experiment_id = mlflow.create_experiment(name, artifact_location=artifact_root(uri))
        except mlflow.exceptions.MlflowException:  # created by another process in the meantime
            experiment_id = mlflow.get_experiment_by_name(name).experiment_id
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _mlflow():
    import mlflow

    return mlflow


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``, for MLflow params."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def param_strings(params: Mapping[str, Any]) -> dict[str, str]:
    """Flattened params as MLflow stores them: lists and mappings as JSON, everything as text (at most 6000 chars)."""
    flat = {k: (json.dumps(v) if isinstance(v, (list, tuple, dict)) else v) for k, v in flatten(params).items()}
    return {k: str(v)[:6000] for k, v in flat.items()}


def _dataset_source(source: str):
    """What MLflow records as a dataset's source: a Hugging Face hub dataset (``hf://datasets/<id> (config)@rev``) as
    MLflow's HuggingFaceDatasetSource, a file or folder as its path (a local source), anything else (a built-in
    builder) as a code source carrying the text, not as a file path that does not exist."""
    if not source.startswith("hf://datasets/"):
        if Path(source).exists():
            return source
        from mlflow.data.code_dataset_source import CodeDatasetSource

        return CodeDatasetSource({"rewardlab.source": source})
    rest = source[len("hf://datasets/"):]
    head, _, revision = rest.partition("@")
    path, _, config = head.partition(" (")
    if Path(path).exists():  # a local dataset folder given as hf:/path
        return path
    from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource

    return HuggingFaceDatasetSource(path=path, config_name=config.rstrip(")") or None, revision=revision or None)


def _flat_frame(rows: list[dict]):
    """Rows as a pandas frame with nested values (chats, lists of answers) stored as JSON text, so that the
    schema MLflow records stays flat."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    for col in frame.columns:
        if frame[col].map(lambda v: isinstance(v, (list, dict))).any():
            frame[col] = frame[col].map(json.dumps)
    return frame


@contextmanager
def _quiet_datasets():
    """MLflow's dataset warnings that say nothing to a user: our integer columns (ids, labels) never hold missing
    values, and a file source "can be interpreted in multiple ways" only because MLflow registers its local-file
    source twice (both readings are the same class)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Integer columns in Python cannot represent missing values.*")
        warnings.filterwarnings("ignore", message=".*dataset source can be interpreted in multiple ways.*")
        yield


class Run:
    """A thin handle on the active MLflow run; learners log through this and never through mlflow."""

    def __init__(self, run_id: str, uri: str):
        self.run_id = run_id
        self.uri = uri
        self.logged_model_id: str | None = None  # the MLflow 3 logged model of the last log_reward_model

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log the keys the run does not have yet. MLflow refuses to change a logged param, so on --resume a changed
        value is caught before the run reopens (``changed_params``), never dropped silently here."""
        existing = _mlflow().get_run(self.run_id).data.params
        fresh = {k: v for k, v in param_strings(params).items() if k not in existing}
        if fresh:
            _mlflow().log_params(fresh)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        clean = {k.replace("@", "_at_"): float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v == v}
        if clean:
            _mlflow().log_metrics(clean, step=step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        _mlflow().set_tags({k: str(v) for k, v in tags.items()})

    def logged_steps(self, key: str) -> set[int]:
        """The steps at which the run holds metric ``key`` (a resumed learner logs only the points a kill left out)."""
        return {step for step, _ in metric_history(self.run_id, key, self.uri)}

    def log_text(self, text: str, artifact_file: str) -> None:
        _mlflow().log_text(text, artifact_file)

    def log_figure(self, figure, artifact_file: str) -> None:
        """Log a matplotlib figure as an image, then close it (figures are not freed otherwise)."""
        import matplotlib.pyplot as plt

        _mlflow().log_figure(figure, artifact_file)
        plt.close(figure)

    def log_table(self, data: Mapping[str, list], artifact_file: str) -> None:
        """Log columns of equal length as an MLflow table (shown in the run's Evaluation / Artifacts views)."""
        _mlflow().log_table(data=dict(data), artifact_file=artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        _mlflow().log_artifact(str(path), artifact_path)

    def log_dataset(self, rows: list[dict], name: str, card_path: str | Path | None, context: str, source: str) -> None:
        """Log rows as an MLflow dataset input (with schema and digest), and the dataset card as an artifact."""
        mlflow = _mlflow()
        frame = _flat_frame(rows)
        with _quiet_datasets():
            dataset = mlflow.data.from_pandas(frame, source=_dataset_source(source), name=name)
            mlflow.log_input(dataset, context=context)
        if card_path is not None:
            mlflow.log_artifact(str(card_path), "data_cards")

    def log_reward_model(self, folder: str | Path, registered_name: str | None) -> str | None:
        """Log a reward folder as an MLflow pyfunc (models-from-code: nothing pickled) and register it, with its input
        schema stated (``_pyfunc_signature``). Returns ``models:/name/version`` when registered, else the ``runs:/`` URI.
        """
        mlflow = _mlflow()
        from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR as PROGRESS

        shown = os.environ.get(PROGRESS.name)
        os.environ[PROGRESS.name] = "false"  # copying the folder into the store: its progress bars are noise
        try:
            with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
                # an input example would make MLflow load the reward and score it here, for nothing a user reads
                warnings.filterwarnings("ignore", message=".*An input example was not provided.*")
                script = Path(tmp) / "rewardlab_pyfunc.py"
                script.write_text(PYFUNC_SCRIPT)
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(script),
                    artifacts={"reward": str(Path(folder).resolve())},  # a finished run's folder is a link into the store
                    registered_model_name=registered_name,
                    pip_requirements=["rewardlab"],
                    signature=_pyfunc_signature(folder),
                )
        finally:
            if shown is None:
                os.environ.pop(PROGRESS.name, None)
            else:
                os.environ[PROGRESS.name] = shown
        self.logged_model_id = getattr(info, "model_id", None)
        if registered_name and getattr(info, "registered_model_version", None):
            return f"models:/{registered_name}/{info.registered_model_version}"
        return f"runs:/{self.run_id}/model"

    def stored_reward_folder(self, name: str) -> Path | None:
        """The local path of the reward folder ``name`` inside the last logged model, when the store keeps its artifacts
        on this machine's disk (the default SQLite store does); None for a remote artifact store."""
        model_id = self.logged_model_id
        if not model_id:
            return None
        from urllib.parse import unquote, urlparse

        location = _mlflow().get_logged_model(model_id).artifact_location
        parsed = urlparse(location)
        if parsed.scheme not in ("", "file"):
            return None
        folder = Path(unquote(parsed.path)) / "artifacts" / name
        return folder if (folder / "reward.json").is_file() else None

    def summary(self, folder: str | Path, model_uri: str | None) -> str:
        """The closing lines of a training command: where the run, the reward and the registered model are, and
        what the registered name's ``latest`` now points to (other recipes may read it)."""
        lines = f"MLflow run: {self.run_id}  (store: {self.uri}; browse with `rewardlab ui`)\nreward: {folder}  registered: {model_uri}"
        if model_uri and model_uri.startswith("models:/"):
            name, version = model_uri[len("models:/"):].rsplit("/", 1)
            lines += (f"\nmodels:/{name}/latest now points to version {version} (recipes that read models:/{name}/latest get this "
                      f"reward; `--set tracking.register_model=false` trains without registering)")
        return lines

    def trainer_callback(self):
        """A transformers TrainerCallback that forwards Trainer logs to this run, keyed by global step."""
        from transformers import TrainerCallback

        run = self

        class _ToMlflow(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                if state.is_world_process_zero and logs:
                    run.log_metrics(logs, step=state.global_step)

        return _ToMlflow()


#: reward.json kinds that score transitions (the others score text)
TRANSITION_KINDS = ("mlp_transition", "gail_discriminator", "s2e_concepts")


def _pyfunc_signature(folder: str | Path):
    """The logged model's input and output schema, stated (MLflow cannot infer one from a models-from-code script):
    prompt / response (/ reference) columns for text rewards (a string or a chat each, hence AnyType), obs / actions /
    next_obs / dones for transition rewards; one float per row out."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    manifest = Path(folder) / "reward.json"
    kind = json.loads(manifest.read_text()).get("kind") if manifest.is_file() else None
    if kind in TRANSITION_KINDS:
        inputs = [ColSpec(AnyType(), "obs"), ColSpec(AnyType(), "actions"), ColSpec(AnyType(), "next_obs"), ColSpec(AnyType(), "dones")]
    else:
        inputs = [ColSpec(AnyType(), "prompt"), ColSpec(AnyType(), "response"), ColSpec(AnyType(), "reference", required=False)]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema([ColSpec("double")]))


# Written next to the logged model; MLflow runs it at load time (models-from-code), so nothing is pickled.
PYFUNC_SCRIPT = '''"""rewardlab reward as an MLflow pyfunc. Input: a DataFrame with prompt/response[/reference] columns
for text rewards, or obs/actions/next_obs/dones columns (one transition per row) for transition rewards."""
import mlflow
import numpy as np
import pandas as pd


class RewardlabPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from rewardlab import rewards

        self.reward = rewards.load(context.artifacts["reward"])

    # A DataFrame hint: MLflow infers no schema from it (the table holds text or transitions) and so does not warn
    # that type hints are missing.
    def predict(self, context, model_input: pd.DataFrame, params=None):
        frame = model_input
        if "prompt" in frame.columns:
            refs = frame["reference"].tolist() if "reference" in frame.columns else None
            return self.reward.score(frame["prompt"].tolist(), frame["response"].tolist(), refs)
        stack = lambda col: np.stack([np.asarray(v, dtype=np.float32) for v in frame[col]])
        return self.reward.score(stack("obs"), stack("actions"), stack("next_obs"), frame["dones"].to_numpy()).tolist()


mlflow.models.set_model(RewardlabPyfunc())
'''


def is_main_process() -> bool:
    """Under torchrun/accelerate only rank 0 talks to MLflow; the other ranks train and stay silent."""
    return int(os.environ.get("RANK", "0")) == 0


class NullRun(Run):
    """What non-zero ranks get: the same methods, doing nothing."""

    def __init__(self):
        super().__init__(run_id="", uri=resolve_uri())

    def __getattribute__(self, name):
        if name.startswith("log_") or name == "set_tags":
            return lambda *args, **kwargs: None
        return super().__getattribute__(name)

    def trainer_callback(self):
        from transformers import TrainerCallback

        return TrainerCallback()


@contextmanager
def start_run(
    cfg: TrackingConfig, run_name: str, resume_run_id: str | None = None, tags: Mapping[str, Any] | None = None
) -> Iterator[Run]:
    """Open (or reopen, for ``--resume``) an MLflow run; end it FAILED with the error logged if the body raises."""
    if not is_main_process():
        yield NullRun()
        return
    mlflow = _mlflow()
    uri = resolve_uri(cfg.uri)
    use_experiment(cfg.experiment, uri)
    if resume_run_id:
        active = mlflow.start_run(run_id=resume_run_id)
    else:
        active = mlflow.start_run(run_name=run_name, tags=dict(tags or {}))
    run = Run(active.info.run_id, uri)
    try:
        yield run
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"  # SIGTERM arrives as Interrupted (cli.py)
        try:
            mlflow.log_text("".join(traceback.format_exception(exc)), "error.txt")
            mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
        finally:
            mlflow.end_run(status=status)
        raise
    else:
        mlflow.end_run(status="FINISHED")


# Recipe runs: what every recipe has, whatever its job (a learner or a consumer such as the RLHF recipes),
# and the run bookkeeping that makes ``--resume`` work.


class RecipeBase(BaseModel):
    """Fields shared by all recipes. Learners extend this with ``data``, ``model`` and ``train`` sections."""

    model_config = ConfigDict(extra="forbid")
    learner: str
    name: str  # the run name, the registered model name in MLflow, and the output folder runs/<name>
    description: str = ""
    output_dir: Path | None = None  # default: runs/<name>
    seed: int = 0
    keep_checkpoints: bool = False  # keep the resume checkpoints after the run finishes (they are large; removed by default)
    tracking: TrackingConfig = TrackingConfig()

    @field_validator("name")
    @classmethod
    def _registrable(cls, name: str) -> str:
        """The name is a registered model name and a folder: checked here, before any work, with MLflow's own rules."""
        bad = [c for c in ("/", "\\", ":") if c in name]
        if not name.strip() or name in (".", "..") or bad:
            why = f"it contains {' and '.join(repr(c) for c in bad)}" if bad else "it is empty or a path"
            raise ValueError(f"key 'name': {name!r} cannot be a registered model name or a folder name ({why}); "
                             "use letters, digits, '-', '_' and '.', e.g. my-rm")
        return name

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


def run_status(run_id: str, uri: str) -> str | None:
    """The MLflow status of a run (RUNNING, FINISHED, FAILED, KILLED), or None when the store does not hold it."""
    try:
        return _mlflow().MlflowClient(tracking_uri=uri).get_run(run_id).info.status
    except Exception:  # noqa: BLE001 - a store or run that is gone: nothing to protect
        return None


def check_fresh_start(cfg: "RecipeBase") -> None:
    """Before a fresh (not --resume) run writes ``output_dir/run.json``: refuse when the folder holds the resume state
    of another run that did not finish (interrupted, failed, or still running elsewhere), so that it is never
    overwritten silently; a finished run's folder is reused."""
    out = cfg.out()
    path = run_state_path(out)
    if not path.is_file() or not is_main_process():
        return
    try:
        state = json.loads(path.read_text())
    except ValueError:
        return
    status = run_status(state.get("run_id", ""), state.get("tracking_uri") or resolve_uri(cfg.tracking.uri))
    if status is None or status == "FINISHED":
        return
    checkpoint = last_checkpoint(out / "checkpoints")
    resumable = f", its last checkpoint {checkpoint.name}" if checkpoint else ""
    raise ResumeError(f"{out} holds the resume state of MLflow run {state['run_id']} ({status}{resumable}), which did not finish. "
                      f"`--resume` continues it; to start a separate run, give it its own name (--set name=NEW_NAME) or folder "
                      f"(--set output_dir=DIR); to discard it, delete {out}")


def last_checkpoint(folder: Path) -> Path | None:
    """The newest ``checkpoint-N`` folder (transformers' layout, which every learner's checkpoints follow), or None."""
    if not folder.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    found = get_last_checkpoint(str(folder))
    return Path(found) if found else None


def write_checkpoint(folder: Path, number: int, write) -> Path:
    """``folder/checkpoint-<number>`` filled by ``write(path)``: written under a temporary name and renamed, so a
    process killed mid-write leaves the previous checkpoint whole; the older ones are then removed. The layout is
    transformers' (``last_checkpoint`` finds it), for every learner."""
    import shutil

    folder = Path(folder)
    tmp = folder / f"partial-{number}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    final = folder / f"checkpoint-{number}"
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in folder.glob("checkpoint-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def rng_states() -> dict:
    """The global torch, numpy and Python RNG states, for a checkpoint (``set_rng_states`` puts them back)."""
    import random

    import numpy as np
    import torch

    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_states(states: dict) -> None:
    import random

    import numpy as np
    import torch

    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])


def resume_point(out: Path, resume: bool) -> tuple[str | None, Path | None]:
    """For ``--resume``: the MLflow run id to reopen and the checkpoint to continue from; (None, None) otherwise."""
    if not resume:
        return None, None
    state = load_run_state(out)
    run_id = state["run_id"]
    checkpoint = last_checkpoint(out / "checkpoints")
    if checkpoint is None:
        if run_status(run_id, state.get("tracking_uri") or resolve_uri()) == "FINISHED":
            raise ResumeError(f"--resume: MLflow run {run_id} in {out} finished; there is nothing to resume (its checkpoints "
                              "are removed when a run finishes unless the recipe says keep_checkpoints: true)")
        raise ResumeError(f"--resume: no checkpoint-N folder in {out / 'checkpoints'}; nothing to resume from")
    print(f"resuming MLflow run {run_id} from {checkpoint}", flush=True)
    return run_id, checkpoint


def changed_params(cfg: RecipeBase, run_id: str) -> dict[str, tuple[str, str]]:
    """The recipe values that differ from what the run logged: key -> (logged, now). Keys the run never logged
    (a field added since) are not changes."""
    mlflow = _mlflow()
    mlflow.set_tracking_uri(resolve_uri(cfg.tracking.uri))
    logged = mlflow.get_run(run_id).data.params
    return {k: (logged[k], v) for k, v in param_strings(cfg.model_dump(mode="json")).items() if k in logged and logged[k] != v}


@contextmanager
def tracked_run(cfg: RecipeBase, recipe_text: str, resume_id: str | None, tags: dict | None = None, allow_changed: bool = False):
    """The MLflow run of a training command: opened (or reopened on --resume), its id saved for --resume, the
    recipe's params logged, and on a fresh run the recipe file itself.

    On --resume, a recipe value that differs from the run's logged parameter is a ``ResumeError`` naming each key
    (the run would show the old value while training used the new one); with ``allow_changed`` it is a warning,
    printed and logged to the run as ``resume_changes.json`` and the ``resume_changed`` tag."""
    if not resume_id:
        check_fresh_start(cfg)
    changes = changed_params(cfg, resume_id) if resume_id and is_main_process() else {}
    if changes and not allow_changed:
        listed = "; ".join(f"{k}: logged {old!r}, now {new!r}" for k, (old, new) in sorted(changes.items()))
        raise ResumeError(f"--resume: the recipe differs from the run it resumes ({listed}). Resume with the recipe as it was, "
                          "or pass --allow-changed to continue with the new values (recorded in the run as resume_changes.json)")
    with start_run(cfg.tracking, cfg.name, resume_run_id=resume_id, tags={"learner": cfg.learner, **(tags or {})}) as run:
        if is_main_process():
            save_run_state(cfg.out(), run.run_id, run.uri)
        if changes:
            print(f"warning: resuming with changed values: {', '.join(sorted(changes))} (logged to resume_changes.json)", flush=True)
            run.log_text(json.dumps({k: {"logged": old, "now": new} for k, (old, new) in changes.items()}, indent=2), "resume_changes.json")
            run.set_tags({"resume_changed": ",".join(sorted(changes))})
        run.log_params(cfg.model_dump(mode="json"))
        if not resume_id and recipe_text:
            run.log_text(recipe_text, "recipe.yaml")
        yield run


# The run skeleton of a learner: what every learner's training command does besides the method itself.


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
    stored_folder: Path | None = None  # the store's copy of the reward folder, when the store's artifacts are local
    _registered: bool = False

    @property
    def out(self) -> Path:
        return self.cfg.out()

    @property
    def resuming(self) -> bool:
        return self.checkpoint is not None

    def register(self, folder: Path) -> str | None:
        """Log the reward folder as the run's model and register it (when the recipe says so); once per run."""
        if not self._registered and self.resuming:  # registered before the interruption (S2E does, before its RL arms)
            self.model_uri = _mlflow().get_run(self.run.run_id).data.tags.get("model_uri")
            self._registered = self.model_uri is not None
        if not self._registered:
            cfg = self.cfg
            self.model_uri = self.run.log_reward_model(folder, cfg.name if cfg.tracking.register_model else None)
            self.run.set_tags({"model_uri": self.model_uri})
            self._registered = True
            self.stored_folder = self.run.stored_reward_folder(Path(folder).name)
        return self.model_uri


def run_learner(module, cfg: RecipeBase, recipe_text: str = "", resume: bool = False, callbacks=(), allow_changed: bool = False) -> dict:
    """Run a learner module (rewardlab.learners describes what it declares) end to end; returns run_id, model_uri,
    output_dir, metrics and the learner's extras. ``allow_changed``: on --resume, a recipe value that differs from
    the run's logged parameter is a logged warning instead of an error."""
    out = cfg.out()
    if is_main_process():
        check_store(cfg.tracking.uri)
    resume_id, checkpoint = resume_point(out, resume)
    if not resume:
        check_fresh_start(cfg)
        if is_main_process() and out.is_dir():  # a finished run's reward is a link into the store: never write through it
            for link in [p for p in out.iterdir() if p.is_symlink()]:
                link.unlink()
    data = module.load(cfg)
    tags = module.tags(cfg, data) if hasattr(module, "tags") else {}
    with tracked_run(cfg, recipe_text, resume_id, tags, allow_changed=allow_changed) as run:
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
        finish_outputs(cfg, fitted.folder, job.stored_folder)
    if fitted.report:
        print(fitted.report)
    print(run.summary(fitted.folder, model_uri), flush=True)
    return {"run_id": run.run_id, "model_uri": model_uri, "output_dir": str(out), "metrics": fitted.metrics, **fitted.extra}


def finish_outputs(cfg: RecipeBase, folder: Path, stored: Path | None) -> None:
    """What a finished run leaves on disk: its resume checkpoints are removed (unless ``keep_checkpoints``), and the
    reward folder, once the store holds a local copy of it, becomes a link to that copy, so the reward is on disk once
    (a remote store keeps the local folder)."""
    import shutil

    if not cfg.keep_checkpoints:
        shutil.rmtree(cfg.out() / "checkpoints", ignore_errors=True)
    folder = Path(folder)
    if stored is None or not stored.is_dir() or folder.is_symlink() or not folder.is_dir():
        return
    if stored.resolve() == folder.resolve():
        return
    shutil.rmtree(folder)
    folder.symlink_to(stored.resolve(), target_is_directory=True)


def get_run_data(run_id: str, uri: str | None = None):
    """The MLflow run (for tests and ``rewardlab eval``): ``.info``, ``.data.params``, ``.data.metrics``."""
    mlflow = _mlflow()
    mlflow.set_tracking_uri(resolve_uri(uri))
    return mlflow.get_run(run_id)


def metric_history(run_id: str, key: str, uri: str | None = None) -> list[tuple[int, float]]:
    mlflow = _mlflow()
    client = mlflow.MlflowClient(tracking_uri=resolve_uri(uri))
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


def dataset_inputs(run_id: str, uri: str | None = None) -> list[str]:
    run = get_run_data(run_id, uri)
    return [d.dataset.name for d in run.inputs.dataset_inputs]


def list_artifacts(run_id: str, path: str | None = None, uri: str | None = None) -> list[str]:
    mlflow = _mlflow()
    client = mlflow.MlflowClient(tracking_uri=resolve_uri(uri))
    return [a.path for a in client.list_artifacts(run_id, path)]


class RegistryError(ValueError):
    """A registered model, version or alias that the store does not have; the message names the store."""


def set_alias(name: str, alias: str, version: str | int, uri: str | None = None) -> None:
    """Point ``models:/name@alias`` at a version (for example ``champion``), as the MLflow UI does."""
    mlflow, store = _mlflow(), resolve_uri(uri)
    if not re.fullmatch(r"[\w\-]+", alias) or alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias):
        why = ("'latest' is reserved: models:/NAME/latest always means the newest version" if alias.lower() == "latest" else
               f"'{alias}' reads as a version (models:/NAME@v3 is version 3)" if re.fullmatch(r"[vV]\d+", alias) else
               "an alias may hold only letters, digits, '_' and '-'")
        raise RegistryError(f"alias {alias!r}: {why}; e.g. champion, prod, candidate-2")
    client = mlflow.MlflowClient(tracking_uri=store)
    try:
        client.get_model_version(name, str(version))
    except mlflow.exceptions.MlflowException:
        known = [str(v.version) for v in client.search_model_versions(f"name='{name}'")]
        what = f"its versions are {', '.join(sorted(known, key=int))}" if known else "no model of that name is registered"
        raise RegistryError(f"models:/{name}/{version}: not in the store {store}; {what} (see `rewardlab models list`)") from None
    try:
        client.set_registered_model_alias(name, alias, str(version))
    except mlflow.exceptions.MlflowException as exc:
        raise RegistryError(f"models:/{name}@{alias}: {exc.message}") from None


def registered_models(uri: str | None = None) -> list[dict]:
    """Every registered model: name, its versions (newest first, with the run and creation time) and its aliases."""
    client = _mlflow().MlflowClient(tracking_uri=resolve_uri(uri))
    out = []
    for model in client.search_registered_models():
        versions = sorted(client.search_model_versions(f"name='{model.name}'"), key=lambda v: int(v.version), reverse=True)
        out.append({"name": model.name, "aliases": dict(getattr(model, "aliases", {}) or {}),
                    "versions": [{"version": int(v.version), "run_id": v.run_id, "created": int(v.creation_timestamp)} for v in versions]})
    return sorted(out, key=lambda m: m["name"])


def download(uri: str, tracking_uri: str | None = None) -> Path:
    """Download an MLflow model or artifact URI to a local folder (cached by MLflow per call)."""
    mlflow = _mlflow()
    store = check_store(tracking_uri)
    mlflow.set_tracking_uri(store)
    try:  # a store with local artifacts (the default) gives the folder in place: nothing is copied
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except mlflow.exceptions.MlflowException as exc:
        raise FileNotFoundError(f"{uri}: {exc.message} (MLflow store searched: {store}; `rewardlab models list` shows "
                                "what it holds, and MLFLOW_TRACKING_URI chooses another)") from None


def ui(uri: str | None = None, host: str = "127.0.0.1", port: int = 5000) -> int:
    """Replace this process with the MLflow UI on the same store (does not return)."""
    import socket

    store = check_store(uri)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:  # MLflow's own server reports a taken port and still exits 0; say it here, before replacing the process
            probe.bind((host, port))
        except OSError as exc:
            raise StoreError(f"rewardlab ui: cannot listen on {host}:{port} ({exc.strerror}); another program (perhaps "
                             "another `rewardlab ui`) holds it: choose another with --port") from None
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store, "--host", host, "--port", str(port)]
    root = artifact_root(store)
    if root:  # experiments created from the UI keep their artifacts beside the store too
        cmd += ["--default-artifact-root", root]
    print(f"MLflow UI on http://{host}:{port} (store: {store}); Ctrl-C to stop", flush=True)
    # Become the MLflow process, so that signals (Ctrl-C, a supervisor's SIGTERM) reach it and its workers directly.
    os.execv(sys.executable, cmd)


# Evaluation runs (``rewardlab eval``): one MLflow run per evaluation, linked to the reward it scored.

EVAL_EXPERIMENT = "rewardlab-eval"


def model_link(model: str, uri: str | None = None) -> dict[str, str]:
    """What an evaluated reward is in the store: its training run (``run_id``), MLflow 3 logged model (``model_id``)
    and experiment, for ``models:/`` and ``runs:/`` URIs and for a learner's output folder (its ``run.json``); empty
    for a folder without one and for an ``http://`` server."""
    from mlflow import MlflowClient

    store = resolve_uri(uri)
    client = MlflowClient(store)
    run_id = model_id = None
    try:
        if model.startswith("models:/"):
            rest = model[len("models:/"):]
            if "@" in rest:
                version = client.get_model_version_by_alias(*rest.split("@", 1))
            else:
                name, number = rest.rsplit("/", 1)
                version = (client.get_model_version(name, number) if number != "latest" else
                           max(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version)))
            run_id, model_id = version.run_id, getattr(version, "model_id", None)
        elif model.startswith("runs:/"):
            run_id = model[len("runs:/"):].split("/", 1)[0]
        elif not model.startswith(("http://", "https://")):
            for where in (Path(model).parent, Path(model)):
                state = run_state_path(where)
                if state.is_file() and json.loads(state.read_text()).get("tracking_uri") == store:
                    run_id = json.loads(state.read_text())["run_id"]
                    break
        if run_id is None:
            return {}
        run = client.get_run(run_id)
        if model_id is None:  # the run's logged reward (learners log one, named "model")
            found = _mlflow().search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list",
                                                   filter_string=f"source_run_id = '{run_id}'")
            model_id = found[0].model_id if found else None
    except _mlflow().exceptions.MlflowException:  # a run or version this store does not hold: evaluate unlinked
        return {}
    return {k: v for k, v in {"run_id": run_id, "model_id": model_id, "experiment_id": run.info.experiment_id}.items() if v}


def log_evaluation(model: str, report: dict, rows: list[dict], source: str, dataset_name: str, figures: Mapping[str, Any],
                   tags: Mapping[str, Any] | None = None, uri: str | None = None) -> str:
    """One MLflow run holding an evaluation of ``model``: the metrics (also attached to the model's MLflow 3 logged
    model with the dataset, so the model's page lists them), the per-subset table, the plots, the scored rows as
    the run's ``eval`` input and ``eval.json``. The run lives in the training run's experiment when the reward has
    one (``rewardlab-eval`` otherwise) and is tagged with what it evaluated. Returns the run id."""
    from mlflow.entities import LoggedModelInput

    mlflow = _mlflow()
    store = resolve_uri(uri)
    mlflow.set_tracking_uri(store)
    link = model_link(model, store)
    experiment = link["experiment_id"] if "experiment_id" in link else use_experiment(EVAL_EXPERIMENT, store)
    run_tags = {"rewardlab.kind": "evaluation", "evaluated_model": model, "eval_data": source, "eval_format": report.get("format", "pairs"),
                **({"evaluated_run_id": link["run_id"]} if "run_id" in link else {}),
                **({"evaluated_model_id": link["model_id"]} if "model_id" in link else {}), **(tags or {})}
    frame = _flat_frame(rows)
    numbers = {k: float(v) for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v}
    for name, s in report.get("subsets", {}).items():
        key = re.sub(r"[^0-9A-Za-z_\-. /]", "_", name)
        numbers[f"subset/{key}/accuracy"] = float(s["accuracy"])
        numbers[f"subset/{key}/count"] = float(s["count"])
    with mlflow.start_run(experiment_id=experiment, run_name=f"eval-{dataset_name}", tags={k: str(v) for k, v in run_tags.items()}) as active:
        with _quiet_datasets():
            dataset = mlflow.data.from_pandas(frame, source=_dataset_source(source), name=dataset_name)
        mlflow.log_input(dataset, context="eval", model=LoggedModelInput(link["model_id"]) if "model_id" in link else None)
        mlflow.log_metrics(numbers, model_id=link.get("model_id"), dataset=dataset)
        subsets = report.get("subsets", {})
        if subsets:
            mlflow.log_table({"subset": list(subsets), "accuracy": [s["accuracy"] for s in subsets.values()],
                              "count": [s["count"] for s in subsets.values()],
                              "ci_low": [s.get("ci_low", float("nan")) for s in subsets.values()],
                              "ci_high": [s.get("ci_high", float("nan")) for s in subsets.values()],
                              "pairwise_accuracy": [s.get("pairwise_accuracy", float("nan")) for s in subsets.values()]},
                             artifact_file="eval/subsets.json")
        for path, fig in figures.items():
            Run(active.info.run_id, store).log_figure(fig, path)
        mlflow.log_text(json.dumps(report, indent=2, default=str), "eval/eval.json")
        return active.info.run_id
