"""A transition reward fitted by regression: an MLP learns r(s, a) from transitions labelled with the true reward.

The smallest real TransitionReward: it exercises the transition half of the interface (training, saving,
loading, MLflow) with a model that trains in seconds on a CPU. Mean-squared error, Adam, minibatches.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rewardlab.data import TransitionDataConfig, load_transitions
from rewardlab.tracking import RecipeBase, save_run_state
from rewardlab.models.mlp import TransitionMLP
from rewardlab.rewards.transition import MLPTransitionReward


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: list[int] = [64, 64]  # wider fits better, trains slower
    use_next_obs: bool = False  # True: r(s, a, s') instead of r(s, a)


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(256, ge=1)
    learning_rate: float = Field(3e-3, gt=0)


class Config(RecipeBase):
    learner: Literal["transition_regression"] = "transition_regression"
    data: TransitionDataConfig = TransitionDataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()


def _arrays(rows: list[dict]):
    import torch

    def col(k):
        return torch.tensor([r[k] for r in rows], dtype=torch.float32)

    return col("obs"), col("action").reshape(len(rows), -1), col("next_obs"), col("reward")


def r2(pred, target) -> float:
    return float(1 - ((pred - target) ** 2).sum() / ((target - target.mean()) ** 2).sum())


def run(cfg: Config, recipe_text: str = "", resume: bool = False, callbacks=()) -> dict:
    import torch
    from tqdm.auto import tqdm

    from rewardlab import tracking

    if resume:
        raise ValueError("transition_regression trains in seconds and keeps no checkpoints; run it again instead of --resume")
    torch.manual_seed(cfg.seed)
    data = load_transitions(cfg.data)
    obs, act, nxt, rew = _arrays(data.train)
    t_obs, t_act, t_nxt, t_rew = _arrays(data.test)
    net = TransitionMLP(obs.shape[1], act.shape[1], cfg.model.hidden, cfg.model.use_next_obs)
    net.set_normalisation(net.features(obs, act, nxt))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.train.learning_rate)
    out = cfg.out()
    with tracking.start_run(cfg.tracking, cfg.name, tags={"learner": cfg.learner}) as run:
        save_run_state(out, run.run_id, run.uri)
        run.log_params(cfg.model_dump(mode="json"))
        if recipe_text:
            run.log_text(recipe_text, "recipe.yaml")
        run.log_dataset(data.train, f"{data.name}-train", data.card.path, "training", data.source)
        gen = torch.Generator().manual_seed(cfg.seed)
        losses = []
        for epoch in (bar := tqdm(range(cfg.train.epochs), desc="transition regression", unit="epoch")):
            perm = torch.randperm(len(rew), generator=gen)
            total = 0.0
            for start in range(0, len(rew), cfg.train.batch_size):
                idx = perm[start : start + cfg.train.batch_size]
                loss = torch.nn.functional.mse_loss(net(obs[idx], act[idx], nxt[idx]), rew[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss) * len(idx)
            losses.append(total / len(rew))
            with torch.no_grad():
                test_r2 = r2(net(t_obs, t_act, t_nxt), t_rew)
            run.log_metrics({"train/mse": losses[-1], "eval/r2": test_r2}, step=epoch)
            bar.set_postfix(mse=f"{losses[-1]:.3f}", r2=f"{test_r2:.3f}")
        folder = MLPTransitionReward.save(net, out / "reward", recipe=cfg.name)
        reward = MLPTransitionReward.from_folder(folder)
        pred = reward.score(t_obs.numpy(), t_act.numpy(), t_nxt.numpy(), torch.zeros(len(t_rew)).numpy())
        metrics = {"r2": r2(torch.as_tensor(pred), t_rew), "mse": float(((torch.as_tensor(pred) - t_rew) ** 2).mean())}
        run.log_metrics({f"eval/{k}": v for k, v in metrics.items()}, step=cfg.train.epochs)
        run.log_figure(_fit_figure(pred, t_rew.numpy(), losses), "plots/fit.png")
        model_uri = run.log_reward_model(folder, cfg.name if cfg.tracking.register_model else None)
        (out / "eval.json").write_text(json.dumps({"run_id": run.run_id, "model_uri": model_uri, **metrics}, indent=2))
    print(f"held-out R^2 {metrics['r2']:.3f}  MSE {metrics['mse']:.4f}")
    print(run.summary(folder, model_uri), flush=True)
    return {"run_id": run.run_id, "model_uri": model_uri, "output_dir": str(out), "metrics": metrics, "losses": losses}


def _fit_figure(pred, target, losses):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4))
    a.scatter(target, pred, s=3, alpha=0.4)
    a.set(xlabel="true reward", ylabel="predicted reward", title="Held-out fit")
    b.plot(losses)
    b.set(xlabel="epoch", ylabel="train MSE", yscale="log", title="Learning curve")
    fig.tight_layout()
    return fig
