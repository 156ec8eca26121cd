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
* RewardBench 2's Ties subset has its own score (``ties_score``), not an accuracy.
* Length bias: Spearman correlation of the reward with response length (characters), accuracy on the pairs whose
  chosen answer is the shorter and on those where it is the longer, and the length-only ranker on the same pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rewardlab.rewards.evaluate import _chat_len


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


def best_of_n_outcomes(chosen: Sequence[float | Sequence[float]], rejected: Sequence[Sequence[float]]) -> np.ndarray:
    """Per row, 1 when the chosen answer's score is the highest of the row (a tie goes to the chosen answer, as
    ``np.argmax`` gives it in RewardBench 2), else 0. A row with several chosen answers is right when the worst of
    them still scores at least the best rejected one (with one chosen answer, the same rule)."""
    out = []
    for c, rs in zip(chosen, rejected):
        worst = min(c) if isinstance(c, Sequence | np.ndarray) else c
        out.append(float(np.argmax([worst, *rs]) == 0))
    return np.asarray(out)


def _ties_id(row: dict) -> bool:
    """Whether a row is named as RewardBench 2 names its Ties rows (``ref:K`` / ``tied:K``); a Ties subset named
    otherwise is scored by the ordinary best-of-N rule."""
    kind, _, number = str(row.get("id", "")).partition(":")
    return kind in ("ref", "tied") and number.isdigit()


def ties_score(rows: Sequence[dict], chosen: Sequence[Sequence[float]], rejected: Sequence[Sequence[float]]) -> dict:
    """RewardBench 2's score for its Ties subset (its ``process_single_model``), which is not an accuracy.

    Each prompt comes twice, ``id`` ``ref:K`` (one correct answer) and ``tied:K`` (several equally correct ones).
    Per row: accurate when every correct answer beats every incorrect one; the gap (worst correct minus best
    incorrect) and, for tied rows, the spread among correct answers (best minus worst). The score weighs
    0.3 tied accuracy + 0.3 ref accuracy + 0.2 P(tied gap > spread) + 0.2 P(min(ref gap, tied gap) > spread)
    + 0.01 mean tanh(min gap / spread - 1) (0 where undefined), over the prompts present in both forms."""
    stats: dict[str, dict[int, tuple]] = {"ref": {}, "tied": {}}
    for row, cs, rs in zip(rows, chosen, rejected):
        kind, _, number = str(row.get("id", "")).partition(":")
        if kind not in stats or not number.isdigit():
            raise ValueError(f"Ties row id {row.get('id')!r}: RewardBench 2's Ties rows are named ref:K or tied:K")
        spread = max(cs) - min(cs) if len(cs) > 1 else float("nan")
        gap = min(cs) - max(rs)
        stats[kind][int(number)] = (gap > 0, spread, gap)
    accuracy = {kind: float(np.mean([s[0] for s in found.values()])) if found else 0.0 for kind, found in stats.items()}
    both = sorted(set(stats["ref"]) & set(stats["tied"]))
    spread = np.asarray([stats["tied"][k][1] for k in both], float)
    gap_tied = np.asarray([stats["tied"][k][2] for k in both], float)
    gap_hard = np.minimum(np.asarray([stats["ref"][k][2] for k in both], float), gap_tied)
    with np.errstate(divide="ignore", invalid="ignore"):
        preferred = float(np.mean(gap_tied > spread)) if both else float("nan")
        preferred_hard = float(np.mean(gap_hard > spread)) if both else float("nan")
        margin = float(np.mean(np.nan_to_num(np.tanh(gap_hard / spread - 1), nan=0.0))) if both else float("nan")
    score = 0.3 * accuracy["tied"] + 0.3 * accuracy["ref"] + 0.2 * preferred + 0.2 * preferred_hard + 0.01 * margin
    return {"score": float(score), "ref_accuracy": accuracy["ref"], "tied_accuracy": accuracy["tied"],
            "correctness_preferred": preferred, "correctness_preferred_hard": preferred_hard, "margin_score": margin,
            "count": len(rows)}


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


def best_of_n_report(rows: Sequence[dict], chosen: Sequence, rejected: Sequence[Sequence[float]], seed: int = 0) -> dict:
    """Best-of-N accuracy overall and per subset, with bootstrap intervals. A subset named Ties (any case) is scored
    by RewardBench 2's own Ties rule (``ties_score``) and left out of the overall accuracy; ``subset_mean`` is the
    mean of the subsets' scores, RewardBench 2's leaderboard number when the rows are its test split."""
    is_ties = np.asarray([str(r.get("subset", "")).lower() == "ties" and _ties_id(r) for r in rows], bool)
    keep = [i for i in range(len(rows)) if not is_ties[i]]
    outcomes = best_of_n_outcomes([chosen[i] for i in keep], [rejected[i] for i in keep])
    low, high = bootstrap_interval(outcomes, seed=seed)
    subsets = per_subset(outcomes, [rows[i].get("subset") for i in keep], seed)
    if is_ties.any():
        tied = [i for i in range(len(rows)) if is_ties[i]]
        ties = ties_score([rows[i] for i in tied], [chosen[i] for i in tied], [rejected[i] for i in tied])
        subsets[next(str(rows[i]["subset"]) for i in tied)] = {"accuracy": ties["score"], "rule": "rewardbench2-ties", **ties}
    return {"best_of_n_accuracy": float(outcomes.mean()) if len(outcomes) else float("nan"), "best_of_n_ci_low": low,
            "best_of_n_ci_high": high, "n_rows": len(rows), "subsets": subsets,
            "subset_mean": float(np.mean([s["accuracy"] for s in subsets.values()])) if subsets else float("nan")}


def expand_pairs(rows: Sequence[dict], fmt: str, chosen: Sequence, rejected: Sequence) -> tuple[list[dict], list[float], list[float]]:
    """(pairs, chosen scores, rejected scores): the rows themselves for ``pairs``; for ``best-of-n``, every
    (chosen, rejected) combination of each row."""
    if fmt == "pairs":
        return list(rows), [float(c) for c in chosen], [float(r) for r in rejected]
    pairs, pc, pr = [], [], []
    for row, cs, rs in zip(rows, chosen, rejected):
        for answer, c in zip(row["chosen"], cs):
            for other, r in zip(row["rejected"], rs):
                pairs.append({"chosen": answer, "rejected": other, "subset": row.get("subset")})
                pc.append(float(c))
                pr.append(float(r))
    return pairs, pc, pr


def suite(rows: Sequence[dict], fmt: str, chosen: Sequence, rejected: Sequence, seed: int = 0) -> dict:
    """Every measure of ``rewardlab eval`` for scored rows. ``pairs``: ``chosen`` / ``rejected`` are one score per row;
    ``best-of-n``: one list of scores per row (its chosen answers, its rejected answers), and the pairwise measures
    are taken over every (chosen, rejected) combination of a row. ``subsets`` maps each subset to the format's
    headline accuracy (pairwise for pairs, best-of-N for best-of-n), its count and interval, and its pairwise
    accuracy."""
    pairs, pc, pr = expand_pairs(rows, fmt, chosen, rejected)
    if fmt == "pairs":
        bon = best_of_n_report(rows, [[c] for c in chosen], [[r] for r in rejected], seed)
    else:
        bon = best_of_n_report(rows, chosen, rejected, seed)
    out = pairs_report(pairs, pc, pr, seed)
    pair_subsets = out.pop("subsets")
    headline = pair_subsets if fmt == "pairs" else bon["subsets"]
    out["subsets"] = {name: {**s, "pairwise_accuracy": pair_subsets.get(name, {}).get("accuracy", float("nan"))}
                      for name, s in headline.items()}
    out.update({k: v for k, v in bon.items() if k != "subsets"})
    out["format"] = fmt
    return out


def _number(value, spec: str, missing: str) -> str:
    """``value`` formatted, or what its absence means in words (a measure over no pairs is NaN, never printed as nan)."""
    return missing if value is None or value != value else format(value, spec)


def format_suite(report: dict, split: str | None = None) -> str:
    """The printed evaluation report: headline accuracies with intervals, calibration, length bias, subsets;
    ``split`` (the split evaluated, e.g. ``EvalRows.split_label``) labels the headline."""
    lines = [f"pairwise accuracy {report['pairwise_accuracy']:.3f}  [{report['pairwise_ci_low']:.3f}, {report['pairwise_ci_high']:.3f}]"
             f"  over {report['n_pairs']} pairs" + (f" ({split})" if split else "")]
    if report["format"] == "best-of-n" or report["n_rows"] != report["n_pairs"]:
        lines.append(f"best-of-N accuracy {report['best_of_n_accuracy']:.3f}  [{report['best_of_n_ci_low']:.3f}, "
                     f"{report['best_of_n_ci_high']:.3f}]  over {report['n_rows']} rows; mean over subsets {report['subset_mean']:.3f}")
    lines.append(f"calibration of sigmoid(r_chosen - r_rejected): ECE {report['ece']:.3f}, Brier {report['brier']:.3f} (a coin: 0.250)")
    lines.append(f"length bias: Spearman(reward, length) {_number(report['length_spearman'], '+.3f', 'no length varies')}; "
                 f"accuracy when chosen is shorter {_number(report['accuracy_chosen_shorter'], '.3f', 'no pairs')} "
                 f"({report['pairs_chosen_shorter']} pairs), longer {_number(report['accuracy_chosen_longer'], '.3f', 'no pairs')} "
                 f"({report['pairs_chosen_longer']}); length-only ranker {_number(report['length_only_accuracy'], '.3f', 'no pairs')}")
    lines.append(f"margin chosen - rejected: mean {report['margin_mean']:+.3f}, std {report['margin_std']:.3f}")
    if report["subsets"]:
        lines.append(f"{'subset':28s} {'accuracy':>8s} {'95% interval':>16s} {'count':>6s}")
        for name, s in report["subsets"].items():
            interval = "(Ties rule)" if s.get("rule") else f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]"
            lines.append(f"{name[:28]:28s} {s['accuracy']:8.3f} {interval:>16s} {s['count']:6d}")
    return "\n".join(lines)


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
