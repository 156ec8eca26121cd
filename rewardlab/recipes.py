"""Recipes: a YAML file is the whole experiment. This module turns it into a typed config, or a clear error.

Errors name the file, the key path and what was expected; they are raised before any work starts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from rewardlab import learners


#: Recipe jobs that are not reward learners: consumers that train a policy on a reward. They are looked up here,
#: at the top of the import order, because a learner may not import a consumer.
JOBS: dict[str, str] = {"rlhf": "rewardlab.rlhf.train"}


def job(name: str):
    """The module of a recipe's ``learner:``: a learner module (``Config``, ``load``, ``fit``; see rewardlab.learners)
    or a consumer job's (``Config``, ``run``)."""
    import importlib

    if name in JOBS:
        return importlib.import_module(JOBS[name])
    return learners.get(name)


def run(config, recipe_text: str = "", resume: bool = False, callbacks=(), allow_changed: bool = False) -> dict:
    """Run a validated recipe: a learner through ``learners.train`` (the shared run bookkeeping), a consumer job
    through its own ``run``."""
    if config.learner in JOBS:
        return job(config.learner).run(config, recipe_text=recipe_text, resume=resume, callbacks=callbacks)
    return learners.train(config, recipe_text, resume=resume, callbacks=callbacks, allow_changed=allow_changed)


def job_names() -> list[str]:
    return [*learners.LEARNERS, *JOBS]


class RecipeError(ValueError):
    """A recipe a user can fix. The CLI prints the message alone, with no traceback."""


def recipes_dir() -> Path:
    env = os.environ.get("REWARDLAB_RECIPES")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "recipes"


def resolve_path(name: str | Path) -> Path:
    """A recipe path, or the bare name of a bundled recipe (``quickstart`` -> recipes/quickstart.yaml)."""
    path = Path(name)
    if path.exists():
        return path
    if path.suffix in (".yaml", ".yml"):  # recipes/quickstart.yaml typed outside the repository: the bundled one
        bundled = recipes_dir() / path.name
        return bundled if path.parent.name == "recipes" and bundled.exists() else path
    return recipes_dir() / f"{name}.yaml"


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise RecipeError(f"--set {item!r}: expected key.path=value, for example --set train.max_steps=10")
    key, value = item.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise RecipeError(f"--set {item!r}: the key path {key!r} is malformed")
    return key.split("."), yaml.safe_load(value) if value else ""


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Set each ``key.path=value``; a number in the path indexes a list (``rewards.0.weight=0.5``)."""
    for item in overrides:
        path, value = parse_override(item)
        node: Any = raw
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise RecipeError(f"--set {item!r}: '{'.'.join(path[:depth])}' is a list of {len(node)}; "
                                      f"expected an index 0..{len(node) - 1}, found {part!r}")
                part = int(part)
            elif not isinstance(node, dict):
                raise RecipeError(f"--set {item!r}: '{path[depth - 1]}' holds a value, not a section")
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    return raw


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """The keys the config accepts at ``loc`` (for 'unknown key' messages)."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        annotation = current.model_fields[part].annotation
        current = annotation
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def _describe(model: type[BaseModel], err: dict) -> str:
    loc = tuple(str(p) for p in err["loc"])
    key = ".".join(loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        hint = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return f"key '{key}': unknown key{hint}"
    if kind == "missing":
        return f"key '{key}': required but missing"
    if kind in ("path_not_file", "path_not_directory"):
        return f"key '{key}': file not found: {err.get('input')}"
    if kind == "value_error":  # a check written in the config (a builder's typed settings): its message names the key
        return err["msg"].removeprefix("Value error, ")
    found = err.get("input")
    return f"key '{key}': {err['msg'].lower()}, found {found!r} ({type(found).__name__})"


def _data_source(raw: dict) -> tuple:
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    return data.get("path"), data.get("name")


def own_data_name(raw: dict, before: tuple) -> str | None:
    """The run name for a recipe whose data source was overridden on the command line to the user's own data
    (``data.path`` or ``data.name: hf:<id>``): the recipe's name with the data's name appended, so that the recipe's
    own registered model (which other recipes read as ``models:/NAME/latest``) and its folder's resume state are
    never touched by a run on other data. None when the data source is the recipe's own."""
    path, name = _data_source(raw)
    own = path or (isinstance(name, str) and name.startswith("hf:"))
    if not own or (path, name) == before or not isinstance(raw.get("name"), str):
        return None
    stem = Path(str(path)).stem if path else str(name).removeprefix("hf:").rstrip("/").rsplit("/", 1)[-1]
    slug = re.sub(r"[^0-9A-Za-z_.-]+", "-", stem).strip("-.") or "own-data"
    return f"{raw['name']}-{slug}"


def load(path: str | Path, overrides: list[str] | None = None, notes: list[str] | None = None,
         own_data_notes: list[str] | None = None) -> tuple[BaseModel, str, Path]:
    """Read, override and validate a recipe; return (config, the YAML text as run, its path). With ``notes`` (a
    list), a hub model that is not reachable from here is noted there instead of refused (``recipes show`` of a GPU
    recipe on a machine without network); training always refuses it. A run on your own data given by ``--set``
    is renamed (``own_data_name``) unless ``--set name=`` chooses the name; ``own_data_notes`` receives the note."""
    path = resolve_path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.y*ml"))
        hint = f"; it holds {', '.join(inside)}" if inside else ""
        raise RecipeError(f"{path}: is a folder; give a recipe file (e.g. {path / (inside[0] if inside else 'recipe.yaml')}) "
                          f"or a bundled recipe's name{hint}")
    if not path.exists():
        raise RecipeError(f"{path}: recipe file not found (bundled recipes: {', '.join(names()) or 'none'})")
    text = path.read_text()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: expected a mapping of keys at the top level, found {type(raw).__name__}")
    before = _data_source(raw)
    raw = apply_overrides(raw, list(overrides or []))
    renamed = None
    if not any(parse_override(item)[0] == ["name"] for item in overrides or []):
        renamed = own_data_name(raw, before)
        if renamed:
            original, raw["name"] = raw["name"], renamed
            if own_data_notes is not None:
                own_data_notes.append(f"your own data: this run is named {renamed} (its MLflow run, registered model and "
                                      f"folder), so models:/{original} and runs/{original} stay as they are; "
                                      "--set name=NAME chooses another name")
    learner = raw.get("learner")
    if learner not in job_names():
        raise RecipeError(f"{path}: key 'learner': expected one of {', '.join(job_names())}, found {learner!r}")
    config_cls = job(learner).Config
    try:
        config = config_cls.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(config_cls, e) for e in exc.errors()]
        raise RecipeError(f"{path}: " + ("\n  ".join(lines) if len(lines) == 1 else "\n  " + "\n  ".join(lines))) from None
    check_models(config, path, notes)
    if overrides:
        text = text.rstrip() + "\n# overrides: " + " ".join(overrides) + (f" (run named {renamed})" if renamed else "") + "\n"
    return config, text, path


def check_models(config: BaseModel, path: Path, notes: list[str] | None = None) -> None:
    """Resolve every model a recipe names (``model.backbone``, ``policy.model``) now, with an error that names the
    file and key, instead of after the data is built; and check ``freeze_layers`` against the model's blocks."""
    from rewardlab import backbones

    for section, field in (("model", "backbone"), ("policy", "model")):
        part = getattr(config, section, None)
        name = getattr(part, field, None)
        if isinstance(name, str):
            try:
                backbones.check(name, f"{section}.{field}", getattr(part, "freeze_layers", None), f"{section}.freeze_layers")
            except backbones.BackboneUnreachable as exc:
                if notes is None:
                    raise RecipeError(f"{path}: {exc}") from None
                notes.append(f"{section}.{field}: {name} is not in the local Hugging Face cache and not reachable from here; "
                             "it is downloaded when the recipe runs on a machine with network")
            except backbones.BackboneError as exc:
                raise RecipeError(f"{path}: {exc}") from None


def names() -> list[str]:
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def summary(path: Path) -> tuple[str, str]:
    """(learner, first comment line) of a recipe file, for ``rewardlab recipes list``."""
    text = path.read_text()
    first = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#")), "")
    try:
        learner = (yaml.safe_load(text) or {}).get("learner", "?")
    except yaml.YAMLError:
        learner = "(invalid YAML)"
    return learner, first
