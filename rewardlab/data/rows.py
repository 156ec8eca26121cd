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


def read_jsonl_lines(path: str | Path) -> tuple[list[tuple[int, object]], list[tuple[int, str]]]:
    """Every line of a JSON-lines file, read past the bad ones: ((line number, value) for each JSON line,
    (line number, "not valid JSON: ...") for each line that is not JSON). Blank lines are skipped but counted, so
    the numbers are the file's own line numbers. ``data validate`` reports the bad lines beside the bad rows."""
    import gzip

    rows, bad = [], []
    path = Path(path)
    with (gzip.open(path, "rt") if path.suffix == ".gz" else path.open()) as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                bad.append((number, f"not valid JSON: {exc.msg} (column {exc.colno})"))
    return rows, bad


def read_jsonl(path: str | Path) -> list[dict]:
    """JSON lines as dicts; a ``.gz`` path is read through gzip (larger shipped files are stored compressed). A line
    that is not JSON is a DataError naming the file and the line."""
    rows, bad = read_jsonl_lines(path)
    if bad:
        number, reason = bad[0]
        raise DataError(f"{path}: row {number}: {reason}")
    return [row for _, row in rows]


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Write rows as JSON lines atomically: a crash mid-write never leaves a half file where a cache is expected."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    with tmp.open("w") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in rows)
    tmp.rename(path)
