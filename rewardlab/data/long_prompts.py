"""long-prompts: preference pairs whose prompts are long next to their answers (multi-turn chats of a few hundred
tokens, one-sentence answers), the case where computing the prompt once per pair pays most.

Each conversation is a user logging supply orders with an assistant over several turns (quantity, item, shop,
delivery day, team, and some chatter); the last user turn asks how many of one item were ordered. The chosen
answer states the quantity from the conversation; the rejected one states another quantity that appears in the
same conversation (so only reading the context tells them apart). Rows are generated from the settings' seed
alone, deterministic and fast; the rows of the default settings ship in ``rewardlab/data/shipped/``, and a test
checks that they regenerate identically.
"""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import ConfigDict

from rewardlab.data.rows import settings_key

SHIPPED = Path(__file__).parent / "shipped" / "long_prompts.jsonl.gz"

ITEMS = ["pencils", "notebooks", "glue sticks", "rulers", "test tubes", "magnets", "batteries", "paper cups", "markers",
         "safety goggles", "extension cords", "folding tables", "poster boards", "scissors", "thermometers", "stopwatches"]
UNITS = ["boxes", "crates", "packs", "cartons"]
SHOPS = ["Harbor Supplies", "the Main Street store", "Office Depot North", "Greenfield Wholesale", "the campus shop", "Brightline"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
TEAMS = ["physics", "chemistry", "biology", "robotics", "art", "logistics"]
CHATTER = ["The hall opens at eight, so deliveries before noon are best.", "Parking behind the gym is limited that week.",
           "Ms. Rivera will sign for anything that arrives while I am out.", "We may move two stands closer to the stage.",
           "Remember that last year the projector cables went missing.", "The caretaker asked us to label every box clearly.",
           "If something comes damaged, we keep the receipt and call the shop.", "Volunteers arrive on the evening before."]


@dataclass(frozen=True)
class LongPromptsConfig:
    """How the conversations are drawn. Every field changes the rows."""

    __pydantic_config__ = ConfigDict(extra="forbid")
    n_train: int = 512
    n_test: int = 128
    orders: int = 4  # user turns logging an order, each acknowledged by the assistant
    seed: int = 0

    def key(self) -> str:
        return settings_key(self)


def _conversation(rng: random.Random, orders: int) -> tuple[list[dict], str, str, str]:
    items = rng.sample(ITEMS, orders)
    quantities = rng.sample(range(3, 60), orders)
    unit = rng.choice(UNITS)
    messages = [{"role": "user", "content": "I am organising the supplies for our school's science fair and want to keep a "
                 "log of every order with you. I will tell you each one; please confirm it back to me."}]
    messages.append({"role": "assistant", "content": "Of course. Tell me each order and I will confirm the details."})
    for item, quantity in zip(items, quantities):
        shop, day, team = rng.choice(SHOPS), rng.choice(DAYS), rng.choice(TEAMS)
        messages.append({"role": "user", "content": f"We ordered {quantity} {unit} of {item} from {shop}; they should arrive on "
                         f"{day} and go to the {team} team. {rng.choice(CHATTER)}"})
        messages.append({"role": "assistant", "content": f"Logged: {quantity} {unit} of {item} from {shop}, arriving {day}, "
                         f"for the {team} team."})
    asked = rng.randrange(orders)
    other = rng.choice([q for i, q in enumerate(quantities) if i != asked])
    messages.append({"role": "user", "content": f"Quick check before I call the shops: how many {unit} of {items[asked]} did we "
                     "order? Answer in one sentence."})
    right = f"We ordered {quantities[asked]} {unit} of {items[asked]}."
    wrong = f"We ordered {other} {unit} of {items[asked]}."
    return messages, right, wrong, items[asked]


def generate(cfg: LongPromptsConfig) -> dict[str, list[dict]]:
    rng = random.Random(cfg.seed)
    samples, pairs = [], []
    for qid in range(cfg.n_train + cfg.n_test):
        split = "train" if qid < cfg.n_train else "test"
        prompt, right, wrong, _ = _conversation(rng, cfg.orders)
        for answer, correct in ((right, True), (wrong, False)):
            samples.append({"qid": qid, "split": split, "prompt": prompt, "response": answer, "correct": correct})
        pairs.append({"qid": qid, "split": split, "prompt": prompt, "chosen": right, "rejected": wrong})
    return {"samples": samples, "pairs": pairs, "shifted_samples": [], "shifted_pairs": []}


def build(cfg: LongPromptsConfig = LongPromptsConfig(), regenerate: bool = False, shifted: bool = True) -> dict[str, list[dict]]:
    """The rows for ``cfg``: the shipped ones for the default settings (unless ``regenerate``), else generated.
    There is no shifted split (``shifted`` is accepted for the loaders' sake)."""
    if not regenerate and cfg == LongPromptsConfig() and SHIPPED.exists():
        with gzip.open(SHIPPED, "rt") as fh:
            shipped = json.loads(fh.read())
        return {"samples": shipped["samples"], "pairs": shipped["pairs"], "shifted_samples": [], "shifted_pairs": []}
    return generate(cfg)


def write_shipped(path: Path = SHIPPED) -> None:
    """Write the default settings' rows (``python -m rewardlab.data.long_prompts``)."""
    rows = generate(LongPromptsConfig())
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps({"settings": asdict(LongPromptsConfig()), "samples": rows["samples"], "pairs": rows["pairs"]}))


if __name__ == "__main__":
    write_shipped()
