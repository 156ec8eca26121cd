"""The dataset registry: every built-in dataset once, by name, with its typed settings, its builder, its card
and what ``rewardlab data build`` prints about it. The loaders, the recipes (typed builder settings), the CLI and
its help all read this table; adding a dataset is one entry here, its builder module and its card.

A builder's settings are a frozen dataclass in its module (``__pydantic_config__`` forbids unknown keys), so a
recipe's ``data.builder`` / ``pool.builder`` / ``demos.builder`` is validated when the recipe is (``recipes
show`` catches a typo) and ``--resolved`` prints every default. Builder modules are imported only when their
dataset is named.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.data.cards import DataError, find_card


@dataclass(frozen=True)
class Export:
    """What a build yields for ``data build``: rows per output file (stem -> rows, with the card config that
    validates them), the summary lines, and files written beside the JSONL (name -> writer(path))."""

    files: dict[str, tuple[list[dict], str | None]]
    summary: list[str]
    extras: dict[str, Callable[[Path], None]] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Builder:
    name: str  # the dataset's name, which is also its card's
    module: str  # in rewardlab.data
    settings: str  # its settings dataclass
    kind: str  # preferences | pretraining | transitions | demonstrations | explanations
    summary: str  # one line, for --help
    export: Callable[[Any, Any, bool], Export]  # (builder module, settings, regenerate) -> Export

    def load_module(self):
        return importlib.import_module(f"rewardlab.data.{self.module}")

    def settings_class(self) -> type:
        return getattr(self.load_module(), self.settings)

    def defaults(self):
        return self.settings_class()()

    def typed(self, value, where: str):
        """``value`` (a mapping, or already the settings) as the settings dataclass; a DataError that names
        ``where``, the bad key and the settings there are otherwise."""
        cls = self.settings_class()
        if isinstance(value, cls):
            return value
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise DataError(f"{where}: expected a mapping of {self.name} settings, found {type(value).__name__}")
        from pydantic import TypeAdapter, ValidationError

        try:
            return TypeAdapter(cls).validate_python(value)
        except ValidationError as exc:
            fields = ", ".join(f.name for f in dataclasses.fields(cls))
            problems = []
            for err in exc.errors():
                key = ".".join(str(p) for p in err["loc"])
                if err["type"] == "unexpected_keyword_argument" and len(err["loc"]) == 1:
                    problems.append(f"{where}: unknown setting '{key}' of {self.name} (its settings: {fields})")
                elif err["type"] == "unexpected_keyword_argument":
                    problems.append(f"{where}: unknown key '{key}' (see rewardlab/data/{self.module}.py for the fields there)")
                else:
                    message = err["msg"].removeprefix("Value error, ")
                    problems.append(f"{where}{'.' + key if key else ''}: {message}")
            raise DataError("; ".join(problems)) from None

    def card(self):
        return find_card(self.name)


def _export_math(module, settings, regenerate: bool) -> Export:
    built = module.build(settings, regenerate=regenerate)
    summary = []
    for split, rows, pairs in (("train + test", built["samples"], built["pairs"]), ("shifted", built["shifted_samples"], built["shifted_pairs"])):
        if rows:
            summary.append(f"{len(rows)} samples ({sum(s['correct'] for s in rows) / len(rows):.1%} correct), {len(pairs)} pairs ({split})")
    files = {"samples": (built["samples"], "samples"), "pairs": (built["pairs"], "pairs")}
    if built["shifted_samples"]:
        files |= {"shifted_samples": (built["shifted_samples"], "samples"), "shifted_pairs": (built["shifted_pairs"], "pairs")}
    return Export(files, summary)


def _export_pool(module, settings, regenerate: bool) -> Export:
    rows = module.build(settings, regenerate=regenerate)
    per_policy = Counter(r["policy"] for r in rows)
    return Export({"trajectories": (rows, None)}, [f"{len(rows)} trajectories, {len({r['pid'] for r in rows})} prompts, "
                                                   f"{len(per_policy)} policies ({', '.join(per_policy)})"])


def _export_transitions(module, settings, regenerate: bool) -> Export:
    rows = module.build(settings)
    return Export({"transitions": (rows, None)}, [f"{len(rows)} transitions"])


def _export_demos(module, settings, regenerate: bool) -> Export:
    rows = module.rows_checked(module.build(settings, regenerate=regenerate), settings)
    demos = module.Demos.from_rows(rows, settings.task)
    line = (f"{settings.task}, {settings.algo}, key {settings.key()}: {len(rows)} transitions, {demos.n_episodes} expert episodes "
            f"({len(demos)} transitions), {len(demos.random_returns)} random episodes; mean return expert "
            f"{demos.expert_return:.1f}, random {demos.random_return:.1f}")
    return Export({"transitions": (rows, None)}, [line], {"demos.npz": demos.to_npz})


def _export_s2e(module, settings, regenerate: bool) -> Export:
    rows = module.build(settings)
    splits = Counter(r["split"] for r in rows)
    episodes = {split: len({r["episode"] for r in rows if r["split"] == split}) for split in splits}
    lines = [f"{settings.domain}: {len(rows)} rows from {settings.episodes} episodes; "
             + ", ".join(f"{s} {splits[s]} rows ({episodes[s]} episodes)" for s in ("train", "test") if s in splits),
             "most common explanations:"]
    lines += [f"  {count:6d}  {text}" for text, count in Counter(r["explanation"] for r in rows).most_common(5)]
    return Export({"rows": (rows, None)}, lines)


BUILDERS: dict[str, Builder] = {b.name: b for b in (
    Builder("math-answers", "math_answers", "MathAnswersConfig", "preferences",
            "SmolLM2-135M's answers to arithmetic questions, labelled by the exact answer (train/test/shifted)", _export_math),
    Builder("math-steps", "math_steps", "MathStepsConfig", "preferences",
            "multi-step arithmetic worked line by line, with the first wrong step (train/test/shifted)", _export_math),
    Builder("long-prompts", "long_prompts", "LongPromptsConfig", "preferences",
            "multi-turn chats of a few hundred tokens with one-sentence answers (train/test), for packing benchmarks", _export_math),
    Builder("policy-trajectories", "policy_pool", "PolicyPoolConfig", "pretraining",
            "answers from a pool of policies (system-prompt personas, sampling settings), POLAR's pretraining data", _export_pool),
    Builder("pendulum-random", "transitions", "PendulumRandomConfig", "transitions",
            "Pendulum-v1 transitions from a random policy with the true reward", _export_transitions),
    Builder("expert-demos", "expert_demos", "ExpertDemosConfig", "demonstrations",
            "an SB3 expert's and a random policy's episodes on a gymnasium task, for GAIL", _export_demos),
    Builder("s2e-explanations", "s2e_dataset", "S2EDatasetConfig", "explanations",
            "rule-labelled (state, action, next state, concept explanation) rows from Connect 4 or Lunar Lander", _export_s2e),
)}


def get(name: str, where: str = "data.name", kind: str | None = None) -> Builder:
    """The registered builder ``name`` (of ``kind``, when given); a DataError listing the names otherwise."""
    builder = BUILDERS.get(name)
    if builder is None or (kind is not None and builder.kind != kind):
        raise DataError(f"{where}: unknown {kind + ' ' if kind else ''}dataset '{name}'; the built-in ones are: {', '.join(names(kind))}")
    return builder


def names(kind: str | None = None) -> list[str]:
    return [n for n, b in BUILDERS.items() if kind is None or b.kind == kind]


def typed(name: str, value, where: str):
    """Shorthand for ``get(name).typed(value, where)``: the typed settings of a registered builder."""
    return get(name).typed(value, where)


def options_help() -> str:
    """Every builder's settings with their defaults, for ``data build --help``."""
    lines = ["builders and their --option KEY=VALUE settings (defaults):"]
    for name, builder in BUILDERS.items():
        defaults = builder.defaults()

        def shown(f):
            value = getattr(defaults, f.name)
            text = repr(value)
            return f"{f.name}={text}" if len(text) <= 60 else f"{f.name}=<{len(value)} {type(value).__name__} items, see the card>"

        lines.append(f"  {name}: " + ", ".join(shown(f) for f in dataclasses.fields(defaults)) + f"\n      ({builder.summary})")
    return "\n".join(lines)
