"""The ``math-answers`` builder: arithmetic questions answered by a language model, each answer checked.

The embedded LM answers every question several times by sampling. An answer is correct when the last number
it states equals the true result. The builder emits the samples (for AUROC of reward against correctness) and
preference pairs in TRL's prompt/chosen/rejected format (for Bradley-Terry training). Questions, not samples,
are split into train and test, so no held-out question is ever seen in training.

A third split, ``shifted``, answers the *test* questions again under another sampling: a system prompt (a
persona) and a higher temperature. A reward that learned the training answers' surface form rather than their
correctness loses accuracy there; every text evaluation reports it beside the in-distribution test split.

The rows for the default settings ship with the package; any other setting is generated and cached.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import ConfigDict

from rewardlab import backbones
from rewardlab.data.rows import read_jsonl, settings_key, write_jsonl

SHIPPED = Path(__file__).parent / "shipped" / "math_answers_samples.jsonl"
SHIPPED_SHIFTED = Path(__file__).parent / "shipped" / "math_answers_shifted.jsonl"
#: The persona of the shifted split: another register than the plain assistant the training answers came from.
SHIFTED_SYSTEM = "You are a cheerful maths tutor for children. Reply warmly, in one sentence."
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class MathAnswersConfig:
    """How the samples are generated. Every field changes the rows, so every field is in the cache key."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # a recipe's unknown key is an error, not ignored
    model: str = backbones.SMOLLM2
    n_questions: int = 480
    samples_per_question: int = 6
    max_new_tokens: int = 32
    temperature: float = 0.7
    top_p: float = 0.95
    test_fraction: float = 0.25
    seed: int = 0
    batch_questions: int = 16
    max_pairs_per_question: int = 4
    # the shifted split: the test questions answered again with this system prompt and sampling
    shifted_system: str | None = SHIFTED_SYSTEM
    shifted_temperature: float = 1.0
    shifted_top_p: float = 1.0

    def key(self) -> str:
        # batching changes speed, not (intentionally) the rows; pairs are derived from samples; the shifted
        # settings change only the shifted rows, which have their own key
        return settings_key(self, ignore=("batch_questions", "max_pairs_per_question", *SHIFT_FIELDS))

    def shifted_key(self) -> str:
        return settings_key(self, ignore=("batch_questions", "max_pairs_per_question"))


SHIFT_FIELDS = ("shifted_system", "shifted_temperature", "shifted_top_p")


def make_questions(n: int, seed: int) -> list[dict]:
    """Deterministic small-number questions: addition and subtraction up to 20, times tables up to 9."""
    rng = random.Random(seed)
    out = []
    for qid in range(n):
        op = rng.choice(["+", "-", "*"])
        if op == "*":
            a, b = rng.randint(2, 9), rng.randint(2, 9)
        else:
            a, b = rng.randint(1, 20), rng.randint(1, 20)
        answer = {"+": a + b, "-": a - b, "*": a * b}[op]
        out.append({"qid": qid, "question": f"What is {a} {op} {b}? Answer in one short sentence.", "answer": answer})
    return out


def stated_number(response: str) -> float | None:
    """The last number a response states, or None when it states none."""
    found = _NUMBER.findall(response.replace(",", ""))
    return float(found[-1]) if found else None


def clean_response(text: str) -> str:
    """Keep the first non-empty line: the model's one-sentence answer, without its rambling afterwards."""
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def chat_prompts(tokenizer, questions: list[dict], system: str | None) -> list[str]:
    """Each question in the model's chat template (with ``system`` when given), followed by the question's
    ``prefix`` when it has one: the start of the answer the model is made to continue."""
    texts = []
    for q in questions:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": q["question"]}]
        text = (tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) if tokenizer.chat_template
                else (f"{system}\n" if system else "") + q["question"] + "\n")
        texts.append(text + q.get("prefix", ""))
    return texts


def sample_rows(cfg, questions: list[dict], split_of, finish, *, system: str | None, temperature: float, top_p: float,
                seed: int, desc: str) -> list[dict]:
    """``cfg.samples_per_question`` sampled answers per question, batch by batch (``torch.manual_seed`` set per
    batch from ``seed``). ``finish(question, raw text)`` turns a raw continuation into the row's task fields
    (response, stated, correct, ...)."""
    from tqdm.auto import tqdm

    tokenizer = backbones.load_tokenizer(cfg.model)
    tokenizer.padding_side = "left"
    model = backbones.load_causal_lm(cfg.model).eval()
    rows: list[dict] = []
    for start in tqdm(range(0, len(questions), cfg.batch_questions), desc=desc, unit="batch"):
        chunk = questions[start : start + cfg.batch_questions]
        decoded = backbones.sample_texts(model, tokenizer, chat_prompts(tokenizer, chunk, system), seed * 100003 + start,
                                         cfg.samples_per_question, temperature, cfg.top_p if top_p is None else top_p,
                                         cfg.max_new_tokens)
        for i, text in enumerate(decoded):
            q = chunk[i // cfg.samples_per_question]
            rows.append({"qid": q["qid"], "split": split_of(q["qid"]), "prompt": q["question"], **finish(q, text)})
    return rows


def test_qids(cfg) -> set[int]:
    """The held-out questions: a seeded draw of ``test_fraction`` of them, separate from the questions' own draw."""
    return set(random.Random(cfg.seed + 1).sample(range(cfg.n_questions), int(cfg.n_questions * cfg.test_fraction)))


#: The shifted split samples from its own seed stream, so its answers are not the test answers re-drawn.
SHIFTED_SEED_OFFSET = 7919


def _finish(q: dict, text: str) -> dict:
    response = clean_response(text)
    stated = stated_number(response)
    return {"response": response, "answer": q["answer"], "stated": stated, "correct": stated is not None and stated == q["answer"]}


class MathTask:
    """What a math builder is made of: its name, settings class, questions, how a raw continuation becomes a row,
    and its shipped files. math-answers and math-steps differ only in these; sampling, splits, caching and pairing
    are shared."""

    def __init__(self, name: str, settings: type, questions, finish, shipped: Path, shipped_shifted: Path):
        self.name, self.settings, self.questions, self.finish = name, settings, questions, finish
        self.shipped, self.shipped_shifted = shipped, shipped_shifted

    def generate(self, cfg, shifted: bool = False) -> list[dict]:
        """Sample the train/test rows, or (``shifted``) the test questions again under the shifted persona and
        sampling, from their own seed stream (slow on CPU: about 0.3 s an answer on 2 cores)."""
        test_ids = test_qids(cfg)
        questions = self.questions(cfg.n_questions, cfg.seed)
        if shifted:
            return sample_rows(cfg, [q for q in questions if q["qid"] in test_ids], lambda qid: "shifted", self.finish,
                               system=cfg.shifted_system, temperature=cfg.shifted_temperature, top_p=cfg.shifted_top_p,
                               seed=cfg.seed + SHIFTED_SEED_OFFSET, desc=f"{self.name}: shifted split")
        return sample_rows(cfg, questions, lambda qid: "test" if qid in test_ids else "train", self.finish, system=None,
                           temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed, desc=f"{self.name}: sampling")

    def path(self, cfg, shifted: bool = False) -> Path:
        name = f"{cfg.shifted_key()}-shifted" if shifted else cfg.key()
        return backbones.cache_dir() / "datasets" / self.name / f"{name}.jsonl"

    def build(self, cfg, regenerate: bool = False, shifted: bool = True) -> dict[str, list[dict]]:
        """``{"samples", "pairs", "shifted_samples", "shifted_pairs"}``, each from the shipped rows (default
        settings), the cache, or a fresh generation (then cached). ``shifted=False`` samples nothing for the
        shifted split and leaves its lists empty."""
        default = self.settings()
        samples = cached(self.path(cfg), self.shipped, cfg.key() == default.key(), regenerate, lambda: self.generate(cfg))
        out = {"samples": samples, "pairs": make_pairs(samples, cfg.max_pairs_per_question, cfg.seed), "shifted_samples": [],
               "shifted_pairs": []}
        if shifted:
            rows = cached(self.path(cfg, True), self.shipped_shifted, cfg.shifted_key() == default.shifted_key(), regenerate,
                          lambda: self.generate(cfg, shifted=True))
            out["shifted_samples"], out["shifted_pairs"] = rows, make_pairs(rows, cfg.max_pairs_per_question, cfg.seed)
        return out


def make_pairs(samples: list[dict], max_pairs_per_question: int, seed: int) -> list[dict]:
    """Pair correct with incorrect answers to the same question (distinct texts only), in TRL's format."""
    rng = random.Random(seed)
    by_q: dict[int, list[dict]] = {}
    for row in samples:
        by_q.setdefault(row["qid"], []).append(row)
    pairs = []
    for qid in sorted(by_q):
        rows = by_q[qid]
        good = list(dict.fromkeys(r["response"] for r in rows if r["correct"]))
        bad = list(dict.fromkeys(r["response"] for r in rows if not r["correct"]))
        combos = [(g, b) for g in good for b in bad]
        rng.shuffle(combos)
        for chosen, rejected in combos[:max_pairs_per_question]:
            pairs.append({"qid": qid, "split": rows[0]["split"], "prompt": rows[0]["prompt"], "chosen": chosen, "rejected": rejected})
    return pairs


def cached(path: Path, shipped: Path, is_default: bool, regenerate: bool, generate) -> list[dict]:
    """Rows from the shipped file (default settings), else the cache, else ``generate()`` (then cached)."""
    if not regenerate and is_default and shipped.exists():
        return read_jsonl(shipped)
    if not regenerate and path.exists():
        return read_jsonl(path)
    rows = generate()
    write_jsonl(path, rows)
    return rows


TASK = MathTask("math-answers", MathAnswersConfig, make_questions, _finish, SHIPPED, SHIPPED_SHIFTED)


def generate_samples(cfg: MathAnswersConfig) -> list[dict]:
    return TASK.generate(cfg)


def build(cfg: MathAnswersConfig = MathAnswersConfig(), regenerate: bool = False, shifted: bool = True) -> dict[str, list[dict]]:
    """The rows (see ``MathTask.build``)."""
    return TASK.build(cfg, regenerate, shifted)


_QUESTION = re.compile(r"What is (-?\d+) ([-+*]) (-?\d+)\?")


def canonical_answer(question: str) -> str:
    """A verified correct answer written out ("7 * 8 = 56."), for questions this builder makes."""
    found = _QUESTION.search(question)
    if not found:
        raise ValueError(f"not a math-answers question: {question!r}")
    a, op, b = int(found.group(1)), found.group(2), int(found.group(3))
    return f"{a} {op} {b} = {dict(zip('+-*', (a + b, a - b, a * b)))[op]}."


def with_references(pairs: list[dict], samples: list[dict], seed: int = 0, canonical=canonical_answer) -> list[dict]:
    """POLAR's fine-tuning rows {prompt, reference, chosen, rejected}: the reference is a verified correct answer to
    the same question: another correct sample of the model when there is one, else the written-out answer
    (``canonical(question)``)."""
    rng = random.Random(seed)
    correct: dict[int, list[str]] = {}
    for s in samples:
        if s["correct"]:
            correct.setdefault(s["qid"], [])
            if s["response"] not in correct[s["qid"]]:
                correct[s["qid"]].append(s["response"])
    out = []
    for p in pairs:
        others = [r for r in correct.get(p["qid"], []) if r != p["chosen"]]
        reference = rng.choice(others) if others else canonical(p["prompt"])
        out.append({**p, "reference": reference})
    return out
