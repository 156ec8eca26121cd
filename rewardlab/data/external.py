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
CARD = "preference-pairs"  # the card every external row is normalised to, and ``data validate`` checks through normalise
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


def _map_hint(flag: str | None, field: str) -> str:
    """How to map ``field`` to another column where the data comes in through ``flag``."""
    if flag == "--column":
        return f"map yours with --column {field}=your_column"
    if flag == "data.columns":
        return f"map yours with data.columns, e.g. {{{field}: your_column}}"
    return f"map yours with data.columns in a recipe, or --column {field}=your_column in rewardlab eval"


def _absent(row: dict, name: str, field: str, number: int, source: str, flag: str | None, need: str = "") -> DataError:
    """The error for a required field that a row lacks, or holds as null (a different fix: the value, not the map)."""
    if name in row:
        return DataError(f"{source}: row {number}: field '{name}' is null (found None); {field} needs a value")
    have = ", ".join(sorted(row)) or "none"
    return DataError(f"{source}: row {number}: field '{name}' is missing (its fields: {have}); {need}{_map_hint(flag, field)}")


def _blank(value) -> bool:
    """An answer with nothing in it: an empty or all-space string, or an empty message list."""
    return (isinstance(value, str) and not value.strip()) or (isinstance(value, list) and not value)


def normalise(row: dict, columns: dict[str, str], number: int, source: str, margin_from_scores: bool = False,
              flag: str | None = "data.columns") -> dict:
    """One source row as a preference-pairs row, or a DataError naming the source, the row and the field. The same
    rules for ``train`` (``load_external``), ``eval`` (``load_eval_rows``) and ``data validate --card
    preference-pairs`` (``check_rows``); ``flag`` is where the column map comes from, for the hint."""
    from trl.data_utils import maybe_extract_prompt

    if not isinstance(row, dict):
        raise DataError(f"{source}: row {number}: expected an object, found {type(row).__name__}")
    names = {field: columns.get(field, field) for field in FIELDS}
    for field in ("chosen", "rejected"):
        if row.get(names[field]) is None:
            raise _absent(row, names[field], field, number, source, flag)
    out = {field: row[name] for field, name in names.items() if name in row and row[name] is not None}
    if margin_from_scores and "margin" not in out and {"score_chosen", "score_rejected"} <= set(row):
        scores = [_number(row[k]) for k in ("score_chosen", "score_rejected")]
        if None in scores:
            raise DataError(f"{source}: row {number}: fields 'score_chosen' and 'score_rejected': data.margin_from_scores needs "
                            f"two numbers, found {row['score_chosen']!r:.30} and {row['score_rejected']!r:.30}")
        out["margin"] = scores[0] - scores[1]
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
    if "margin" in out and _number(out["margin"]) is None:
        raise DataError(f"{source}: row {number}: field '{names['margin']}': the margin must be a number, found {out['margin']!r:.40}")
    if "subset" in out:
        out["subset"] = _subset(out["subset"], names["subset"], number, source)
    for field in ("chosen", "rejected"):
        if _blank(out[field]):
            raise DataError(f"{source}: row {number}: field '{names[field]}' is empty")
        if _is_chat(out[field]) and out[field][-1]["role"] != "assistant":
            raise DataError(f"{source}: row {number}: field '{names[field]}': its last message is not the assistant's answer")
    if "prompt" in out and _blank(out["prompt"]):
        raise DataError(f"{source}: row {number}: field '{names['prompt']}' is empty")
    if out["chosen"] == out["rejected"]:  # nothing to prefer (and TRL's prefix split would cut into the text)
        raise DataError(f"{source}: row {number}: fields '{names['chosen']}' and '{names['rejected']}' are the same")
    pair = maybe_extract_prompt({k: out[k] for k in ("prompt", "chosen", "rejected") if k in out})
    if "prompt" not in pair or not pair["prompt"]:
        raise DataError(f"{source}: row {number}: no prompt: field '{names['prompt']}' is missing and the answers share no "
                        "prefix to take it from")
    for field in ("chosen", "rejected"):
        if _blank(pair[field]):
            raise DataError(f"{source}: row {number}: field '{names[field]}' is empty once the shared prompt is split off")
    result = {"prompt": pair["prompt"], "chosen": pair["chosen"], "rejected": pair["rejected"]}
    for field in ("margin", "subset", "reference"):
        if field in out:
            result[field] = _number(out[field]) if field == "margin" else out[field]
    return result


def _subset(value, name: str, number: int, source: str) -> str:
    """A row's subset as a name: a string, or an integer written as one (a numbered category is still a category)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DataError(f"{source}: row {number}: field '{name}': a subset is a name (a string), found {type(value).__name__}")
    return value


def _number(value) -> float | None:
    """``value`` as a float (a number, or a string that spells one, as a CSV may hold it); None for anything else."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def check_columns(columns: dict[str, str], available, where: str, flag: str) -> None:
    """A DataError when the column map names a column that the data does not have: a typo there would otherwise drop
    the field without a word (a prompt taken from the answers' shared prefix, a subset or margin left out).
    ``available`` is the data's column names; ``where`` names the data in the message."""
    have = set(available)
    for field, column in columns.items():
        if column not in have:
            shown = f"--column {field}={column}" if flag == "--column" else f"data.columns.{field}: {column}"
            raise DataError(f"{shown}: {where} has no column '{column}' (its columns: {', '.join(sorted(have)) or 'none'}); "
                            f"the {field} would be left out")


def _load(cfg, flag: str | None = None) -> tuple[Any, str]:
    """(a DatasetDict or Dataset, its source text) for ``hf:<id>`` or a local file; ``flag`` names where the user
    gave it (``--data`` for ``rewardlab eval``; default: ``data.path`` / ``data.name`` of a recipe)."""
    import datasets

    if cfg.path is not None:
        path = Path(cfg.path)
        where = f"{flag} {path}" if flag else f"data.path: {path}"
        builder = LOCAL_BUILDERS.get("".join(path.suffixes[-1:]).lower())
        if builder is None:
            raise DataError(f"{where}: expected a .jsonl, .json, .parquet or .csv file")
        try:
            return datasets.load_dataset(builder, data_files=str(path), split="train"), str(path)
        except Exception as exc:  # a malformed file: datasets says why
            raise DataError(f"{where}: could not be read as {builder} ({type(exc).__name__}: {exc})") from None
    name = cfg.name.removeprefix("hf:")
    try:
        ds = datasets.load_dataset(name, cfg.config, revision=cfg.revision)
    except Exception as exc:  # offline, a wrong id or config: say so plainly
        where = f"{flag} {cfg.name}" if flag else f"data.name: {cfg.name}"
        raise DataError(f"{where}: could not load it through datasets.load_dataset ({type(exc).__name__}: {str(exc)[:300]}); "
                        "a hub dataset needs network (or a local folder: hf:/path/to/folder)") from None
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


def columns_of(rows) -> set[str]:
    """Every column name that some row has (rows read from JSON lines need not all have the same ones)."""
    return set().union(*(row for row in rows if isinstance(row, dict)))


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
    for split, rows in (("train", train), ("test", test)):
        check_columns(cfg.columns, columns_of(rows), f"{source} [{split}]", "data.columns")
    card = find_card(CARD)
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

    @property
    def split_label(self) -> str:
        """What was evaluated, for the printed report's labels: the split's name, or "all rows" for a source that
        has no splits (nor a split column)."""
        return self.split or "all rows"


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


def normalise_best_of_n(row: dict, columns: dict[str, str], number: int, source: str, flag: str | None = "--column") -> dict:
    """One best-of-N row (RewardBench 2's layout: ``prompt``, ``chosen`` and ``rejected`` lists, ``num_correct``,
    ``subset``, ``id``), or a DataError naming the source, the row and the field."""
    if not isinstance(row, dict):
        raise DataError(f"{source}: row {number}: expected an object, found {type(row).__name__}")
    names = {field: columns.get(field, field) for field in FIELDS}
    for field in ("prompt", "chosen", "rejected"):
        if row.get(names[field]) is None:
            raise _absent(row, names[field], field, number, source, flag,
                          need="the best-of-N layout needs prompt, chosen and rejected; ")
    prompt = row[names["prompt"]]
    if not (isinstance(prompt, str) or _is_chat(prompt)):
        raise DataError(f"{source}: row {number}: field '{names['prompt']}': expected a string or a list of {{role, content}} "
                        f"messages, found {type(prompt).__name__}")
    out = {"prompt": prompt, "chosen": _answer_list(row[names["chosen"]], names["chosen"], number, source),
           "rejected": _answer_list(row[names["rejected"]], names["rejected"], number, source)}
    if row.get(names["subset"]) is not None:
        out["subset"] = _subset(row[names["subset"]], names["subset"], number, source)
    if row.get(names["reference"]) is not None:
        out["reference"] = row[names["reference"]]
    if row.get("id") is not None:
        out["id"] = str(row["id"])
    return out


def _looks_best_of_n(row: dict, columns: dict[str, str]) -> bool:
    """A list of answers in chosen or rejected (a message list is one answer, not a list of them)."""
    return any(isinstance(v := row.get(columns.get(f, f)), list) and v and not _is_chat(v) for f in ("chosen", "rejected"))


def detect_format(rows: list, columns: dict[str, str]) -> str:
    """``best-of-n`` when the first row holds a list of answers in chosen or rejected, else ``pairs``."""
    return "best-of-n" if rows and isinstance(rows[0], dict) and _looks_best_of_n(rows[0], columns) else "pairs"


def check_rows(numbered_rows, columns: dict[str, str], fmt: str, source: str,
               flag: str | None = "--column") -> tuple[list[dict], list[tuple[int, str]]]:
    """Normalise ``(number, row)`` pairs in the layout ``fmt``: (the rows that pass, normalised; (number, reason)
    for each that does not). ``rewardlab eval`` and ``data validate --card preference-pairs`` both check rows here,
    so a row passes the one iff it passes the other; training normalises with the same ``normalise``."""
    out, problems = [], []
    for number, row in numbered_rows:
        try:
            out.append(normalise_best_of_n(row, columns, number, source, flag) if fmt == "best-of-n"
                       else normalise(row, columns, number, source, flag=flag))
        except DataError as exc:
            problems.append((number, str(exc).removeprefix(f"{source}: ").removeprefix(f"row {number}: ")))
    return out, problems


def bad_rows(where: str, problems: list[tuple[int, str]], after: str, cap: int = 20) -> DataError:
    """One DataError listing ``problems`` ((row number, reason)) in row order under ``where: N bad rows<after>:``,
    the first ``cap`` of them and how many more there are."""
    problems = sorted(problems, key=lambda p: p[0])
    lines = [f"row {number}: {reason}" for number, reason in problems[:cap]]
    more = f"\n  ... and {len(problems) - cap} more" if len(problems) > cap else ""
    head = f"{where}: {len(problems)} bad row{'s' if len(problems) > 1 else ''}{after}"
    return DataError(head + ":\n  " + "\n  ".join(lines) + more)


def unknown_data(spec: str) -> DataError:
    """The error for ``--data SPEC`` that is no file, no built-in dataset and not ``hf:<id>``: every form it can take."""
    from rewardlab.data import registry

    path = Path(spec)
    hub = (f"; a hub dataset is written hf:{spec}" if "/" in spec and path.suffix.lower() not in LOCAL_BUILDERS
           and not path.parent.exists() else "")
    return DataError(f"--data {spec}: no such file, and not a built-in dataset ({', '.join(registry.names('preferences'))}){hub}; "
                     "--data takes a built-in name, a Hugging Face dataset as hf:<id> (e.g. hf:allenai/reward-bench-2, or a "
                     "local dataset folder as hf:/path/to/folder), or a .jsonl, .json, .parquet or .csv file")


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
        raise unknown_data(spec)
    if local and spec.endswith(".jsonl"):  # read as written, so each row's own types are checked (pyarrow coerces a column)
        from rewardlab.data.rows import read_jsonl

        ds, source = read_jsonl(spec), spec
    else:
        ds, source = _load(SimpleNamespace(path=Path(spec) if local else None, name=spec, config=config, revision=revision),
                           flag="--data")
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
    check_columns({f: c for f, c in columns.items() if not (f == "subset" and c == subset_column)}, columns_of(rows),
                  source + (f" [{chosen_split}]" if chosen_split else ""), "--column")
    fmt = fmt or detect_format(rows, columns)
    rows = rows[:max_rows] if max_rows is not None else rows
    out, problems = check_rows(enumerate(rows, start=1), columns, fmt, source)
    if problems:
        raise bad_rows(source, problems, ", nothing was scored")
    return EvalRows(out, source, fmt, chosen_split)
