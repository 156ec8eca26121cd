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


def _chat_text(chat) -> str:
    return chat if isinstance(chat, str) else "\n".join(m["content"] for m in chat)


def reference_baselines(rows: list[dict], good: str, bad: str) -> dict[str, float]:
    """Training-free rankers for rows with a ``reference`` (POLAR's triplets and reference pairs): how often the
    ``good`` candidate is closer to the reference than the ``bad`` one, by TF-IDF cosine (word unigrams and
    bigrams, fitted on the rows' own texts, no labels) and by length closeness (-|len(reference) - len(candidate)|,
    in characters). A discriminator is credited only with what it adds beyond the better of the two.
    Ties count one half, as in ``pairwise_accuracy``."""
    if not rows:
        return {"tfidf_cosine": float("nan"), "length_closeness": float("nan")}
    from sklearn.feature_extraction.text import TfidfVectorizer

    refs = [_chat_text(r["reference"]) for r in rows]
    goods = [_chat_text(r[good]) for r in rows]
    bads = [_chat_text(r[bad]) for r in rows]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(refs + goods + bads)
    ref_v, good_v, bad_v = (vectorizer.transform(t) for t in (refs, goods, bads))  # rows are L2-normalised
    cos_good = np.asarray(ref_v.multiply(good_v).sum(1)).ravel()
    cos_bad = np.asarray(ref_v.multiply(bad_v).sum(1)).ravel()
    len_ref = np.asarray([len(t) for t in refs], dtype=float)
    close_good = -np.abs(len_ref - [len(t) for t in goods])
    close_bad = -np.abs(len_ref - [len(t) for t in bads])
    return {"tfidf_cosine": pairwise_accuracy(cos_good, cos_bad), "length_closeness": pairwise_accuracy(close_good, close_bad)}


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

    def scores(self) -> np.ndarray:
        """Every reward given on the split: chosen and rejected answers, then the samples."""
        return np.concatenate([self.chosen, self.rejected, self.sample_scores])


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


def evaluate_splits(reward: TextReward, data) -> tuple[TextEval, TextEval | None, dict[str, float]]:
    """``evaluate_text_reward`` on the held-out test split and, when the data has one, on its shifted split (the
    same questions answered under another sampling). Returns both results and one metrics dict, the shifted
    split's keys prefixed ``shifted_``."""
    result = evaluate_text_reward(reward, data.test_pairs, data.test_samples)
    metrics = dict(result.metrics)
    shifted = None
    if getattr(data, "shifted_pairs", None) or getattr(data, "shifted_samples", None):
        shifted = evaluate_text_reward(reward, data.shifted_pairs, data.shifted_samples)
        metrics.update({f"shifted_{k}": v for k, v in shifted.metrics.items()})
    return result, shifted, metrics


def format_report(metrics: dict[str, float], split: str = "test") -> str:
    """A small table: the reward next to both length baselines, on the test split and (when measured) the shifted one."""
    rows = [("pairwise accuracy", "pair_accuracy", "length_longer_pair_accuracy", "length_shorter_pair_accuracy")]
    if "auroc" in metrics:
        rows.append(("AUROC vs correctness", "auroc", "length_longer_auroc", "length_shorter_auroc"))
    lines = [f"{'':30s} {'reward':>8s} {'longer':>8s} {'shorter':>8s}   (length-only baselines)"]
    for prefix, where in (("", split), ("shifted_", "shifted")):
        for label, k, lo, sh in rows:
            if prefix + k in metrics:
                lines.append(f"{label + ' (' + where + ')':30s} {metrics[prefix + k]:8.3f} {metrics[prefix + lo]:8.3f} "
                             f"{metrics[prefix + sh]:8.3f}")
    lines.append(f"margin over best length baseline (pairs, {split}): {metrics['margin_over_length']:+.3f}")
    if "shifted_margin_over_length" in metrics:
        lines.append(f"margin over best length baseline (pairs, shifted): {metrics['shifted_margin_over_length']:+.3f}")
    return "\n".join(lines)


def figures(result: TextEval, log_history: list[dict] | None = None, shifted: TextEval | None = None) -> dict:
    """Plots people would rather look at: ROC (reward vs length; on the shifted split too when given),
    chosen/rejected histogram, learning curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    figs = {}
    for where, res, path in (("held out", result, "plots/roc_curve.png"), ("shifted split", shifted, "plots/roc_curve_shifted.png")):
        if res is None or not len(res.sample_labels) or len(set(res.sample_labels.tolist())) != 2:
            continue
        fig, ax = plt.subplots(figsize=(5, 5))
        for name, scores in (("reward", res.sample_scores), ("longer is better", res.sample_lengths), ("shorter is better", -res.sample_lengths)):
            fpr, tpr, _ = roc_curve(res.sample_labels, scores)
            ax.plot(fpr, tpr, label=f"{name} (AUROC {auroc(res.sample_labels, scores):.3f})")
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"Reward vs correctness ({where})")
        ax.legend(loc="lower right")
        figs[path] = fig
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


def score_best_of_n(reward: TextReward, rows: list[dict]) -> tuple[list[list[float]], list[list[float]]]:
    """Scores of every answer of best-of-N rows (``chosen`` and ``rejected`` lists), each distinct answer once:
    per row, the list of its chosen answers' scores and the list of its rejected answers' scores."""
    items = [(r["prompt"], answer, r.get("reference")) for r in rows for answer in (*r["chosen"], *r["rejected"])]
    scores = score_unique(reward, items).tolist()
    chosen, rejected, at = [], [], 0
    for r in rows:
        n_c, n_r = len(r["chosen"]), len(r["rejected"])
        chosen.append(scores[at : at + n_c])
        rejected.append(scores[at + n_c : at + n_c + n_r])
        at += n_c + n_r
    return chosen, rejected
