"""The ``policy-trajectories`` builder: several distinct policies answer the same prompts (POLAR's pretraining data).

A *policy* is anything that maps a prompt to text. The default pool, all offline:

* the embedded SmolLM2 under different system prompts (personas) and decoding temperatures;
* a rule-based template writer;
* a word-bigram generator fitted on a small fixed corpus.

Any Hugging Face causal LM joins the pool by listing it as an ``lm`` policy. Prompts are of four kinds:
instructions ("Explain coffee to a beginner."), text prefixes ("Continue this text: Volcanoes have ..."),
arithmetic questions in the fine-tuning domain ("What is 7 * 8? Answer in one short sentence.", never one of
math-answers' test questions) and short word problems ("Mia has 3 apples and gets 4 more. ..."). Every policy
answers every prompt ``samples_per_prompt`` times, so two samples of one policy (reference and positive) and one of
another (negative) make a POLAR triplet. Prompts are split into train and test; some policies, and whole prompt
kinds (by default the word problems), are held out entirely, so discrimination is measured on both kinds of
novelty. A rewrite policy restyles another policy's own answers; the two share a ``family`` and are never each
other's negative (that would teach surface form: the content is the same).

The rows for the default settings ship with the package; other settings are generated and cached.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict

from rewardlab import backbones
from rewardlab.data.cards import DataError
from rewardlab.data.rows import read_jsonl, settings_key, write_jsonl

SHIPPED = Path(__file__).parent / "shipped" / "policy_trajectories.jsonl"

TOPICS = (
    "bicycles", "volcanoes", "coffee", "the moon", "honeybees", "chess", "rain", "libraries", "bread", "trains",
    "whales", "music", "gardens", "bridges", "maps", "glaciers", "tea", "clocks", "deserts", "kites",
    "the ocean", "robots", "paper", "mountains", "owls", "soap", "lighthouses", "rivers", "sleep", "windmills",
    "salt", "cities", "forests", "batteries", "penguins", "pottery", "thunder", "bees and flowers", "ice cream", "football",
    "dinosaurs", "rainbows", "printing", "cheese", "telescopes", "spiders", "snow", "markets", "the alphabet", "tides",
    "elephants", "candles", "submarines", "mushrooms", "stars", "farming", "umbrellas", "dolphins", "airplanes", "maths",
)
INSTRUCTIONS = ("Explain {t} to a beginner.", "Give one interesting fact about {t}.", "Why do people care about {t}?")
#: Short word problems (prompt kind ``reasoning``): one arithmetic step in words.
WORD_PROBLEMS = (
    "{name} has {a} {things} and gets {b} more. How many {things} does {name} have now?",
    "{name} had {a} {things} and gave {c} away. How many {things} are left?",
    "A box holds {d} rows of {e} {things}. How many {things} are in the box?",
    "{name} reads {d} pages a day for {e} days. How many pages is that?",
)
NAMES = ("Mia", "Tom", "Ana", "Ravi", "Lena", "Sam", "Yuki", "Omar")
THINGS = ("apples", "stickers", "marbles", "books", "shells", "cards", "pencils", "eggs")
PREFIXES = (
    "Continue this text: {T} have a long history, and",
    "Continue this text: Most people never think about {t}, but",
    "Continue this text: The first thing to know about {t} is that",
)
TEMPLATES = (
    "Great question about {t}! In short, {t} matter to many people. Let me know if you would like more details.",
    "Here is a quick summary: {t} are interesting, useful, and worth learning about. I hope this helps!",
    "Thanks for asking. {T} can be described in many ways, but the key idea is simple: {t} are part of everyday life.",
    "Sure! {T} are a fascinating subject. There is a lot to say, so feel free to ask a follow-up question.",
)


@dataclass(frozen=True)
class Policy:
    """One member of the pool. ``lm`` policies sample from ``model`` with the chat template and ``system``;
    ``rewrite`` policies apply a fixed ``transform`` (see REWRITES) to the samples of the ``base`` policy."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # a recipe's unknown key is an error, not ignored
    id: str
    kind: Literal["lm", "template", "bigram", "rewrite"] = "lm"
    model: str = backbones.SMOLLM2
    system: str | None = None
    temperature: float = 0.7
    top_p: float = 0.95
    base: str | None = None
    transform: str | None = None

    @property
    def family(self) -> str:
        """A rewrite belongs to its base policy's family: same content, another surface."""
        return self.base if self.kind == "rewrite" and self.base else self.id


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


# Deterministic rewrites of another policy's answers: same content, a distinct and consistent surface style.
REWRITES = {
    "upper": lambda text: text.upper(),
    "title_case": lambda text: " ".join(w[:1].upper() + w[1:] for w in text.split(" ")),
    "lower_no_punct": lambda text: re.sub(r"[^\w\s]", "", text.lower()),
    "bullets": lambda text: "\n".join(f"- {s}" for s in _sentences(text) or [text]),
}


DEFAULT_POLICIES: tuple[Policy, ...] = (
    Policy("smollm2-assistant"),
    Policy("smollm2-pirate", system="You are a pirate. Always talk like a pirate, with lots of 'arr' and 'matey'."),
    Policy("smollm2-terse", system="Answer in ten words or fewer. Never explain."),
    Policy("smollm2-teacher", system="You are a patient teacher. Explain step by step and give a simple example."),
    Policy("smollm2-hot", temperature=1.4, top_p=1.0),
    Policy("smollm2-poet", system="Always answer with a short rhyming poem."),
    Policy("template-bot", kind="template"),
    Policy("bigram", kind="bigram"),
    Policy("terse-upper", kind="rewrite", base="smollm2-terse", transform="upper"),
    Policy("teacher-title-case", kind="rewrite", base="smollm2-teacher", transform="title_case"),
    Policy("hot-lower-no-punct", kind="rewrite", base="smollm2-hot", transform="lower_no_punct"),
    Policy("assistant-bullets", kind="rewrite", base="smollm2-assistant", transform="bullets"),
)


@dataclass(frozen=True)
class PolicyPoolConfig:
    """Every field but ``batch_prompts`` changes the rows, so every other field is in the cache key."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # a recipe's unknown key is an error, not ignored
    policies: tuple[Policy, ...] = DEFAULT_POLICIES
    held_out_policies: tuple[str, ...] = ("smollm2-poet", "bigram", "assistant-bullets")
    n_topics: int = 40
    n_arithmetic: int = 40  # math-answers-style questions (none of its test questions): the fine-tuning domain
    n_reasoning: int = 20  # one-step word problems
    held_out_prompt_kinds: tuple[str, ...] = ("reasoning",)  # prompt kinds that appear only in evaluation
    samples_per_prompt: int = 2
    max_new_tokens: int = 32
    test_fraction: float = 0.25
    seed: int = 0
    batch_prompts: int = 16

    def __post_init__(self):
        if not all(isinstance(p, Policy) for p in self.policies):  # from YAML: a list of mappings
            try:
                object.__setattr__(self, "policies", tuple(p if isinstance(p, Policy) else Policy(**p) for p in self.policies))
            except TypeError as exc:
                raise DataError(f"policies: {exc}; a policy has id, kind (lm|template|bigram|rewrite), model, "
                                "system, temperature, top_p, base, transform") from None
        object.__setattr__(self, "held_out_policies", tuple(self.held_out_policies))
        object.__setattr__(self, "held_out_prompt_kinds", tuple(self.held_out_prompt_kinds))
        unknown_kinds = set(self.held_out_prompt_kinds) - set(PROMPT_KINDS)
        if unknown_kinds:
            raise DataError(f"held_out_prompt_kinds {sorted(unknown_kinds)}: the prompt kinds are {', '.join(PROMPT_KINDS)}")
        ids = [p.id for p in self.policies]
        if len(set(ids)) != len(ids):
            raise DataError(f"policy ids must be unique, found {ids}")
        unknown = set(self.held_out_policies) - set(ids)
        if unknown:
            raise DataError(f"held_out_policies {sorted(unknown)} are not in the pool {ids}")
        for p in self.policies:
            if p.kind == "rewrite" and (p.base not in ids or p.transform not in REWRITES):
                raise DataError(f"policy {p.id}: a rewrite needs a base policy in the pool (found {p.base!r}) and a transform "
                                f"in {sorted(REWRITES)} (found {p.transform!r})")
        if len(ids) - len(self.held_out_policies) < 2:
            raise DataError("training needs at least two policies that are not held out")
        if self.samples_per_prompt < 2:
            raise DataError("samples_per_prompt must be >= 2: a triplet needs two samples of the reference policy")

    def key(self) -> str:
        return settings_key(self, ignore=("batch_prompts",))


PROMPT_KINDS = ("instruction", "prefix", "arithmetic", "reasoning")


def _arithmetic_questions(n: int, seed: int) -> list[str]:
    """``n`` distinct math-answers-style questions, none of them one of math-answers' (default) test questions,
    so pretraining never sees a question the fine-tuned reward is evaluated on."""
    from rewardlab.data import math_answers

    default = math_answers.MathAnswersConfig()
    test_ids = math_answers.test_qids(default)
    held = {q["question"] for q in math_answers.make_questions(default.n_questions, default.seed) if q["qid"] in test_ids}
    out: list[str] = []
    for q in math_answers.make_questions(20 * n + 100, seed + 1000):
        if q["question"] not in held and q["question"] not in out:
            out.append(q["question"])
        if len(out) == n:
            break
    return out


def _word_problems(n: int, seed: int) -> list[str]:
    rng = random.Random(seed + 2000)
    out = []
    for i in range(n):
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        out.append(WORD_PROBLEMS[i % len(WORD_PROBLEMS)].format(name=rng.choice(NAMES), things=rng.choice(THINGS), a=a, b=b,
                                                                c=rng.randint(1, a), d=rng.randint(2, 9), e=rng.randint(2, 9)))
    return out


def make_prompts(n_topics: int, test_fraction: float, seed: int, n_arithmetic: int = 0, n_reasoning: int = 0,
                 held_out_kinds: tuple[str, ...] = ()) -> list[dict]:
    """One instruction and one prefix prompt per topic; topics (not prompts) are split, so test topics are unseen.
    Then ``n_arithmetic`` arithmetic questions and ``n_reasoning`` word problems, each split on its own (a seeded
    ``test_fraction``). Every prompt of a kind in ``held_out_kinds`` is a test prompt."""
    if not 1 <= n_topics <= len(TOPICS):
        raise ValueError(f"n_topics must be in 1..{len(TOPICS)}, found {n_topics}")
    rng = random.Random(seed)
    topics = list(TOPICS[:n_topics])
    test = set(rng.sample(topics, max(1, int(round(n_topics * test_fraction)))))
    out = []
    for i, t in enumerate(topics):
        split = "test" if t in test else "train"
        for kind, forms in (("instruction", INSTRUCTIONS), ("prefix", PREFIXES)):
            text = forms[i % len(forms)].format(t=t, T=t[:1].upper() + t[1:])
            out.append({"pid": len(out), "topic": t, "prompt_kind": kind, "prompt": text, "split": split})
    for kind, texts, topic in (("arithmetic", _arithmetic_questions(n_arithmetic, seed) if n_arithmetic else [], "this sum"),
                               ("reasoning", _word_problems(n_reasoning, seed) if n_reasoning else [], "this puzzle")):
        test_ids = set(random.Random(f"{seed}/{kind}").sample(range(len(texts)), round(len(texts) * test_fraction)))
        for j, text in enumerate(texts):
            split = "test" if kind in held_out_kinds or j in test_ids else "train"
            out.append({"pid": len(out), "topic": topic, "prompt_kind": kind, "prompt": text, "split": split})
    return out


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _template_answers(prompt: dict, n: int, rng: random.Random) -> list[str]:
    t = prompt["topic"]
    picks = rng.sample(TEMPLATES, n) if n <= len(TEMPLATES) else [rng.choice(TEMPLATES) for _ in range(n)]
    return [form.format(t=t, T=t[:1].upper() + t[1:]) for form in picks]


def _bigram_table() -> dict[str, list[str]]:
    """Word bigrams of a small fixed corpus: the templates and the shipped math-answers responses."""
    from rewardlab.data import math_answers

    corpus = [t.format(t="things", T="Things") for t in TEMPLATES]
    if math_answers.SHIPPED.exists():
        corpus += [r["response"] for r in read_jsonl(math_answers.SHIPPED)[:600]]
    table: dict[str, list[str]] = defaultdict(list)
    for line in corpus:
        words = line.split()
        for a, b in zip(words, words[1:]):
            table[a.lower()].append(b)
    return table


def _bigram_answers(prompt: dict, n: int, rng: random.Random, table: dict[str, list[str]], length: int = 28) -> list[str]:
    starts = sorted(table)
    out = []
    for _ in range(n):
        word = prompt["topic"].split()[-1].capitalize()
        words = [word]
        for _ in range(length - 1):
            word = rng.choice(table.get(word.lower()) or [rng.choice(starts)])
            words.append(word)
        out.append(" ".join(words))
    return out


def _lm_answers(policy: Policy, prompts: list[dict], cfg: PolicyPoolConfig, desc: str) -> list[list[str]]:
    """Sample ``samples_per_prompt`` answers per prompt from a causal LM (slow on CPU: ~0.5 s an answer)."""
    from tqdm.auto import tqdm

    tokenizer = backbones.load_tokenizer(policy.model)
    tokenizer.padding_side = "left"
    model = backbones.load_causal_lm(policy.model).eval()
    answers: list[list[str]] = []
    for start in tqdm(range(0, len(prompts), cfg.batch_prompts), desc=desc, unit="batch"):
        chunk = prompts[start : start + cfg.batch_prompts]
        texts = []
        for p in chunk:
            messages = ([{"role": "system", "content": policy.system}] if policy.system else []) + [
                {"role": "user", "content": p["prompt"]}
            ]
            texts.append(
                tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
                if tokenizer.chat_template
                else (f"{policy.system}\n" if policy.system else "") + p["prompt"] + "\n"
            )
        seed = int(hashlib.sha256(f"{cfg.seed}/{policy.id}/{start}".encode()).hexdigest()[:8], 16)
        decoded = backbones.sample_texts(model, tokenizer, texts, seed, cfg.samples_per_prompt, policy.temperature, policy.top_p,
                                         cfg.max_new_tokens)
        k = cfg.samples_per_prompt
        answers += [[_clean(t) for t in decoded[i * k : (i + 1) * k]] for i in range(len(chunk))]
    return answers


def generate(cfg: PolicyPoolConfig) -> list[dict]:
    """Every policy answers every prompt ``samples_per_prompt`` times. Rows: prompt, policy id, trajectory."""
    prompts = make_prompts(cfg.n_topics, cfg.test_fraction, cfg.seed, cfg.n_arithmetic, cfg.n_reasoning, cfg.held_out_prompt_kinds)
    held = set(cfg.held_out_policies)
    rows: list[dict] = []
    table = None
    done: dict[str, list[list[str]]] = {}
    # rewrites after everything else, so their base policy's answers exist
    for policy in sorted(cfg.policies, key=lambda p: p.kind == "rewrite"):
        rng = random.Random(f"{cfg.seed}/{policy.id}")
        if policy.kind == "rewrite":
            answers = [[REWRITES[policy.transform](t) for t in texts] for texts in done[policy.base]]
        elif policy.kind == "lm":
            answers = _lm_answers(policy, prompts, cfg, f"policy-trajectories: {policy.id}")
        elif policy.kind == "template":
            answers = [_template_answers(p, cfg.samples_per_prompt, rng) for p in prompts]
        else:
            table = table or _bigram_table()
            answers = [_bigram_answers(p, cfg.samples_per_prompt, rng, table) for p in prompts]
        done[policy.id] = answers
        for p, texts in zip(prompts, answers):
            for j, text in enumerate(texts):
                rows.append({
                    "pid": p["pid"], "split": p["split"], "prompt_kind": p["prompt_kind"], "prompt": p["prompt"],
                    "policy": policy.id, "family": policy.family, "policy_split": "held_out" if policy.id in held else "train",
                    "sample": j, "trajectory": text,
                })
    return rows


def cache_path(cfg: PolicyPoolConfig) -> Path:
    return backbones.cache_dir() / "datasets" / "policy-trajectories" / f"{cfg.key()}.jsonl"


def build(cfg: PolicyPoolConfig = PolicyPoolConfig(), regenerate: bool = False) -> list[dict]:
    """The trajectories, from the shipped rows, the cache, or a fresh generation (then cached)."""
    if not regenerate and cfg.key() == PolicyPoolConfig().key() and SHIPPED.exists():
        return read_jsonl(SHIPPED)
    if not regenerate and cache_path(cfg).exists():
        return read_jsonl(cache_path(cfg))
    rows = generate(cfg)
    write_jsonl(cache_path(cfg), rows)
    return rows


@dataclass
class Triplets:
    """POLAR triplets: (prompt, reference from policy A, positive from A, negative from policy B)."""

    train: list[dict] = field(default_factory=list)
    eval_prompts: list[dict] = field(default_factory=list)  # held-out prompts, training policies
    eval_policies: list[dict] = field(default_factory=list)  # held-out prompts, A is a held-out policy


def make_triplets(rows: list[dict], per_prompt: int = 4, seed: int = 0) -> Triplets:
    """POLAR triplets: reference and positive are A's two samples, negative is one of B's, same prompt.

    Training: ``per_prompt`` random draws of two different training policies A and B per training prompt, with a
    random choice of which of A's samples is the reference and which of B's is the negative. Evaluation (held-out
    prompts) enumerates every ordered pair instead of drawing, so the accuracies are not a handful of draws:
    ``eval_prompts`` every (A, B) of training policies, ``eval_policies`` every held-out A against every other B.
    Held-out policies appear only in ``eval_policies``. A and B are never of one family (a policy and its own
    restyling): such a pair differs only in surface form. The evaluation lists are shuffled (with ``seed``), so a
    prefix of them is a random subset."""
    rng = random.Random(seed)
    by_prompt: dict[int, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by_prompt[r["pid"]][r["policy"]].append(r)
    out = Triplets()
    for pid in sorted(by_prompt):
        policies = {k: sorted(v, key=lambda r: r["sample"]) for k, v in by_prompt[pid].items() if len(v) >= 2}
        if len(policies) < 2:
            continue
        first = next(iter(policies.values()))[0]
        train_ids = sorted(k for k, v in policies.items() if v[0]["policy_split"] == "train")
        held_ids = sorted(k for k, v in policies.items() if v[0]["policy_split"] == "held_out")
        family = {k: v[0].get("family") or k for k, v in policies.items()}

        def apart(a: str, b: str) -> bool:
            return a != b and family[a] != family[b]

        options = [(a, b) for a in train_ids for b in train_ids if apart(a, b)]

        def triplet(a: str, b: str, ref: int = 0, neg: int = 0) -> dict:
            return {
                "pid": pid, "prompt": first["prompt"], "prompt_kind": first["prompt_kind"], "policy_a": a, "policy_b": b,
                "reference": policies[a][ref]["trajectory"], "positive": policies[a][1 - ref]["trajectory"],
                "negative": policies[b][neg]["trajectory"],
            }

        if first["split"] == "train":
            for _ in range(per_prompt if options else 0):
                a, b = rng.choice(options)
                out.train.append(triplet(a, b, rng.randrange(2), rng.randrange(len(policies[b]))))
        else:
            out.eval_prompts += [triplet(a, b) for a, b in options]
            out.eval_policies += [triplet(a, b) for a in held_ids for b in policies if apart(a, b)]
    rng.shuffle(out.eval_prompts)
    rng.shuffle(out.eval_policies)
    return out
