"""Which class rebuilds a trainer's output folder. ``reward.json`` names a key of this registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REWARD_JSON = "reward.json"
_CLASSES: dict[str, type] = {}


def register(kind: str):
    """Class decorator: make ``kind`` in ``reward.json`` rebuild this class via ``cls.from_folder(path)``."""

    def wrap(cls: type) -> type:
        if kind in _CLASSES and _CLASSES[kind] is not cls:
            raise ValueError(f"reward kind '{kind}' is already registered to {_CLASSES[kind].__name__}")
        cls.kind = kind
        _CLASSES[kind] = cls
        return cls

    return wrap


def kinds() -> list[str]:
    return sorted(_CLASSES)


def write_reward_json(folder: str | Path, kind: str, **meta: Any) -> Path:
    """Write the manifest that ``rewards.load`` reads. ``meta`` holds what the class needs to rebuild itself."""
    if kind not in _CLASSES:
        raise ValueError(f"unknown reward kind '{kind}'; registered: {', '.join(kinds())}")
    path = Path(folder) / REWARD_JSON
    path.write_text(json.dumps({"kind": kind, "format_version": 1, **meta}, indent=2, sort_keys=True))
    return path


def read_reward_json(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / REWARD_JSON
    if not path.exists():
        raise FileNotFoundError(f"{folder}: no {REWARD_JSON}; this folder was not written by a rewardlab trainer")
    return json.loads(path.read_text())


def class_for(kind: str) -> type:
    if kind not in _CLASSES:
        raise ValueError(f"{REWARD_JSON} names kind '{kind}', which this rewardlab does not know; known: {', '.join(kinds())}")
    return _CLASSES[kind]
