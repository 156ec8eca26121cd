"""The ``math-answers`` builder: arithmetic questions answered by a language model, each answer checked.

The embedded LM answers every question several times by sampling. An answer is correct when the last number
it states equals the true result. The builder emits the samples (for AUROC of reward against correctness) and
preference pairs in TRL's prompt/chosen/rejected format (for Bradley-Terry training). Questions, not samples,
are split into train and test, so no held-out question is ever seen in training.

The rows for the default settings ship with the package; any other setting is generated and cached.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from rewardlab import backbones
from rewardlab.data.loaders import read_jsonl, settings_key, write_jsonl

SHIPPED = Path(__file__).parent / "shipped" / "math_answers_samples.jsonl"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class MathAnswersConfig:
    """How the samples are generated. Every field changes the rows, so every field is in the cache key."""

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

    def key(self) -> str:
        # batching changes speed, not (intentionally) the rows; pairs are derived from samples
        return settings_key(self, ignore=("batch_questions", "max_pairs_per_question"))


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


def generate_samples(cfg: MathAnswersConfig) -> list[dict]:
    """Sample answers from the model (slow on CPU: about 0.3 s an answer on 2 cores)."""
    from tqdm.auto import tqdm

    tokenizer = backbones.load_tokenizer(cfg.model)
    tokenizer.padding_side = "left"
    model = backbones.load_causal_lm(cfg.model).eval()
    questions = make_questions(cfg.n_questions, cfg.seed)
    test_ids = set(random.Random(cfg.seed + 1).sample(range(cfg.n_questions), int(cfg.n_questions * cfg.test_fraction)))
    rows: list[dict] = []
    batches = range(0, len(questions), cfg.batch_questions)
    for start in tqdm(batches, desc="math-answers: sampling", unit="batch"):
        chunk = questions[start : start + cfg.batch_questions]
        texts = [
            tokenizer.apply_chat_template([{"role": "user", "content": q["question"]}], add_generation_prompt=True, tokenize=False)
            if tokenizer.chat_template
            else q["question"]
            for q in chunk
        ]
        decoded = backbones.sample_texts(model, tokenizer, texts, cfg.seed * 100003 + start, cfg.samples_per_question,
                                         cfg.temperature, cfg.top_p, cfg.max_new_tokens)
        for i, text in enumerate(decoded):
            q = chunk[i // cfg.samples_per_question]
            response = clean_response(text)
            stated = stated_number(response)
            rows.append(
                {
                    "qid": q["qid"],
                    "split": "test" if q["qid"] in test_ids else "train",
                    "prompt": q["question"],
                    "response": response,
                    "answer": q["answer"],
                    "stated": stated,
                    "correct": stated is not None and stated == q["answer"],
                }
            )
    return rows


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


def samples_path(cfg: MathAnswersConfig) -> Path:
    return backbones.cache_dir() / "datasets" / "math-answers" / f"{cfg.key()}.jsonl"


def build(cfg: MathAnswersConfig = MathAnswersConfig(), regenerate: bool = False) -> dict[str, list[dict]]:
    """Return ``{"samples": [...], "pairs": [...]}``, from the shipped rows, the cache, or a fresh generation."""
    if not regenerate and cfg.key() == MathAnswersConfig().key() and SHIPPED.exists():
        samples = read_jsonl(SHIPPED)
    elif not regenerate and samples_path(cfg).exists():
        samples = read_jsonl(samples_path(cfg))
    else:
        samples = generate_samples(cfg)
        write_jsonl(samples_path(cfg), samples)
    return {"samples": samples, "pairs": make_pairs(samples, cfg.max_pairs_per_question, cfg.seed)}


_QUESTION = re.compile(r"What is (-?\d+) ([-+*]) (-?\d+)\?")


def canonical_answer(question: str) -> str:
    """A verified correct answer written out ("7 * 8 = 56."), for questions this builder makes."""
    found = _QUESTION.search(question)
    if not found:
        raise ValueError(f"not a math-answers question: {question!r}")
    a, op, b = int(found.group(1)), found.group(2), int(found.group(3))
    return f"{a} {op} {b} = {dict(zip('+-*', (a + b, a - b, a * b)))[op]}."


def with_references(pairs: list[dict], samples: list[dict], seed: int = 0) -> list[dict]:
    """POLAR's fine-tuning rows {prompt, reference, chosen, rejected}: the reference is a verified correct answer to
    the same question: another correct sample of the model when there is one, else the written-out answer."""
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
        reference = rng.choice(others) if others else canonical_answer(p["prompt"])
        out.append({**p, "reference": reference})
    return out
