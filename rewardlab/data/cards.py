"""Dataset cards: YAML front matter with the Hugging Face dataset-card fields, prose below.

Loading validates every row against the card's ``dataset_info.features``. A bad row fails with the file,
the row number, the field and the reason, before any training starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REQUIRED_KEYS = ("pretty_name", "license", "task_categories", "dataset_info")


class DataError(ValueError):
    """A dataset or card problem a user can fix; the message names the file, row and field."""


def cards_dir() -> Path:
    """``$REWARDLAB_CARDS``, else the ``data_cards/`` folder of the source tree."""
    env = os.environ.get("REWARDLAB_CARDS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data_cards"


@dataclass
class Card:
    path: Path
    meta: dict[str, Any]
    prose: str
    features: dict[str, dict[str, list[dict]]] = field(default_factory=dict)  # config -> name -> feature
    splits: dict[str, list[str]] = field(default_factory=dict)  # config -> the split names the card declares

    @property
    def name(self) -> str:
        return self.path.stem

    def configs(self) -> list[str]:
        return list(self.features)

    def validate_rows(self, rows: list[dict], config: str | None = None, source: str | Path | None = None,
                      max_errors: int = 20) -> list[dict]:
        """Check each row against the schema of ``config`` (default: the card's first); return the rows unchanged
        when all pass. Otherwise raise one DataError listing every bad row (up to ``max_errors``) with its number,
        field and reason. An empty file, an unknown config, and a ``split`` value the card does not declare are
        errors too."""
        where = source or self.path
        if config is not None and config not in self.features:
            raise DataError(f"{self.path.name}: no config '{config}'; this card's configs are: {', '.join(self.configs())}")
        config = config or self.configs()[0]
        if not rows:
            raise DataError(f"{where}: no rows (an empty file); expected rows with fields: {', '.join(self.features[config])}")
        problems = [f"row {number}: {reason}" for number, reason in self.row_problems(enumerate(rows, start=1), config, max_errors)]
        if problems:
            more = " (stopped there)" if len(problems) >= max_errors else ""
            head = f"{where}: {len(problems)} bad row{'s' if len(problems) > 1 else ''}{more} against {self.path.name} (config {config})"
            raise DataError(head + ":\n  " + "\n  ".join(problems) if len(problems) > 1 else f"{where}: {problems[0]}")
        return rows

    def row_problems(self, numbered_rows, config: str | None = None, max_errors: int | None = None) -> list[tuple[int, str]]:
        """(row number, reason) for each of ``numbered_rows`` ((number, row) pairs) that does not fit ``config``
        (default: the card's first), stopping after ``max_errors`` when given. ``data validate`` numbers rows by
        their line in the file and lists these beside the lines that are not JSON."""
        config = config or self.configs()[0]
        if config not in self.features:
            raise DataError(f"{self.path.name}: no config '{config}'; this card's configs are: {', '.join(self.configs())}")
        schema, splits = self.features[config], self.splits.get(config, [])
        problems = []
        for number, row in numbered_rows:
            reason = self._row_problem(row, schema, splits)
            if reason:
                problems.append((number, reason))
                if max_errors is not None and len(problems) >= max_errors:
                    break
        return problems

    def _row_problem(self, row, schema: dict, splits: list[str]) -> str | None:
        if not isinstance(row, dict):
            return f"expected an object, found {type(row).__name__}"
        extra = sorted(set(row) - set(schema))
        if extra:
            return f"field '{extra[0]}' is not in the card {self.path.name} (expected fields: {', '.join(schema)})"
        for name, feature in schema.items():
            if name not in row:
                if feature.get("nullable"):
                    continue
                return f"field '{name}' is missing"
            reason = _check_value(row[name], feature)
            if reason:
                return f"field '{name}': {reason}"
        if "split" in row and splits and row["split"] not in splits:
            return f"field 'split': {row['split']!r} is not a split of this card (expected one of: {', '.join(splits)})"
        return None


_DTYPES = {
    "string": (str,),
    "bool": (bool,),
    "int64": (int,),
    "int32": (int,),
    "float32": (int, float),
    "float64": (int, float),
}


def _check_value(value: Any, feature: dict) -> str | None:
    if value is None:
        return None if feature.get("nullable") else "expected a value, found null"
    if "dtype" in feature:
        dtype = feature["dtype"]
        if dtype == "chat":  # rewardlab's Chat: a string or a list of role/content messages
            if isinstance(value, str):
                return None
            if isinstance(value, list) and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in value):
                return None
            return f"expected a string or a list of {{role, content}} messages, found {type(value).__name__}"
        allowed = _DTYPES.get(dtype)
        if allowed is None:
            return f"the card uses dtype '{dtype}', which rewardlab cannot check"
        if isinstance(value, bool) and dtype != "bool":
            return f"expected {dtype}, found bool ({value!r})"
        if not isinstance(value, allowed):
            return f"expected {dtype}, found {type(value).__name__} ({str(value)[:40]!r})"
        return None
    if "sequence" in feature:
        if not isinstance(value, list):
            return f"expected a list, found {type(value).__name__}"
        inner = feature["sequence"] if isinstance(feature["sequence"], dict) else {"dtype": feature["sequence"]}
        for i, item in enumerate(value):
            reason = _check_value(item, inner)
            if reason:
                return f"item {i}: {reason}"
        return None
    return "the card gives this feature neither dtype nor sequence"


def parse_card(path: str | Path) -> Card:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: dataset card not found")
    text = path.read_text()
    if not text.startswith("---"):
        raise DataError(f"{path}: a card starts with YAML front matter between '---' lines")
    from huggingface_hub import DatasetCard

    try:  # the Hugging Face hub's own card parser: front matter as DatasetCardData, the prose as text
        card = DatasetCard(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: the front matter is not valid YAML ({exc})") from None
    meta, prose = card.data.to_dict(), card.text
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise DataError(f"{path}: the front matter lacks required key '{missing[0]}' (required: {', '.join(REQUIRED_KEYS)})")
    if "source" not in meta and "builder" not in meta:
        raise DataError(f"{path}: the front matter needs 'source' (where the data lives) or 'builder' (what makes it)")
    infos = meta["dataset_info"]
    infos = infos if isinstance(infos, list) else [infos]
    features: dict[str, dict[str, dict]] = {}
    splits: dict[str, list[str]] = {}
    for info in infos:
        config = info.get("config_name", "default")
        if "features" not in info or "splits" not in info:
            raise DataError(f"{path}: dataset_info for config '{config}' needs 'features' and 'splits'")
        features[config] = {f["name"]: f for f in info["features"]}
        splits[config] = [s["name"] for s in info["splits"] if isinstance(s, dict) and "name" in s]
    return Card(path=path, meta=meta, prose=prose.strip(), features=features, splits=splits)


def find_card(name: str) -> Card:
    """The card for a dataset name such as ``math-answers`` or ``Anthropic/hh-rlhf``."""
    slug = name.split("/")[-1]
    path = cards_dir() / f"{slug}.md"
    if not path.exists():
        known = sorted(p.stem for p in cards_dir().glob("*.md"))
        raise DataError(f"no dataset card for '{name}' ({path}); cards exist for: {', '.join(known)}")
    return parse_card(path)
