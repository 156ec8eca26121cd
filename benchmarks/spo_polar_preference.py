"""Does SPO's POLAR preference (each completion as the other's reference) reward quality, or similarity?

SPO with ``preference: polar`` sets P(i > j) = sigmoid(R(i | ref j) - R(j | ref i)) inside a group of one prompt's
completions, with a POLAR reward R. A POLAR reward measures closeness to its reference, so this win rate may only
say which completion is most like the others. Measured on math-answers' held-out questions, grouping each
question's 6 sampled answers as a GRPO group would, with a fine-tuned POLAR reward:

  spo_polar_win_rate       the win rate SPO would train on (rlhf.rewards.WinRateReward, preference polar)
  polar_verified_reference R(answer | the written-out correct answer): POLAR used as its paper uses it
  group_similarity         mean TF-IDF cosine of an answer to the other answers of its group (training-free)
  shorter_is_better        -length

Each is scored by AUROC against correctness over all samples, and by how often the group's top-scored answer is
correct (against a random pick). Writes benchmarks/results/spo_polar_preference.json.

Run:  python benchmarks/spo_polar_preference.py --model /path/to/polar/reward [--questions 120]
      (a POLAR reward folder or an MLflow URI; about 6 minutes on 2 CPU cores for 120 questions)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "spo_polar_preference.json"


def main() -> int:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from rewardlab import rewards
    from rewardlab.data import TextDataConfig, load_preferences
    from rewardlab.data.math_answers import canonical_answer
    from rewardlab.rewards.evaluate import auroc
    from rewardlab.rlhf.rewards import WinRateReward

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a POLAR reward folder or MLflow URI")
    ap.add_argument("--questions", type=int, default=120)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    data = load_preferences(TextDataConfig(shifted=False))
    groups: dict[int, list[dict]] = {}
    for s in data.test_samples:
        groups.setdefault(s["qid"], []).append(s)
    chosen = [g for _, g in sorted(groups.items())][: args.questions]
    size = len(chosen[0])
    samples = [s for g in chosen for s in g]
    prompts, answers = [s["prompt"] for s in samples], [s["response"] for s in samples]
    labels = np.asarray([s["correct"] for s in samples], dtype=int)
    reward = rewards.load(args.model)
    win = np.asarray(WinRateReward(reward, size, preference="polar")(prompts, answers))
    verified = np.asarray(reward.score(prompts, answers, [canonical_answer(p) for p in prompts]))
    similarity = []
    for g in chosen:
        texts = [s["response"] for s in g]
        v = TfidfVectorizer().fit_transform(texts)
        sims = (v @ v.T).toarray()
        similarity += [(sims[i].sum() - sims[i, i]) / (len(texts) - 1) for i in range(len(texts))]
    scores = {"spo_polar_win_rate": win, "polar_verified_reference": verified, "group_similarity": np.asarray(similarity),
              "shorter_is_better": -np.asarray([len(a) for a in answers], dtype=float)}
    result = {"model": args.model, "questions": len(chosen), "group_size": size, "share_correct": float(labels.mean())}
    for name, values in scores.items():
        top = [labels[k * size + int(np.argmax(values[k * size : (k + 1) * size]))] for k in range(len(chosen))]
        result[name] = {"auroc": auroc(labels, values), "top_of_group_correct": float(np.mean(top)),
                        "corr_with_group_similarity": float(np.corrcoef(values, scores["group_similarity"])[0, 1])}
    result["random_pick_correct"] = float(labels.mean())
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
