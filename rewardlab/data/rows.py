"""Row primitives every builder and loader uses: JSON-lines files (gzip too) written atomically, and the cache
key of a builder's settings. Below the builders and the loaders, so neither imports the other for these."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from rewardlab.data.cards import DataError


def whole_number(value, minimum: int) -> bool:
    """Whether a builder setting is an integer (not a bool) of at least ``minimum``; callers word their own message."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def settings_key(settings, ignore: tuple[str, ...] = ()) -> str:
    """A short hash of a builder's settings dataclass, leaving out the fields that do not change its rows:
    the name of its cache file."""
    fields = {k: v for k, v in asdict(settings).items() if k not in ignore}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def read_jsonl(path: str | Path) -> list[dict]:
    """JSON lines as dicts; a ``.gz`` path is read through gzip (larger shipped files are stored compressed)."""
    import gzip

    rows = []
    path = Path(path)
    with (gzip.open(path, "rt") if path.suffix == ".gz" else path.open()) as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: row {number}: not valid JSON ({exc.msg})") from None
    return rows


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Write rows as JSON lines atomically: a crash mid-write never leaves a half file where a cache is expected."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    with tmp.open("w") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in rows)
    tmp.rename(path)
