"""Preference data from outside rewardlab: any Hugging Face dataset (``data.name: hf:<id>``) or a local JSONL,
Parquet or CSV file (``data.path``), read through ``datasets.load_dataset`` and normalised to one row format
(``data_cards/preference-pairs.md``): ``prompt``, ``chosen``, ``rejected`` (strings or message lists), and when
the source has them ``margin``, ``subset`` and ``reference``.

Layouts handled without a column map: TRL's standard and conversational preference formats, explicit or implicit
prompt (the implicit prompt is split off by TRL's own ``maybe_extract_prompt``, the longest common prefix);
Anthropic/hh-rlhf transcripts (turned into messages first, as TRL's hh-rlhf script does); UltraFeedback-binarized
(message lists including the user turn, ``score_chosen`` / ``score_rejected``); Skywork preference (message lists);
RewardBench (``prompt``, ``chosen``, ``rejected``, ``subset``). ``data.columns`` maps any other names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rewardlab.data.cards import DataError

FIELDS = ("prompt", "chosen", "rejected", "margin", "subset", "reference")
LOCAL_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
TEST_SPLITS = ("test", "test_prefs", "validation", "valid", "dev")
_HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")


def hh_to_messages(text: str) -> list[dict] | None:
    """An hh-rlhf transcript (``"\\n\\nHuman: ...\\n\\nAssistant: ..."``) as role/content messages; None when
    ``text`` is not one."""
    if not isinstance(text, str) or not text.startswith("\n\nHuman:"):
        return None
    parts = _HH_TURN.split(text)[1:]  # ["Human", "q", "Assistant", "a", ...]
    return [{"role": "user" if who == "Human" else "assistant", "content": said.strip()} for who, said in zip(parts[::2], parts[1::2])]


def _is_chat(value) -> bool:
    return isinstance(value, list) and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in value)


def normalise(row: dict, columns: dict[str, str], number: int, source: str, margin_from_scores: bool = False) -> dict:
    """One source row as a preference-pairs row, or a DataError naming the source, the row and the field."""
    from trl.data_utils import maybe_extract_prompt

    if not isinstance(row, dict):
        raise DataError(f"{source}: row {number}: expected an object, found {type(row).__name__}")
    names = {field: columns.get(field, field) for field in FIELDS}
    for field in ("chosen", "rejected"):
        if names[field] not in row or row[names[field]] is None:
            have = ", ".join(sorted(row)) or "none"
            raise DataError(f"{source}: row {number}: field '{names[field]}' is missing (its fields: {have}); map yours with "
                            f"data.columns, e.g. {{{field}: your_column}}")
    out = {field: row[name] for field, name in names.items() if name in row and row[name] is not None}
    if margin_from_scores and "margin" not in out and {"score_chosen", "score_rejected"} <= set(row):
        out["margin"] = float(row["score_chosen"]) - float(row["score_rejected"])
    for field in ("prompt", "chosen", "rejected"):
        if field in out and (messages := hh_to_messages(out[field])) is not None:
            out[field] = messages
    for field in ("prompt", "chosen", "rejected", "reference"):
        value = out.get(field)
        if value is not None and not isinstance(value, str) and not _is_chat(value):
            raise DataError(f"{source}: row {number}: field '{names[field]}': expected a string or a list of "
                            f"{{role, content}} messages, found {type(value).__name__}"
                            + (" (a list of answers is the best-of-N layout: evaluate it with --format best-of-n)"
                               if isinstance(value, list) and field in ("chosen", "rejected") else ""))
    for field in ("chosen", "rejected"):
        if _is_chat(out[field]) and (not out[field] or out[field][-1]["role"] != "assistant"):
            raise DataError(f"{source}: row {number}: field '{names[field]}': its last message is not the assistant's answer")
    if out["chosen"] == out["rejected"]:  # nothing to prefer (and TRL's prefix split would cut into the text)
        raise DataError(f"{source}: row {number}: fields '{names['chosen']}' and '{names['rejected']}' are the same")
    pair = maybe_extract_prompt({k: out[k] for k in ("prompt", "chosen", "rejected") if k in out})
    if "prompt" not in pair or not pair["prompt"]:
        raise DataError(f"{source}: row {number}: no prompt: field '{names['prompt']}' is missing and the answers share no "
                        "prefix to take it from")
    for field in ("chosen", "rejected"):
        if not pair[field] or (isinstance(pair[field], str) and not pair[field].strip()):
            raise DataError(f"{source}: row {number}: field '{names[field]}' is empty once the shared prompt is split off")
    result = {"prompt": pair["prompt"], "chosen": pair["chosen"], "rejected": pair["rejected"]}
    for field in ("margin", "subset", "reference"):
        if field in out:
            result[field] = float(out[field]) if field == "margin" else out[field]
    return result


def _load(cfg) -> tuple[Any, str]:
    """(a DatasetDict or Dataset, its source text) for ``hf:<id>`` or a local file."""
    import datasets

    if cfg.path is not None:
        path = Path(cfg.path)
        builder = LOCAL_BUILDERS.get("".join(path.suffixes[-1:]).lower())
        if builder is None:
            raise DataError(f"data.path: {path}: expected a .jsonl, .json, .parquet or .csv file")
        try:
            return datasets.load_dataset(builder, data_files=str(path), split="train"), str(path)
        except Exception as exc:  # a malformed file: datasets says why
            raise DataError(f"data.path: {path}: could not be read as {builder} ({type(exc).__name__}: {exc})") from None
    name = cfg.name.removeprefix("hf:")
    try:
        ds = datasets.load_dataset(name, cfg.config, revision=cfg.revision)
    except Exception as exc:  # offline, a wrong id or config: say so plainly
        raise DataError(f"data.name: {cfg.name}: could not load it through datasets.load_dataset ({type(exc).__name__}: "
                        f"{str(exc)[:300]}); a hub dataset needs network (or a local folder: hf:/path/to/folder)") from None
    return ds, f"hf://datasets/{name}" + (f" ({cfg.config})" if cfg.config else "") + (f"@{cfg.revision}" if cfg.revision else "")


def _split_rows(ds, cfg, source: str) -> tuple[list[dict], list[dict]]:
    """(train rows, test rows) as the source gives them: named splits of a DatasetDict, a ``split`` column, or a
    seeded held-out fraction."""
    import datasets

    if isinstance(ds, datasets.DatasetDict):
        train_name = cfg.split or "train"
        if train_name not in ds:
            raise DataError(f"{source}: no split '{train_name}'; its splits: {', '.join(ds)} (set data.split)")
        test_name = cfg.test_split or next((s for s in TEST_SPLITS if s in ds), None)
        if test_name is not None and test_name not in ds:
            raise DataError(f"{source}: no split '{test_name}'; its splits: {', '.join(ds)} (set data.test_split)")
        if test_name is not None:
            return list(ds[train_name]), list(ds[test_name])
        ds = ds[train_name]
    elif cfg.split is not None or cfg.test_split is not None:
        if "split" not in ds.column_names:
            raise DataError(f"{source}: data.split / data.test_split need named splits or a 'split' column; this file has neither")
    if "split" in ds.column_names:
        rows = list(ds)
        train_name, test_name = cfg.split or "train", cfg.test_split or "test"
        known = sorted({str(r["split"]) for r in rows})
        for name in (train_name, test_name):
            if name not in known:
                raise DataError(f"{source}: no row has split '{name}'; its split values: {', '.join(known)}")
        return [r for r in rows if r["split"] == train_name], [r for r in rows if r["split"] == test_name]
    if len(ds) < 2:
        raise DataError(f"{source}: {len(ds)} row(s); at least 2 are needed to hold some out for evaluation")
    parts = ds.train_test_split(test_size=cfg.test_fraction, seed=cfg.split_seed)
    return list(parts["train"]), list(parts["test"])


def load_external(cfg) -> tuple[list[dict], list[dict], str]:
    """(train pairs, test pairs, source) of ``cfg`` (a TextDataConfig naming ``hf:<id>`` or giving ``path``), every
    row normalised and validated against the preference-pairs card; nothing is trained on a bad row."""
    from rewardlab.data.cards import find_card

    ds, source = _load(cfg)
    train, test = _split_rows(ds, cfg, source)
    if not train:
        raise DataError(f"{source}: no training rows")
    if not test:
        raise DataError(f"{source}: no held-out rows to evaluate on (set data.test_split, or data.test_fraction)")
    card = find_card("preference-pairs")
    out = []
    for split, rows in (("train", train), ("test", test)):
        pairs = [normalise(r, cfg.columns, i + 1, f"{source} [{split}]", cfg.margin_from_scores) for i, r in enumerate(rows)]
        out.append(card.validate_rows([{**p, "split": split} for p in pairs], "pairs", source=f"{source} [{split}]"))
    return out[0], out[1], source


# Evaluation data (``rewardlab eval --data hf:<id> | path``): held-out rows only, no training rows needed, as pairs
# (one chosen, one rejected) or in the best-of-N layout of RewardBench 2 (``chosen`` and ``rejected`` are lists).


@dataclass
class EvalRows:
    """Rows to evaluate a reward on: ``pairs`` rows are preference-pairs rows; ``best-of-n`` rows carry ``prompt``,
    ``chosen`` and ``rejected`` as lists of answers, and ``id`` / ``subset`` / ``reference`` when the source has them."""

    rows: list[dict]
    source: str
    format: str  # "pairs" | "best-of-n"
    split: str | None


def _answer_list(value, field: str, number: int, source: str) -> list:
    answers = [value] if isinstance(value, str) or _is_chat(value) else value
    if not isinstance(answers, list) or not answers:
        raise DataError(f"{source}: row {number}: field '{field}': expected an answer or a non-empty list of answers, "
                        f"found {type(value).__name__ if not isinstance(value, list) else 'an empty list'}")
    for answer in answers:
        if not (isinstance(answer, str) or _is_chat(answer)) or (isinstance(answer, str) and not answer.strip()):
            raise DataError(f"{source}: row {number}: field '{field}': each answer must be a non-empty string or a list of "
                            f"{{role, content}} messages, found {answer!r:.60}")
    return answers


def normalise_best_of_n(row: dict, columns: dict[str, str], number: int, source: str) -> dict:
    """One best-of-N row (RewardBench 2's layout: ``prompt``, ``chosen`` and ``rejected`` lists, ``num_correct``,
    ``subset``, ``id``), or a DataError naming the source, the row and the field."""
    if not isinstance(row, dict):
        raise DataError(f"{source}: row {number}: expected an object, found {type(row).__name__}")
    names = {field: columns.get(field, field) for field in FIELDS}
    for field in ("prompt", "chosen", "rejected"):
        if row.get(names[field]) is None:
            have = ", ".join(sorted(row)) or "none"
            raise DataError(f"{source}: row {number}: field '{names[field]}' is missing (its fields: {have}); the best-of-N "
                            f"layout needs prompt, chosen and rejected (map yours with --column {field}=your_column)")
    prompt = row[names["prompt"]]
    if not (isinstance(prompt, str) or _is_chat(prompt)):
        raise DataError(f"{source}: row {number}: field '{names['prompt']}': expected a string or a list of {{role, content}} "
                        f"messages, found {type(prompt).__name__}")
    out = {"prompt": prompt, "chosen": _answer_list(row[names["chosen"]], names["chosen"], number, source),
           "rejected": _answer_list(row[names["rejected"]], names["rejected"], number, source)}
    for field in ("subset", "reference"):
        if row.get(names[field]) is not None:
            out[field] = row[names[field]]
    if row.get("id") is not None:
        out["id"] = str(row["id"])
    return out


def _looks_best_of_n(row: dict, columns: dict[str, str]) -> bool:
    """A list of answers in chosen or rejected (a message list is one answer, not a list of them)."""
    return any(isinstance(v := row.get(columns.get(f, f)), list) and v and not _is_chat(v) for f in ("chosen", "rejected"))


def load_eval_rows(spec: str, split: str | None = None, columns: dict[str, str] | None = None, fmt: str | None = None,
                   subset_column: str | None = None, config: str | None = None, revision: str | None = None,
                   max_rows: int | None = None) -> EvalRows:
    """Held-out rows of ``spec`` (``hf:<id>``, a local dataset folder as ``hf:/path``, or a JSONL / JSON / Parquet /
    CSV file), every row checked before anything is scored; up to 20 bad rows are reported together.

    The split: ``split`` when given (a named split, or a value of the ``split`` column); else the first of
    test / test_prefs / validation / valid / dev the source has, the ``test`` rows of a ``split`` column, the only
    split, or every row of a file. ``fmt`` None detects the layout from the first row."""
    import datasets

    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(FIELDS))
    if unknown:
        raise DataError(f"--column: unknown field {', '.join(unknown)}; the fields are {', '.join(FIELDS)}")
    if subset_column:
        columns["subset"] = subset_column
    local = not spec.startswith("hf:")
    if local and not Path(spec).exists():
        raise DataError(f"--data {spec}: no such file, and not a built-in dataset or hf:<id>")
    if local and spec.endswith(".jsonl"):  # read as written, so each row's own types are checked (pyarrow coerces a column)
        from rewardlab.data.rows import read_jsonl

        ds, source = read_jsonl(spec), spec
    else:
        ds, source = _load(SimpleNamespace(path=Path(spec) if local else None, name=spec, config=config, revision=revision))
    chosen_split, named = None, isinstance(ds, datasets.DatasetDict)
    if named:
        if split is not None and split not in ds:
            raise DataError(f"{source}: no split '{split}'; its splits: {', '.join(ds)} (--split)")
        chosen_split = split or next((s for s in TEST_SPLITS if s in ds), None) or (next(iter(ds)) if len(ds) == 1 else None)
        if chosen_split is None:
            raise DataError(f"{source}: which split to evaluate? its splits: {', '.join(ds)} (--split)")
        ds = ds[chosen_split]
    rows = list(ds)
    if rows and not named and all(isinstance(r, dict) and "split" in r for r in rows):
        known = sorted({str(r["split"]) for r in rows})
        if split is not None and split not in known:
            raise DataError(f"{source}: no row has split '{split}'; its split values: {', '.join(known)} (--split)")
        chosen_split = split or ("test" if "test" in known else None)
        if chosen_split is not None:
            rows = [r for r in rows if r["split"] == chosen_split]
    elif split is not None and not named:
        raise DataError(f"{source}: --split needs named splits or a 'split' column; this source has neither")
    if not rows:
        raise DataError(f"{source}: no rows to evaluate" + (f" in split '{chosen_split}'" if chosen_split else ""))
    if subset_column and subset_column not in rows[0]:
        raise DataError(f"{source}: row 1: --subset-column '{subset_column}' is not a field (its fields: {', '.join(sorted(rows[0]))})")
    fmt = fmt or ("best-of-n" if isinstance(rows[0], dict) and _looks_best_of_n(rows[0], columns) else "pairs")
    rows = rows[:max_rows] if max_rows is not None else rows
    problems, out = [], []
    for number, row in enumerate(rows, start=1):
        try:
            out.append(normalise_best_of_n(row, columns, number, source) if fmt == "best-of-n"
                       else normalise(row, columns, number, source))
        except DataError as exc:
            problems.append(str(exc).removeprefix(f"{source}: "))
    if problems:
        raise DataError(f"{source}: {len(problems)} bad row(s), nothing was scored:\n  " + "\n  ".join(problems[:20])
                        + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""))
    return EvalRows(out, source, fmt, chosen_split)
