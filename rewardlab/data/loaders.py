"""Loaders: every dataset a recipe names comes through here and is validated against its card."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, FilePath, model_validator

from rewardlab.data.cards import Card, DataError, find_card, parse_card
from rewardlab.data.external import CARD
from rewardlab.data.rows import read_jsonl

from rewardlab.data import registry


def math_builder(name: str):
    """The module of a registered preference builder (``build``, ``canonical_answer``, its settings class)."""
    return registry.get(name, kind="preferences").load_module()


HUB_PREFERENCES = ("Anthropic/hh-rlhf",)


def unknown_dataset(name: str) -> DataError:
    """The error for a ``data.name`` that names nothing: every form a preference dataset can be given in."""
    hub = f" (a hub id is written hf:{name})" if "/" in name else ""
    return DataError(f"data.name: unknown dataset '{name}'{hub}; expected a built-in dataset "
                     f"({', '.join(registry.names('preferences'))}), a Hugging Face dataset as hf:<id> (e.g. "
                     "hf:trl-lib/ultrafeedback_binarized, or a local dataset folder as hf:/path/to/folder), "
                     f"{', '.join(HUB_PREFERENCES)} (needs network), or your own .jsonl, .json, .parquet or .csv file as "
                     "data.path")


class TextDataConfig(BaseModel):
    """Which preference data to train and evaluate on."""

    model_config = ConfigDict(extra="forbid")
    name: str = "math-answers"  # a built-in builder, a hub dataset with a card (needs network), or a label for `path`
    path: FilePath | None = None  # a local JSONL of prompt/chosen/rejected rows; validated against `card`
    card: str | None = None  # card name or path for `path`; defaults to the card of `name`
    # settings of the builder named by `name` (rewardlab/data/math_answers.py, math_steps.py), typed when the
    # recipe is read: an unknown key is an error there, and --resolved shows every default
    builder: Any = None
    regenerate: bool = False  # ignore shipped/cached rows and sample again (slow)
    shifted: bool = True  # also evaluate on the builder's shifted split (test questions, another persona and temperature)
    max_train_pairs: int | None = None  # cap, for quick runs; None keeps all
    subset_seed: int | None = None  # with max_train_pairs: a random subset drawn with this seed instead of the first N
    label_flip_rate: float = Field(0.0, ge=0, le=0.5)  # swap chosen and rejected in this share of train pairs (a noisy annotator)
    label_flip_seed: int = 0
    max_eval_pairs: int | None = None
    max_eval_samples: int | None = None  # cap on labelled held-out samples scored for AUROC
    # external data (data.name hf:<id>, or data.path without data.card): see rewardlab/data/external.py
    config: str | None = None  # the Hugging Face dataset's configuration (subset) name
    revision: str | None = None  # a branch, tag or commit of the hub dataset
    split: str | None = None  # the training split (default: train)
    test_split: str | None = None  # the held-out split (default: test, test_prefs or validation, else test_fraction)
    test_fraction: float = Field(0.1, gt=0, lt=1)  # held out, seeded, when the source has no test split or split column
    split_seed: int = 0
    columns: dict[str, str] = {}  # rewardlab field -> your column, e.g. {prompt: question, chosen: good, rejected: bad}
    margin_from_scores: bool = False  # margin = score_chosen - score_rejected (UltraFeedback), for TRL's margin loss

    @model_validator(mode="after")
    def _typed_builder(self):
        unknown = sorted(set(self.columns) - {"prompt", "chosen", "rejected", "margin", "subset", "reference"})
        if unknown:
            raise DataError(f"data.columns: unknown field {', '.join(unknown)}; the fields are prompt, chosen, rejected, margin, "
                            "subset, reference (each mapped to your column's name)")
        own = self.name.startswith("hf:") or (self.path is not None and self.card in (None, CARD))  # read by external.py
        if self.columns and not own:
            raise DataError("data.columns: a column map applies to your own data (data.path, or data.name: hf:<id>); "
                            + (f"data.card {self.card!r} checks the file's rows as they are, under the card's own field names"
                               if self.path is not None else f"data.name {self.name!r} is a built-in dataset, whose fields "
                               "need no map"))
        known = (*registry.names("preferences"), *HUB_PREFERENCES)
        if self.path is None and not self.name.startswith("hf:") and self.name not in known:
            raise unknown_dataset(self.name)
        if self.path is None and self.name in registry.names("preferences"):
            self.builder = registry.typed(self.name, self.builder, "data.builder")
        elif self.builder:
            raise DataError(f"data.builder: only the built-in builders ({', '.join(registry.names('preferences'))}) take settings; "
                            f"data.name is {self.name!r}" + (" with data.path" if self.path else ""))
        return self


@dataclass
class PreferenceData:
    """Train/test preference pairs and, when the dataset has them, labelled test samples for AUROC."""

    name: str
    card: Card
    source: str
    train_pairs: list[dict]
    test_pairs: list[dict]
    test_samples: list[dict] = field(default_factory=list)
    train_samples: list[dict] = field(default_factory=list)
    shifted_pairs: list[dict] = field(default_factory=list)  # the same held-out questions, answered under another sampling
    shifted_samples: list[dict] = field(default_factory=list)


def _card_for(cfg_card: str | None, name: str) -> Card:
    """A card given as a path, else looked up by name in data_cards/."""
    if cfg_card and Path(cfg_card).is_file():
        return parse_card(cfg_card)
    return find_card(cfg_card or name)


def _split_hh(text: str) -> tuple[str, str]:
    cut = text.rfind("\n\nAssistant:")
    return text[:cut].strip(), text[cut + len("\n\nAssistant:") :].strip()


def _load_hub_preferences(name: str) -> tuple[list[dict], list[dict]]:
    """Anthropic/hh-rlhf from the hub (network needed): split the shared dialogue into prompt and answers."""
    import datasets

    try:
        ds = datasets.load_dataset(name)
    except Exception as exc:  # offline, or the hub refused: say so plainly
        raise DataError(f"{name}: could not load from the Hugging Face hub ({type(exc).__name__}: {exc}); this dataset needs network") from None

    def convert(split: str) -> list[dict]:
        out = []
        for row in ds[split]:
            prompt, chosen = _split_hh(row["chosen"])
            _, rejected = _split_hh(row["rejected"])
            out.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
        return out

    return convert("train"), convert("test")


def load_preferences(cfg: TextDataConfig) -> PreferenceData:
    """Load and validate preference data; pairs carry prompt/chosen/rejected (TRL's explicit-prompt format)."""
    if cfg.name.startswith("hf:") or (cfg.path is not None and cfg.card in (None, CARD)):  # your own data, normalised
        from rewardlab.data.external import load_external

        train, test, source = load_external(cfg)
        data = PreferenceData(cfg.name if cfg.path is None else Path(cfg.path).stem, find_card(CARD), source, train, test)
    elif cfg.path is not None:
        card = _card_for(cfg.card, cfg.name)
        rows = card.validate_rows(read_jsonl(cfg.path), "pairs" if "pairs" in card.configs() else None, source=cfg.path)
        train = [r for r in rows if r.get("split", "train") == "train"]
        test = [r for r in rows if r.get("split") == "test"]
        if not test:
            raise DataError(f"{cfg.path}: no row has split 'test'; held-out pairs are needed for evaluation")
        data = PreferenceData(cfg.name, card, str(cfg.path), train, test)
    elif cfg.name in registry.names("preferences"):
        module = math_builder(cfg.name)
        card = find_card(cfg.name)
        builder_cfg = registry.typed(cfg.name, cfg.builder, "data.builder")
        built = module.build(builder_cfg, regenerate=cfg.regenerate, shifted=cfg.shifted)
        samples = card.validate_rows(built["samples"] + built["shifted_samples"], "samples", source=f"{cfg.name} samples")
        pairs = card.validate_rows(built["pairs"] + built["shifted_pairs"], "pairs", source=f"{cfg.name} pairs")
        data = PreferenceData(
            cfg.name,
            card,
            f"rewardlab builder {cfg.name} (key {builder_cfg.key()})",
            [p for p in pairs if p["split"] == "train"],
            [p for p in pairs if p["split"] == "test"],
            test_samples=[s for s in samples if s["split"] == "test"],
            train_samples=[s for s in samples if s["split"] == "train"],
            shifted_pairs=[p for p in pairs if p["split"] == "shifted"],
            shifted_samples=[s for s in samples if s["split"] == "shifted"],
        )
    elif cfg.name in HUB_PREFERENCES:
        card = find_card(cfg.name)
        train, test = _load_hub_preferences(cfg.name)
        data = PreferenceData(cfg.name, card, f"hf://datasets/{cfg.name}", card.validate_rows(train), card.validate_rows(test))
    else:
        raise unknown_dataset(cfg.name)
    if cfg.max_train_pairs is not None:
        if cfg.subset_seed is not None and cfg.max_train_pairs < len(data.train_pairs):  # low-data curves: another draw per seed
            import random

            keep = sorted(random.Random(cfg.subset_seed).sample(range(len(data.train_pairs)), cfg.max_train_pairs))
            data.train_pairs = [data.train_pairs[i] for i in keep]
        else:
            data.train_pairs = data.train_pairs[: cfg.max_train_pairs]
    if cfg.max_eval_pairs is not None:
        data.test_pairs = data.test_pairs[: cfg.max_eval_pairs]
        data.shifted_pairs = data.shifted_pairs[: cfg.max_eval_pairs]
    if cfg.max_eval_samples is not None:
        data.test_samples = data.test_samples[: cfg.max_eval_samples]
        data.shifted_samples = data.shifted_samples[: cfg.max_eval_samples]
    if cfg.label_flip_rate:  # the same noisy oracle SPO's spo_oracle arm queries: wrong way round with this probability
        import random

        rng = random.Random(cfg.label_flip_seed)
        data.train_pairs = [{**p, "chosen": p["rejected"], "rejected": p["chosen"]} if rng.random() < cfg.label_flip_rate else p
                            for p in data.train_pairs]
    if not data.train_pairs:
        raise DataError(f"{data.source}: no training pairs")
    return data


def validate_file(card: Card | str, path: str | Path, config: str | None = None) -> str:
    """``rewardlab data validate --card CARD --file PATH``: the line to print when every row of the JSONL file fits
    the card, else one DataError listing every bad row by its line number (up to 20, and how many more), lines
    that are not JSON among them, so one broken line does not hide the rest.

    The preference-pairs card describes what your own preference data becomes, so its rows are checked by the
    code that ``rewardlab train`` (``data.path``) and ``rewardlab eval`` (``--data``) run on them
    (``external.check_rows``, ``normalise``): a row passes here iff they take it (TRL's implicit prompt, message
    lists, hh-rlhf transcripts, extra columns, the best-of-N layout for eval). Other cards check their schema."""
    from rewardlab.data.external import bad_rows, check_rows, detect_format
    from rewardlab.data.rows import read_jsonl_lines

    card = card if isinstance(card, Card) else _card_for(card, card)
    if config is not None and config not in card.features:
        raise DataError(f"{card.path.name}: no config '{config}'; this card's configs are: {', '.join(card.configs())}")
    used = config or card.configs()[0]
    numbered, not_json = read_jsonl_lines(path)
    rows = [row for _, row in numbered]
    fmt = detect_format(rows, {})
    if card.name == CARD:
        _, problems = check_rows(numbered, {}, fmt, str(path), flag=None)
        failed = {number for number, _ in problems}
        problems += [(number, f"field 'split': expected a split name (a string), found {row['split']!r:.40}")
                     for number, row in numbered if number not in failed and not isinstance(row.get("split", ""), str)]
    else:
        problems = card.row_problems(numbered, used)
    problems += not_json
    if len(problems) == 1:
        error = DataError(f"{path}: row {problems[0][0]}: {problems[0][1]}")
    elif problems:
        error = bad_rows(str(path), problems, f" against {card.path.name} (config {used})")
    elif not numbered:
        error = DataError(f"{path}: no rows (an empty file); expected rows with fields: {', '.join(card.features[used])}")
    else:
        error = None
    if error is not None:
        if config is None and len(card.configs()) > 1:
            raise DataError(f"{error}\n(checked against config {used}, the card's first; its configs: {', '.join(card.configs())}; "
                            "choose one with --config)")
        raise error
    others = [c for c in card.configs() if c != used]
    also = f"; the card's other configs: {', '.join(others)} (--config)" if others and config is None else ""
    line = f"{path}: {len(rows)} rows OK against {card.path.name} (config {used}{also})"
    if card.name != CARD:
        return line
    splits = Counter(str(row["split"]) if row.get("split") is not None else "no split" for row in rows)
    by_split = f"; split column: {', '.join(f'{k} {v}' for k, v in sorted(splits.items()))}" if set(splits) != {"no split"} else ""
    if fmt == "best-of-n":
        return (f"{line}, in the best-of-N layout (lists of answers), which rewardlab eval (--data) takes; rewardlab train "
                f"needs one chosen and one rejected answer per row{by_split}")
    return f"{line}, as rewardlab train (data.path) and rewardlab eval (--data) take them{by_split}"


PAIR_FIELDS = ("prompt", "chosen", "rejected")


def load_eval_pairs(path: str | Path, card: str | None = None) -> list[dict]:
    """Held-out pairs to evaluate a reward on, from your own JSONL: plain TRL rows (``prompt``, ``chosen``,
    ``rejected``; an optional ``reference`` for POLAR) need nothing else. With a ``split`` column, the ``test`` rows
    are used when there are any, else every row; no training rows are needed. With ``card``, rows are validated
    against it first. Every bad row is reported (up to 20) before anything is scored."""
    from rewardlab.data.cards import _check_value

    if card == CARD:  # the card of your own data: the rules eval and train apply, not a bare schema
        from rewardlab.data.external import load_eval_rows

        return load_eval_rows(str(path), fmt="pairs").rows
    rows = read_jsonl(path)
    if card is not None:
        card_ = _card_for(card, card)
        card_.validate_rows(rows, "pairs" if "pairs" in card_.configs() else None, source=path)
    if not rows:
        raise DataError(f"{path}: no rows (an empty file); expected JSON lines with {', '.join(PAIR_FIELDS)}")
    problems = []
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            problems.append(f"row {number}: expected an object, found {type(row).__name__}")
            continue
        for name in (*PAIR_FIELDS, "reference"):
            if name not in row:
                if name != "reference":
                    problems.append(f"row {number}: field '{name}' is missing (rows need {', '.join(PAIR_FIELDS)})")
                continue
            reason = _check_value(row[name], {"dtype": "chat"})
            if reason:
                problems.append(f"row {number}: field '{name}': {reason}")
    if problems:
        raise DataError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems[:20]))
    test = [r for r in rows if r.get("split") == "test"]
    return test or rows


class TransitionDataConfig(BaseModel):
    """Transitions with a reward target, for regression rewards."""

    model_config = ConfigDict(extra="forbid")
    name: str = "pendulum-random"
    builder: Any = None  # settings of the builder (rewardlab/data/transitions.py), typed when the recipe is read

    @model_validator(mode="after")
    def _typed_builder(self):
        self.builder = registry.get(self.name, "data.name", kind="transitions").typed(self.builder, "data.builder")
        return self


@dataclass
class TransitionData:
    name: str
    card: Card
    source: str
    train: list[dict]
    test: list[dict]


def load_transitions(cfg: TransitionDataConfig) -> TransitionData:
    builder = registry.get(cfg.name, "data.name", kind="transitions")
    card = builder.card()
    bcfg = builder.typed(cfg.builder, "data.builder")
    rows = card.validate_rows(builder.load_module().build(bcfg), source=cfg.name)
    return TransitionData(
        cfg.name,
        card,
        f"rewardlab builder {cfg.name} (seed {bcfg.seed})",
        [r for r in rows if r["split"] == "train"],
        [r for r in rows if r["split"] == "test"],
    )
