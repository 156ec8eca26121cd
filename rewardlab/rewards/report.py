"""The measures of a reward on labelled comparisons, from scores alone (no model here): pairwise and best-of-N
accuracy per subset with bootstrap intervals, calibration of P(chosen > rejected), length bias, and the margins.

Every function takes the scores a reward gave; ``rewardlab eval`` computes them once and passes them here.

* Pairwise accuracy: chosen scored above rejected (a tie counts one half, as in ``evaluate.pairwise_accuracy``).
* Best-of-N accuracy in RewardBench 2's sense: a row with one chosen and several rejected answers is right when
  the chosen one scores highest of all, ``argmax([chosen] + rejected) == 0`` (RewardBench 2's
  ``reroll_and_score_dataset``, where ``np.argmax`` gives a tie to the first entry, the chosen one).
* Calibration: the Bradley-Terry probability p = sigmoid(r_chosen - r_rejected) against the label, each pair
  counted in both orders ((p, 1) and (1 - p, 0)) so that both classes are present; expected calibration error over
  equal-width bins, and the Brier score.
* Length bias: Spearman correlation of the reward with response length (characters), accuracy on the pairs whose
  chosen answer is the shorter and on those where it is the longer, and the length-only ranker on the same pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _chat_len(chat) -> int:
    return len(chat) if isinstance(chat, str) else sum(len(m["content"]) for m in chat)


def bootstrap_interval(outcomes: Sequence[float], n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of ``outcomes`` (rows resampled with replacement)."""
    values = np.asarray(outcomes, dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n, len(values)))].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def pairwise_outcomes(chosen: Sequence[float], rejected: Sequence[float]) -> np.ndarray:
    c, r = np.asarray(chosen, float), np.asarray(rejected, float)
    return (c > r) + 0.5 * (c == r)


def best_of_n_outcomes(chosen: Sequence[float], rejected: Sequence[Sequence[float]]) -> np.ndarray:
    """Per row, 1 when the chosen answer's score is the highest of the row (a tie goes to the chosen answer, as
    ``np.argmax`` gives it in RewardBench 2), else 0."""
    return np.asarray([float(np.argmax([c, *rs]) == 0) for c, rs in zip(chosen, rejected)])


def calibration(chosen: Sequence[float], rejected: Sequence[float], bins: int = 10) -> dict:
    """ECE and Brier score of p = sigmoid(r_c - r_r), each pair in both orders; plus the reliability diagram's
    points (per non-empty bin: mean predicted probability, observed frequency, count)."""
    margin = np.asarray(chosen, float) - np.asarray(rejected, float)
    p = 1 / (1 + np.exp(-margin))
    probs, labels = np.concatenate([p, 1 - p]), np.concatenate([np.ones_like(p), np.zeros_like(p)])
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(probs, edges[1:-1]), 0, bins - 1)
    ece, diagram = 0.0, []
    for b in range(bins):
        mask = index == b
        if mask.any():
            conf, freq = float(probs[mask].mean()), float(labels[mask].mean())
            ece += mask.mean() * abs(conf - freq)
            diagram.append({"predicted": conf, "observed": freq, "count": int(mask.sum())})
    return {"ece": float(ece), "brier": float(np.mean((probs - labels) ** 2)), "reliability": diagram}


def length_bias(pairs: Sequence[dict], chosen: Sequence[float], rejected: Sequence[float]) -> dict:
    """Spearman(reward, length) over every scored answer; accuracy where the chosen answer is shorter / longer; the
    length-only ranker (longer wins) on the same pairs."""
    from scipy.stats import spearmanr

    len_c = np.asarray([_chat_len(p["chosen"]) for p in pairs], float)
    len_r = np.asarray([_chat_len(p["rejected"]) for p in pairs], float)
    outcomes = pairwise_outcomes(chosen, rejected)
    lengths, scores = np.concatenate([len_c, len_r]), np.concatenate([np.asarray(chosen, float), np.asarray(rejected, float)])
    rho = spearmanr(scores, lengths).statistic if len(set(lengths)) > 1 and len(set(scores)) > 1 else float("nan")
    shorter, longer = len_c < len_r, len_c > len_r
    return {"length_spearman": float(rho),
            "accuracy_chosen_shorter": float(outcomes[shorter].mean()) if shorter.any() else float("nan"),
            "accuracy_chosen_longer": float(outcomes[longer].mean()) if longer.any() else float("nan"),
            "pairs_chosen_shorter": int(shorter.sum()), "pairs_chosen_longer": int(longer.sum()),
            "length_only_accuracy": float(pairwise_outcomes(len_c, len_r).mean())}


def per_subset(outcomes: np.ndarray, subsets: Sequence[str | None], seed: int = 0) -> dict[str, dict]:
    """name -> {accuracy, count, ci_low, ci_high} for each subset (rows without one are under "all" only)."""
    out = {}
    names = np.asarray([s if s is not None else "" for s in subsets])
    for name in sorted(set(names) - {""}):
        mine = outcomes[names == name]
        low, high = bootstrap_interval(mine, seed=seed)
        out[name] = {"accuracy": float(mine.mean()), "count": int(len(mine)), "ci_low": low, "ci_high": high}
    return out


def pairs_report(pairs: Sequence[dict], chosen: Sequence[float], rejected: Sequence[float], seed: int = 0) -> dict:
    """Every pairwise measure for scored pairs (``pairs`` carry chosen / rejected texts and an optional subset)."""
    outcomes = pairwise_outcomes(chosen, rejected)
    low, high = bootstrap_interval(outcomes, seed=seed)
    margins = np.asarray(chosen, float) - np.asarray(rejected, float)
    return {"pairwise_accuracy": float(outcomes.mean()), "pairwise_ci_low": low, "pairwise_ci_high": high, "n_pairs": len(pairs),
            "subsets": per_subset(outcomes, [p.get("subset") for p in pairs], seed),
            **{k: v for k, v in calibration(chosen, rejected).items()}, **length_bias(pairs, chosen, rejected),
            "margin_mean": float(margins.mean()), "margin_std": float(margins.std())}


def best_of_n_report(rows: Sequence[dict], chosen: Sequence[float], rejected: Sequence[Sequence[float]], seed: int = 0) -> dict:
    """Best-of-N accuracy overall and per subset, with bootstrap intervals."""
    outcomes = best_of_n_outcomes(chosen, rejected)
    low, high = bootstrap_interval(outcomes, seed=seed)
    return {"best_of_n_accuracy": float(outcomes.mean()), "best_of_n_ci_low": low, "best_of_n_ci_high": high, "n_rows": len(rows),
            "subsets": per_subset(outcomes, [r.get("subset") for r in rows], seed)}


def report_figures(chosen: Sequence[float], rejected: Sequence[float], cal: dict) -> dict:
    """The reliability diagram and the histogram of chosen - rejected margins, as matplotlib figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reliability, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfectly calibrated")
    ax.plot([d["predicted"] for d in cal["reliability"]], [d["observed"] for d in cal["reliability"]], "o-", label="reward")
    ax.set(xlabel="predicted P(first preferred)", ylabel="observed frequency", title=f"Reliability (ECE {cal['ece']:.3f})")
    ax.legend(loc="upper left")
    margins, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(np.asarray(chosen, float) - np.asarray(rejected, float), bins=40)
    ax.axvline(0, color="k", lw=1)
    ax.set(xlabel="reward(chosen) - reward(rejected)", ylabel="pairs", title="Margins (right of 0: ranked right)")
    return {"plots/reliability.png": reliability, "plots/margin_histogram.png": margins}
