"""Goal-conditioned contrastive reward model (Nath et al., "Learning Goal-Conditioned Representations for Language
Reward Models", NeurIPS 2024), on TRL's RewardTrainer.

Loss = Bradley-Terry on the last-token reward + beta * contrastive term on the final-layer hidden states (the
tensor the reward head reads; no projection head, no temperature). For each pair, ``n_positions`` (source, goal)
pairs are drawn inside the preferred response (a sorted pair of uniform draws, so the goal is at or after its
source), and ``n_positions`` preferred and dispreferred positions for the negatives; as in the paper's loss, cosines
are taken over the whole cross-product of each side's draws (n x n per pair):

    contrastive = -log mean sigma(cos(h_src, h_goal)) - log(1 - mean sigma(cos(h_preferred, h_dispreferred)))

Positions are never drawn in the prompt or in padding, and negatives only from the first token where the two
answers differ (before it their states are the same tensor; see ``contrastive_loss``). After training, the goal state is the mean last-token
hidden state over preferred training responses (the correct samples, on math-answers); it is saved with the
model, and the reward (rewards/goal.py) exposes per-token Q-values = cos(h_t, goal).

Evaluation, next to the length baselines of every text reward: AUROC of the reward and of the Q-values against
correctness on held-out samples, majority-vote accuracy with and without Q-filtering (and the tokens that
filtering saves), and Q-reranking of each question's samples. ``contrastive.beta: 0`` is the Bradley-Terry
baseline on the very same pairs, data order and initialisation (benchmarks/goal_rm.py compares the two).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from rewardlab.data import DataError, PreferenceData, TextDataConfig, load_preferences
from rewardlab.tracking import Fitted, Job, RecipeBase
from rewardlab.learners._trainer import (ModelConfig, PackedCollator, TrainConfig, fit_trainer, normalization_metrics, preference_dataset,
                                         reward_trainer, scalar_model,
                                         text_datasets)
from rewardlab.rewards.evaluate import auroc, evaluate_splits, figures, format_report
from rewardlab.rewards.goal import GoalTextReward, filter_vote, goal_from_states, majority, min_q, q_from_states, q_rerank
from rewardlab.rewards.text import encode_span


class ContrastiveConfig(BaseModel):
    """The representation term. Defaults are the paper's."""

    model_config = ConfigDict(extra="forbid")
    beta: float = Field(0.5, ge=0)  # weight of the contrastive term; 0 = plain Bradley-Terry (the baseline)
    n_positions: int = Field(8, ge=1)  # draws per side and pair; the term averages the n x n cross-product (paper: 16)


class QEvalConfig(BaseModel):
    """How the Q-values are used at evaluation."""

    model_config = ConfigDict(extra="forbid")
    skip_tokens: int = Field(5, ge=0)  # filtering ignores the first k response tokens (the paper skips 5)
    threshold: float | None = None  # drop a sample whose min Q after k tokens is below this; None = fit on train
    keep_correct: float = Field(0.9, gt=0, le=1)  # with threshold None: the threshold keeps this share of correct train samples


class Config(RecipeBase):
    learner: Literal["goal_contrastive"] = "goal_contrastive"
    data: TextDataConfig = TextDataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    contrastive: ContrastiveConfig = ContrastiveConfig()
    q_eval: QEvalConfig = QEvalConfig()
    # a reward trained on the same pairs (e.g. models:/quickstart-bt/latest) to evaluate beside this one on the same
    # held-out split; loaded before training, so a wrong URI fails fast
    baseline: str | None = None


def sample_span(lo, hi, n: int, generator=None):
    """``n`` positions per row drawn uniformly in [lo, hi) (a LongTensor [rows, n]); an empty span gives hi - 1."""
    import torch

    u = torch.rand(len(lo), n, generator=generator, device=lo.device)
    return _positions(lo, hi, u)


def _positions(lo, hi, u):
    import torch

    span = (hi - lo).clamp(min=1)[:, None]
    return torch.minimum(lo[:, None] + (u * span).long(), (hi - 1).clamp(min=0)[:, None])


def sample_positions(starts, ends, n: int, generator=None):
    """``n`` (source, goal) pairs per row, as the paper's loss draws them: two uniform draws in [start, end), sorted,
    so that start <= source <= goal < end. Returns two LongTensors [rows, n]."""
    import torch

    u = torch.rand(len(starts), 2, n, generator=generator, device=starts.device).sort(dim=1).values
    return _positions(starts, ends, u[:, 0]), _positions(starts, ends, u[:, 1])


def divergence(chosen_ids: list[int], rejected_ids: list[int]) -> int:
    """The first position at which the two token sequences differ (the shorter length when one is a prefix of the
    other). Before it a causal model's hidden states of the two answers are the same tensor."""
    for i, (a, b) in enumerate(zip(chosen_ids, rejected_ids)):
        if a != b:
            return i
    return min(len(chosen_ids), len(rejected_ids))


def contrastive_loss(hidden, response_start, response_end, n_positions: int, generator=None, diverge=None):
    """The goal-conditioned term on a TRL preference batch: rows [0, B) are preferred, [B, 2B) dispreferred.

    Positives, as the paper's loss computes them: ``n_positions`` (source, goal) pairs per preferred answer, each a
    sorted pair of uniform draws in [response_start, response_end) so that the goal is at or after its source; the
    cosine is taken over the whole cross-product of the sources and goals (n x n per pair). Negatives: ``n_positions``
    preferred positions against ``n_positions`` dispreferred ones, again the cross-product. ``diverge`` (per pair, the
    first token where the two sequences differ) confines the negatives to positions from there on, on both sides:
    before it the two answers' states are the same tensor in a causal model, so a "negative" there would be pulled
    apart while the positive term pulls the same states together (on math-steps most of a rejected answer is such a
    shared prefix). This rule is rewardlab's, not the paper's code (which draws negatives from the whole responses).
    A pair whose answers never diverge before they end gives no negative.

    Returns (loss, mean cos+, mean cos-)."""
    import torch
    import torch.nn.functional as F

    half = hidden.shape[0] // 2
    device = hidden.device
    starts, ends = response_start.to(device), response_end.to(device)
    rows = torch.arange(half, device=device)[:, None]

    source, goal = sample_positions(starts[:half], ends[:half], n_positions, generator)
    h_source, h_goal = hidden[rows, source], hidden[rows, goal]
    cos_pos = F.cosine_similarity(h_source[:, :, None], h_goal[:, None, :], dim=-1)  # [B, n, n]

    lo_c, lo_r = starts[:half], starts[half:]
    if diverge is not None:
        diverge = diverge.to(device)
        lo_c, lo_r = torch.maximum(lo_c, diverge), torch.maximum(lo_r, diverge)
    valid = (lo_c < ends[:half]) & (lo_r < ends[half:])
    h_c = hidden[rows, sample_span(lo_c, ends[:half], n_positions, generator)]
    h_r = hidden[rows + half, sample_span(lo_r, ends[half:], n_positions, generator)]
    cos_neg = F.cosine_similarity(h_c[:, :, None], h_r[:, None, :], dim=-1)  # [B, n, n]

    loss = -torch.log(torch.sigmoid(cos_pos).mean())
    if valid.any():
        loss = loss - torch.log1p(-torch.sigmoid(cos_neg[valid]).mean())
        mean_neg = cos_neg[valid].detach().mean()
    else:
        mean_neg = torch.tensor(float("nan"), device=device)
    return loss, cos_pos.detach().mean(), mean_neg


def make_trainer_class():
    """A RewardTrainer whose loss adds beta times the contrastive term (TRL's own BT loss and metrics kept); on
    packed batches (train.packing: shared_prompt) the term reads the packed forward's states, laid out as the
    unpacked batch's."""
    import torch

    from rewardlab.learners._trainer import packed_trainer_class
    from rewardlab.models.packing import unpacked_states
    from rewardlab.models.scalar_head import head_inputs, read_positions

    class GoalContrastiveTrainer(packed_trainer_class()):
        def __init__(self, *args, beta: float, n_positions: int, **kwargs):
            super().__init__(*args, **kwargs)
            self.beta, self.n_positions = beta, n_positions

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            diverge = inputs.pop("diverge", None)  # per pair: where chosen and rejected first differ (negatives start there)
            starts = inputs.pop("response_start", None)
            if starts is None:  # packed: the chosen answers' starts, then the rejected ones'
                starts = torch.cat([inputs.pop("chosen_start"), inputs.pop("rejected_start")])
            if "read_index" in inputs:  # one packed forward; its states laid out as the unpacked batch's
                rows = inputs["packed_rows"]
                bt, outputs = super().compute_loss(model, inputs, return_outputs=True)
                hidden = unpacked_states(self.packed_hidden, rows)
                ends = torch.tensor([r.chosen_read + 1 for r in rows] + [r.rejected_read + 1 for r in rows], device=hidden.device)
            else:
                with head_inputs(self.accelerator.unwrap_model(self.model)) as seen:
                    bt, outputs = super().compute_loss(model, inputs, return_outputs=True)
                # responses end at the token the reward is read at (padding and a trailing pad-as-EOS excluded)
                hidden = seen[-1]
                ends = read_positions(inputs["input_ids"], self.processing_class.pad_token_id) + 1
            term, cos_pos, cos_neg = contrastive_loss(hidden, starts.to(hidden.device), ends, self.n_positions, diverge=diverge)
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["bt_loss"].append(bt.item())
            self._metrics[mode]["contrastive_loss"].append(term.item())
            self._metrics[mode]["cos_positive"].append(cos_pos.item())
            if cos_neg.isfinite():  # a batch whose answers never diverge has no negative
                self._metrics[mode]["cos_negative"].append(cos_neg.item())
            loss = bt + self.beta * term
            return (loss, outputs) if return_outputs else loss

    return GoalContrastiveTrainer


def make_collator(pad_token_id: int):
    """TRL's preference collator plus ``response_start`` (preferred rows first, as input_ids are)."""
    import torch
    from trl.trainer.reward_trainer import DataCollatorForPreference

    class Collator(DataCollatorForPreference):
        def torch_call(self, examples):
            out = super().torch_call(examples)
            out["response_start"] = torch.tensor([e["chosen_start"] for e in examples] + [e["rejected_start"] for e in examples])
            out["diverge"] = torch.tensor([e["diverge"] for e in examples])
            return out

    return Collator(pad_token_id=pad_token_id)


def tokenize_pairs(pairs: list[dict], tokenizer, max_length: int, template: str, counts: dict | None = None):
    """TRL's chosen_ids/rejected_ids, where each response starts (chosen_start/rejected_start), where the two
    sequences first differ (diverge), and length."""
    dataset = preference_dataset(pairs, lambda row, side: encode_span(tokenizer, row["prompt"], row[side], max_length, template),
                                 starts=True, counts=counts)
    return dataset.add_column("diverge", [divergence(c, r) for c, r in zip(dataset["chosen_ids"], dataset["rejected_ids"])])


def build_model(cfg: Config, tokenizer):
    from rewardlab.models.scalar_head import per_token_head

    m = cfg.model
    model = scalar_model(m, tokenizer, cfg.seed)
    if per_token_head(model) is None:
        raise DataError(f"model.backbone: {m.backbone} pools a [CLS] vector, so it has no per-token hidden states under its "
                        "reward head; the goal-conditioned RM needs a causal LM backbone (e.g. embedded:smollm2-135m-instruct)")
    return model


def goal_responses(data: PreferenceData) -> tuple[list, list, str]:
    """(prompts, responses, what they are): the correct training samples when the data has them, else the
    chosen side of the training pairs."""
    correct = [s for s in data.train_samples if s.get("correct")]
    if correct:
        return [s["prompt"] for s in correct], [s["response"] for s in correct], "correct train samples"
    return [p["prompt"] for p in data.train_pairs], [p["chosen"] for p in data.train_pairs], "chosen train responses"


def fit_goal(reward: GoalTextReward, data: PreferenceData, q: QEvalConfig) -> tuple[float, str]:
    """Set ``reward.goal_state`` from the preferred training responses; return the filtering threshold (the
    recipe's, or the one keeping ``keep_correct`` of those responses) and what the goal was computed from."""
    prompts, responses, source = goal_responses(data)
    states = reward.response_states(prompts, responses)
    reward.goal_state = goal_from_states(states)
    if q.threshold is not None:
        return q.threshold, source
    mins = [min_q(v, q.skip_tokens) for v in q_from_states(states, reward.goal_state)]
    return float(np.quantile(mins, 1 - q.keep_correct)), source


def within_length_auroc(labels: np.ndarray, scores: np.ndarray, lengths: np.ndarray, n_buckets: int = 3) -> float:
    """AUROC of ``scores`` against ``labels`` with samples compared only to samples of about the same length: the
    size-weighted mean of the AUROC inside each length quantile bucket (buckets holding one class are skipped; NaN
    when every bucket is). A minimum over more tokens is lower, so when correct answers are longer an overall min-Q
    AUROC below 0.5 can be length alone; inside a bucket that artefact cannot act."""
    edges = np.quantile(lengths, np.linspace(0, 1, n_buckets + 1)[1:-1]) if len(lengths) else []
    bucket = np.searchsorted(edges, lengths, side="right")
    total, weight = 0.0, 0
    for b in np.unique(bucket):
        inside = bucket == b
        if len(set(labels[inside].tolist())) == 2:
            total += auroc(labels[inside], scores[inside]) * inside.sum()
            weight += int(inside.sum())
    return total / weight if weight else float("nan")


def q_metrics(reward: GoalTextReward, samples: list[dict], threshold: float, skip: int) -> tuple[dict[str, float], list]:
    """AUROC of Q against correctness, majority vote with and without Q-filtering, tokens saved, and reranking
    (by final Q, by reward) against picking a random sample, over each held-out question's samples.
    Also returns the Q-values (for the plot)."""
    states = reward.response_states([s["prompt"] for s in samples], [s["response"] for s in samples])
    qs = q_from_states(states, reward.goal_state)
    scores = reward.scores_from_states(states)
    labels = np.asarray([bool(s["correct"]) for s in samples], dtype=int)
    mins, lengths = np.asarray([min_q(q, skip) for q in qs]), np.asarray([len(q) for q in qs], dtype=float)
    metrics = {
        "q_auroc_last": auroc(labels, np.asarray([q[-1] for q in qs])),
        "q_auroc_min": auroc(labels, mins),
        "q_auroc_mean": auroc(labels, np.asarray([q.mean() for q in qs])),
        # is a min-Q AUROC below 0.5 a length artefact? length alone against correctness, and min-Q within length terciles
        "length_auroc": auroc(labels, lengths),
        "q_auroc_min_within_length": within_length_auroc(labels, mins, lengths),
        "q_threshold": threshold,
    }
    groups: dict = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.get("qid", s["prompt"]), []).append(i)
    plain = filtered = rerank_q = rerank_r = random_pick = 0.0
    spent = total = 0
    for idx in groups.values():
        truth = samples[idx[0]]["answer"]
        stated = [samples[i]["stated"] for i in idx]
        plain += majority(stated) == truth
        answer, used, n = filter_vote(stated, [qs[i] for i in idx], threshold, skip)
        filtered += answer == truth
        spent, total = spent + used, total + n
        rerank_q += labels[idx[q_rerank([qs[i] for i in idx])]]
        rerank_r += labels[idx[int(np.argmax([scores[i] for i in idx]))]]
        random_pick += labels[idx].mean()
    n_groups = len(groups)
    metrics.update({
        "majority_vote_acc": plain / n_groups,
        "filtered_majority_vote_acc": filtered / n_groups,
        "filter_tokens_saved": 1 - spent / total,
        "rerank_q_acc": rerank_q / n_groups,
        "rerank_reward_acc": rerank_r / n_groups,
        "random_sample_acc": random_pick / n_groups,
        "n_questions": float(n_groups),
    })
    return metrics, qs


def q_figure(samples: list[dict], qs: list, threshold: float, limit: int = 60):
    """Q along the response for held-out samples, correct in green and incorrect in red, with the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for s, q in list(zip(samples, qs))[:limit]:
        ax.plot(q, color="tab:green" if s["correct"] else "tab:red", alpha=0.5, lw=1)
    ax.axhline(threshold, color="k", ls=":", lw=1, label=f"filter threshold {threshold:.3f}")
    ax.set(xlabel="response token", ylabel="Q = cos(h_t, goal)", title="Q-values on held-out samples (green: correct)")
    ax.legend(loc="lower right")
    return fig


def load_baseline(uri: str | None):
    """The baseline reward named by the recipe's ``baseline`` key, or None; a clear error if it cannot be loaded."""
    if uri is None:
        return None
    from rewardlab import rewards

    try:
        baseline = rewards.load(uri)
    except Exception as exc:  # MLflow, a missing folder, a bad reward.json: all mean the same thing to the user
        raise DataError(f"baseline: cannot load {uri!r} ({exc}); train it first (e.g. rewardlab train recipes/quickstart.yaml) "
                        "or remove the key") from None
    if rewards.modality(baseline) != "text":
        raise DataError(f"baseline: {uri!r} is not a text reward")
    return baseline


def baseline_metrics(baseline, data: PreferenceData) -> dict[str, float]:
    """The baseline's pairwise accuracy and AUROC on the same held-out pairs and samples, as ``baseline_*``."""
    _, _, metrics = evaluate_splits(baseline, data)
    return {f"baseline_{k}": metrics[k] for k in ("pair_accuracy", "auroc", "shifted_pair_accuracy", "shifted_auroc") if k in metrics}


def load(cfg: Config) -> tuple[PreferenceData, object]:
    """The pairs, and the baseline reward (loaded before training, so a wrong URI fails fast)."""
    return load_preferences(cfg.data), load_baseline(cfg.baseline)


def datasets(cfg: Config, data) -> list:
    return text_datasets(data[0])


def tags(cfg: Config, data) -> dict:
    return {"beta": str(cfg.contrastive.beta)}


def fit(cfg: Config, data, job: Job) -> Fitted:
    """Train (BT + contrastive), compute and save the goal state, evaluate reward and Q-values."""
    from rewardlab import backbones

    data, baseline = data
    m = cfg.model
    tokenizer = backbones.load_tokenizer(m.backbone)
    model = build_model(cfg, tokenizer)
    counts: dict = {}
    dataset = tokenize_pairs(data.train_pairs, tokenizer, m.max_length, m.template, counts)
    trainer = reward_trainer(model, tokenizer, dataset, cfg.train, job.out / "checkpoints", m.max_length, cfg.seed,
                             [job.run.trainer_callback(), *job.callbacks], trainer_class=make_trainer_class(),
                             data_collator=(PackedCollator(tokenizer.pad_token_id, True, ("chosen_start", "rejected_start", "diverge"))
                                            if cfg.train.packing == "shared_prompt" else make_collator(tokenizer.pad_token_id)),
                             lora=m.lora, freeze_layers=m.freeze_layers,
                             beta=cfg.contrastive.beta, n_positions=cfg.contrastive.n_positions)
    model, adapter, extra = fit_trainer(trainer, job, counts)
    if model is None:
        return Fitted(None, extra=extra)
    reward = GoalTextReward(model, tokenizer, max_length=m.max_length, batch_size=cfg.train.eval_batch_size, template=m.template)
    threshold, goal_source = fit_goal(reward, data, cfg.q_eval)
    folder = GoalTextReward.save(model, tokenizer, job.out / "reward", m.max_length, m.template, reward.goal_state,
                                 backbone=m.backbone, recipe=cfg.name, goal_from=goal_source, beta=cfg.contrastive.beta)
    result, shifted, metrics = evaluate_splits(reward, data)
    metrics |= adapter | normalization_metrics(folder, result.scores())
    if baseline is not None:
        metrics.update(baseline_metrics(baseline, data))
    figs = figures(result, extra["log_history"], shifted)
    for prefix, samples in (("", data.test_samples), ("shifted_", data.shifted_samples)):
        if samples and "stated" in samples[0]:
            q_result, qs = q_metrics(reward, samples, threshold, cfg.q_eval.skip_tokens)
            metrics.update({prefix + k: v for k, v in q_result.items()})
            figs[f"plots/q_values{'_shifted' if prefix else ''}.png"] = q_figure(samples, qs, threshold)
    report = [format_report(metrics)]
    if "q_auroc_last" in metrics:
        report.append(format_q_report(metrics))
    if "shifted_q_auroc_last" in metrics:
        report.append("shifted split:\n" + format_q_report({k[len("shifted_"):]: v for k, v in metrics.items() if k.startswith("shifted_")}))
    return Fitted(folder, metrics, figs, "\n".join(report), extra["global_step"], extra=extra)


def format_q_report(metrics: dict[str, float]) -> str:
    lines = []
    if "baseline_auroc" in metrics:
        lines.append(f"baseline on the same split: AUROC {metrics['baseline_auroc']:.3f} (this RM {metrics['auroc']:.3f}), "
                     f"pair accuracy {metrics['baseline_pair_accuracy']:.3f} (this RM {metrics['pair_accuracy']:.3f})")
    return "\n".join(lines + [
        f"Q AUROC vs correctness: last token {metrics['q_auroc_last']:.3f}, min after skip {metrics['q_auroc_min']:.3f}, "
        f"mean {metrics['q_auroc_mean']:.3f}",
        f"majority vote {metrics['majority_vote_acc']:.3f} -> Q-filtered {metrics['filtered_majority_vote_acc']:.3f} "
        f"(threshold {metrics['q_threshold']:.3f}, {100 * metrics['filter_tokens_saved']:.1f}% of tokens saved)",
        f"pick one sample per question: by Q {metrics['rerank_q_acc']:.3f}, by reward {metrics['rerank_reward_acc']:.3f}, "
        f"at random {metrics['random_sample_acc']:.3f}",
    ])
