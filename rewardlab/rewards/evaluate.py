"""Evaluation of a TextReward on held-out data, always next to length-only baselines.

On answers like math-answers, response length alone separates correct from incorrect better than chance, so a
reward that only learned length must be visible at a glance: every report carries ``length_longer_*`` and
``length_shorter_*`` on the same split, and ``margin_over_length`` (the reward's pairwise accuracy minus the best
length baseline).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from rewardlab.rewards.base import TextReward


def _chat_len(chat) -> int:
    return len(chat) if isinstance(chat, str) else sum(len(m["content"]) for m in chat)


def pairwise_accuracy(chosen: np.ndarray, rejected: np.ndarray) -> float:
    """Fraction of pairs ranked right; a tie counts one half (a constant reward scores 0.5, not 0)."""
    if len(chosen) == 0:
        return float("nan")
    return float(np.mean((chosen > rejected) + 0.5 * (chosen == rejected)))


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if len(set(labels.tolist())) < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores))


@dataclass
class TextEval:
    metrics: dict[str, float]
    chosen: np.ndarray
    rejected: np.ndarray
    sample_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sample_labels: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sample_lengths: np.ndarray = field(default_factory=lambda: np.zeros(0))


def score_unique(reward: TextReward, items: list[tuple], chunk: int = 64) -> np.ndarray:
    """Score (prompt, response, reference) triples, each distinct triple once, in chunks with a progress bar.

    Held-out pairs are usually built from the held-out samples, so most texts would otherwise be scored twice.
    """
    from tqdm.auto import tqdm

    keys = [json.dumps(item, sort_keys=True) for item in items]
    distinct = dict(zip(keys, items))  # one entry per distinct triple, in first-seen order
    unique = list(distinct.values())
    has_refs = any(item[2] is not None for item in unique)
    scores: list[float] = []
    for start in tqdm(range(0, len(unique), chunk), desc="eval: scoring", unit="chunk", leave=False):
        batch = unique[start : start + chunk]
        refs = [b[2] for b in batch] if has_refs else None
        scores += reward.score([b[0] for b in batch], [b[1] for b in batch], refs)
    by_key = dict(zip(distinct, scores))
    return np.asarray([by_key[k] for k in keys], dtype=float)


def evaluate_text_reward(reward: TextReward, pairs: list[dict], samples: list[dict] | None = None) -> TextEval:
    """Pairwise accuracy on ``pairs``; AUROC of reward against ``correct`` on ``samples``; length baselines on both."""
    samples = samples or []
    items = [(p["prompt"], p["chosen"], p.get("reference")) for p in pairs]
    items += [(p["prompt"], p["rejected"], p.get("reference")) for p in pairs]
    items += [(s["prompt"], s["response"], s.get("reference")) for s in samples]
    scores = score_unique(reward, items)
    n = len(pairs)
    chosen, rejected, sample_scores = scores[:n], scores[n : 2 * n], scores[2 * n :]
    len_c = np.asarray([_chat_len(p["chosen"]) for p in pairs], dtype=float)
    len_r = np.asarray([_chat_len(p["rejected"]) for p in pairs], dtype=float)
    metrics = {
        "pair_accuracy": pairwise_accuracy(chosen, rejected),
        "length_longer_pair_accuracy": pairwise_accuracy(len_c, len_r),
        "length_shorter_pair_accuracy": pairwise_accuracy(-len_c, -len_r),
        "n_pairs": float(len(pairs)),
    }
    metrics["margin_over_length"] = metrics["pair_accuracy"] - max(
        metrics["length_longer_pair_accuracy"], metrics["length_shorter_pair_accuracy"]
    )
    result = TextEval(metrics, chosen, rejected)
    if samples:
        labels = np.asarray([bool(s["correct"]) for s in samples], dtype=int)
        lengths = np.asarray([_chat_len(s["response"]) for s in samples], dtype=float)
        metrics["auroc"] = auroc(labels, sample_scores)
        metrics["length_longer_auroc"] = auroc(labels, lengths)
        metrics["length_shorter_auroc"] = auroc(labels, -lengths)
        metrics["n_samples"] = float(len(samples))
        metrics["auroc_margin_over_length"] = metrics["auroc"] - max(metrics["length_longer_auroc"], metrics["length_shorter_auroc"])
        result.sample_scores, result.sample_labels, result.sample_lengths = sample_scores, labels, lengths
    return result


def format_report(metrics: dict[str, float]) -> str:
    """A small table: the reward next to both length baselines."""
    rows = [("pairwise accuracy", "pair_accuracy", "length_longer_pair_accuracy", "length_shorter_pair_accuracy")]
    if "auroc" in metrics:
        rows.append(("AUROC vs correctness", "auroc", "length_longer_auroc", "length_shorter_auroc"))
    lines = [f"{'':24s} {'reward':>8s} {'longer':>8s} {'shorter':>8s}   (length-only baselines)"]
    for label, k, lo, sh in rows:
        lines.append(f"{label:24s} {metrics[k]:8.3f} {metrics[lo]:8.3f} {metrics[sh]:8.3f}")
    lines.append(f"margin over best length baseline (pairs): {metrics['margin_over_length']:+.3f}")
    return "\n".join(lines)


def figures(result: TextEval, log_history: list[dict] | None = None) -> dict:
    """Plots people would rather look at: ROC (reward vs length), chosen/rejected histogram, learning curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    figs = {}
    if len(result.sample_labels) and len(set(result.sample_labels.tolist())) == 2:
        fig, ax = plt.subplots(figsize=(5, 5))
        for name, scores in (("reward", result.sample_scores), ("longer is better", result.sample_lengths), ("shorter is better", -result.sample_lengths)):
            fpr, tpr, _ = roc_curve(result.sample_labels, scores)
            ax.plot(fpr, tpr, label=f"{name} (AUROC {auroc(result.sample_labels, scores):.3f})")
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="Reward vs correctness (held out)")
        ax.legend(loc="lower right")
        figs["plots/roc_curve.png"] = fig
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.histogram_bin_edges(np.concatenate([result.chosen, result.rejected]), bins=30)
    ax.hist(result.chosen, bins=bins, alpha=0.6, label="chosen")
    ax.hist(result.rejected, bins=bins, alpha=0.6, label="rejected")
    ax.set(xlabel="reward", ylabel="pairs", title=f"Held-out rewards (pair accuracy {result.metrics['pair_accuracy']:.3f})")
    ax.legend()
    figs["plots/reward_histogram.png"] = fig
    if log_history:
        curves = {k: [(h["step"], h[k]) for h in log_history if k in h] for k in ("loss", "accuracy", "margin")}
        curves = {k: v for k, v in curves.items() if v}
        if curves:
            fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3.5))
            for ax, (k, pts) in zip(np.atleast_1d(axes), curves.items()):
                ax.plot(*zip(*pts))
                ax.set(xlabel="step", title=f"train {k}")
            fig.tight_layout()
            figs["plots/learning_curves.png"] = fig
    return figs
