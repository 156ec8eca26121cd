"""A transition reward fitted by regression: an MLP learns r(s, a) from transitions labelled with the true reward.

The smallest real TransitionReward: it exercises the transition half of the interface (training, saving,
loading, MLflow) with a model that trains in seconds on a CPU. Mean-squared error, Adam, minibatches.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rewardlab.data import TransitionDataConfig, load_transitions
from rewardlab.tracking import DatasetInput, Fitted, Job, RecipeBase
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


def load(cfg: Config):
    return load_transitions(cfg.data)


def datasets(cfg: Config, data) -> list:
    return [DatasetInput(data.train, f"{data.name}-train", "training", data.source, data.card.path)]


def fit(cfg: Config, data, job: Job) -> Fitted:
    import torch
    from tqdm.auto import tqdm

    from rewardlab import tracking

    torch.manual_seed(cfg.seed)
    obs, act, nxt, rew = _arrays(data.train)
    t_obs, t_act, t_nxt, t_rew = _arrays(data.test)
    net = TransitionMLP(obs.shape[1], act.shape[1], cfg.model.hidden, cfg.model.use_next_obs)
    net.set_normalisation(net.features(obs, act, nxt))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.train.learning_rate)
    gen = torch.Generator().manual_seed(cfg.seed)
    losses, start_epoch = [], 0
    if job.checkpoint:  # a checkpoint per epoch: the model, the optimiser, the data order's generator, the losses
        state = torch.load(job.checkpoint / "state.pt", weights_only=False)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        losses, start_epoch = state["losses"], len(state["losses"])
    for epoch in (bar := tqdm(range(start_epoch, cfg.train.epochs), desc="transition regression", unit="epoch",
                              initial=start_epoch, total=cfg.train.epochs)):
        perm = torch.randperm(len(rew), generator=gen)
        total = 0.0
        for start in range(0, len(rew), cfg.train.batch_size):
            idx = perm[start : start + cfg.train.batch_size]
            loss = torch.nn.functional.mse_loss(net(obs[idx], act[idx], nxt[idx]), rew[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(rew))
        with torch.no_grad():
            test_r2 = r2(net(t_obs, t_act, t_nxt), t_rew)
        state = {"net": net.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(), "losses": losses}
        tracking.write_checkpoint(job.out / "checkpoints", epoch + 1, lambda tmp: torch.save(state, tmp / "state.pt"))
        job.run.log_metrics({"train/mse": losses[-1], "eval/r2": test_r2}, step=epoch)  # after the checkpoint: never lost
        bar.set_postfix(mse=f"{losses[-1]:.3f}", r2=f"{test_r2:.3f}")
        for callback in job.callbacks:
            callback(epoch)
    folder = MLPTransitionReward.save(net, job.out / "reward", recipe=cfg.name)
    reward = MLPTransitionReward.from_folder(folder)
    pred = reward.score(t_obs.numpy(), t_act.numpy(), t_nxt.numpy(), torch.zeros(len(t_rew)).numpy())
    metrics = {"r2": r2(torch.as_tensor(pred), t_rew), "mse": float(((torch.as_tensor(pred) - t_rew) ** 2).mean())}
    return Fitted(folder, metrics, {"plots/fit.png": _fit_figure(pred, t_rew.numpy(), losses)},
                  f"held-out R^2 {metrics['r2']:.3f}  MSE {metrics['mse']:.4f}", cfg.train.epochs, extra={"losses": losses})


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
