"""Lipschitz-regularised off-policy GAIL (Blondé et al., "Lipschitzness Is All You Need To Tame Off-policy GAIL").

The agent is Stable-Baselines3's SAC or TD3, unchanged. What GAIL adds goes through SB3's extension points:

* ``GAILReplayBuffer`` (a ``ReplayBuffer``) recomputes the reward of every sampled batch from the *current*
  discriminator, r = -log(1 - sigmoid(D(s, a)) + 1e-8), optionally times the pessimistic factor kappa; the
  environment's reward stored at collection time is never used.
* ``GAILCallback`` updates the discriminator (BCE, expert = 1, agent = replay samples = 0, entropy bonus, and the
  gradient penalty of ``models/discriminator.py`` at wgan / dragan / nagard points) and, when enabled, the forward
  model of the preconditioning; it evaluates the policy on the true reward and logs everything to MLflow.
* Terminations become absorbing states (``AbsorbingState``): one extra observation flag; a terminal transition
  leads to the absorbing state, which loops on itself once with a zero action and then ends the episode as a time
  limit, so the critic bootstraps through it and the discriminator prices it like any other state.

The trained discriminator is saved as a ``DiscriminatorReward`` (a TransitionReward), the policy as an SB3 zip.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rewardlab.data.transitions import absorbing_obs, scale_actions, to_absorbing, zero_absorbing_actions
from rewardlab.tracking import DatasetInput, Fitted, Job, RecipeBase


class DemosConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    builder: Any = None  # ExpertDemosConfig settings (rewardlab/data/expert_demos.py), e.g. {task: Hopper-v5}; typed when read
    episodes: int = Field(10, ge=1)  # expert episodes used (the first n)
    subsample: int = Field(1, ge=1)  # keep 1 expert transition in n per episode, random start (liayn and GAIL: 20)

    @model_validator(mode="after")
    def _typed_builder(self):
        from rewardlab.data import registry

        self.builder = registry.typed("expert-demos", self.builder, "demos.builder")
        return self


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    algo: Literal["sac", "td3"] = "sac"
    total_steps: int = Field(30_000, ge=1)  # environment steps
    learning_starts: int = Field(1_000, ge=0)
    learning_rate: float = Field(1e-3, gt=0)
    batch_size: int = Field(256, ge=1)
    buffer_size: int = Field(1_000_000, ge=1)
    gamma: float = Field(0.99, gt=0, le=1)
    train_freq: int = Field(1, ge=1)
    gradient_steps: int = Field(1, ge=1)
    net_arch: list[int] = [256, 256]
    torch_threads: int = Field(1, ge=1)  # small MLPs: one thread is faster than several fighting over 2 cores
    checkpoint: bool = True  # at every evaluation: agent, replay buffer, discriminator, RNG state (for --resume)


class DiscriminatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: list[int] = [100, 100]
    inputs: Literal["sa", "ss"] = "sa"  # D(s, a) or D(s, s')
    spectral_norm: bool = True  # on the hidden layers only, as liayn (the output layer stays plain, so the penalty binds)
    learning_rate: float = Field(3e-4, gt=0)  # liayn's MuJoCo config: 5e-4
    batch_size: int = Field(256, ge=1)  # expert and agent samples per discriminator step (liayn: 64)
    update_every: int = Field(2, ge=1)  # environment steps between discriminator updates (liayn: 1)
    steps_per_update: int = Field(1, ge=0)  # minibatch steps per update; 0 = one pass over the expert set (liayn)
    expert_labels: tuple[float, float] = (1.0, 1.0)  # expert label ~ U(low, high); liayn's MuJoCo config: (0.7, 1.2)
    entropy_coef: float = Field(1e-3, ge=0)


class PenaltyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    variant: Literal["wgan", "dragan", "nagard", "none"] = "wgan"
    one_sided: bool = True
    k: float = Field(1.0, ge=0)
    lam: float = Field(10.0, ge=0)
    noise_std: float = Field(0.5, ge=0)  # dragan / nagard perturbation, in standardised units


class PreconditionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    hidden: list[int] = [100, 100]
    learning_rate: float = Field(3e-4, gt=0)
    target: float = Field(1.0, ge=0)  # gradient norm of the forward model that costs nothing
    min_kappa: float = Field(0.7, ge=0, le=1)


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every: int = Field(2_000, ge=1)  # environment steps
    episodes: int = Field(5, ge=1)
    target_score: float = 0.9  # normalised score whose first crossing is reported as steps_to_target
    stop_at_target: bool = False  # end training at that first crossing; this censors the curve, so comparisons leave it off


class Config(RecipeBase):
    learner: Literal["lipschitz_gail"] = "lipschitz_gail"
    demos: DemosConfig = DemosConfig()
    absorbing: bool = True
    agent: AgentConfig = AgentConfig()
    discriminator: DiscriminatorConfig = DiscriminatorConfig()
    penalty: PenaltyConfig = PenaltyConfig()
    precondition: PreconditionConfig = PreconditionConfig()
    eval: EvalConfig = EvalConfig()


# --- absorbing states ------------------------------------------------------------------------------------------

def subsample_indices(episode: np.ndarray, keep: np.ndarray, every: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of one transition in ``every`` per episode, from a random start (liayn-pytorch keeps 1 in 20, as the
    GAIL paper does), plus every row where ``keep`` is true (terminations, so the absorbing rows survive)."""
    if every == 1:
        return np.arange(len(episode))
    chosen = np.zeros(len(episode), bool)
    for e in np.unique(episode):
        rows = np.flatnonzero(episode == e)
        chosen[rows[int(rng.integers(every))::every]] = True
    return np.flatnonzero(chosen | keep)


def expert_arrays(demos, low: np.ndarray, high: np.ndarray, absorbing: bool, subsample: int = 1, seed: int = 0):
    """Expert (obs, actions rescaled to [-1, 1], next_obs) as the agent's replay buffer would hold them, keeping one
    transition in ``subsample`` per episode (terminations always kept)."""
    idx = subsample_indices(demos.episode, demos.terminated.astype(bool), subsample, np.random.default_rng(seed))
    obs, act, nxt = demos.obs[idx].astype(np.float32), scale_actions(demos.actions[idx], low, high), demos.next_obs[idx].astype(np.float32)
    if not absorbing:
        return obs, act, nxt
    term = demos.terminated[idx].astype(bool)
    obs, nxt = to_absorbing(obs, nxt, term)
    dim = demos.obs.shape[1]
    n_abs = int(term.sum())  # each termination adds the absorbing state's own transition, with a zero action
    if n_abs:
        a = np.tile(absorbing_obs(dim), (n_abs, 1))
        obs, act, nxt = np.concatenate([obs, a]), np.concatenate([act, np.zeros((n_abs, act.shape[1]), np.float32)]), np.concatenate([nxt, a])
    return obs, act, nxt


# --- the GAIL pieces that plug into SB3 -----------------------------------------------------------------------

class GAIL:
    """The discriminator, its optimiser, the optional forward model, and the relabelling function."""

    def __init__(self, cfg: Config, obs_dim: int, act_dim: int, expert, device: str = "cpu", seed: int = 0):
        import torch

        from rewardlab.models.discriminator import Discriminator, ForwardModel

        self.cfg, self.device, self.absorbing = cfg, device, cfg.absorbing
        d = cfg.discriminator
        self.disc = Discriminator(obs_dim, act_dim, d.hidden, d.inputs, d.spectral_norm).to(device)
        self.expert = [torch.as_tensor(x, device=device) for x in expert]
        flags = [obs_dim - 1] + ([2 * obs_dim - 1] if d.inputs == "ss" else []) if self.absorbing else []
        self.disc.set_normalisation(*self.expert, raw_columns=flags)  # the absorbing flag stays 0/1, as in liayn
        self.disc.eval()  # eval between updates: spectral norm's power iteration runs only in the discriminator's own steps
        self.opt = torch.optim.Adam(self.disc.parameters(), lr=d.learning_rate)
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.split = obs_dim  # the wgan mix is drawn per block: state | action (or next state)
        self.fwd = None
        if cfg.precondition.enabled:
            from stable_baselines3.common.running_mean_std import RunningMeanStd

            self.fwd = ForwardModel(obs_dim, act_dim, cfg.precondition.hidden).to(device)
            self.fwd_opt = torch.optim.Adam(self.fwd.parameters(), lr=cfg.precondition.learning_rate)
            self.pen_stats = RunningMeanStd(shape=())
        self.last_kappa = 1.0

    def mask(self, obs, actions):
        """At the absorbing state the action carries no information: zero it, as the expert's absorbing rows are."""
        return zero_absorbing_actions(obs, actions) if self.absorbing else actions

    def rewards(self, obs, actions, next_obs):
        """The reward of a replay batch under the current discriminator (and kappa), shape (B, 1)."""
        import torch

        from rewardlab.models.discriminator import imitation_reward

        actions = self.mask(obs, actions)
        with torch.no_grad():
            r = imitation_reward(self.disc(obs, actions, next_obs))
        if self.fwd is not None:
            pen = self.fwd.steepness(torch.cat([obs, actions], -1).float(), self.cfg.precondition.target).detach()
            self.pen_stats.update(pen.cpu().numpy())
            kappa = torch.exp(-pen / (float(np.sqrt(self.pen_stats.var)) + 1e-8)).clamp(min=self.cfg.precondition.min_kappa)
            self.last_kappa = float(kappa.mean())
            r = r * kappa
        return r.unsqueeze(1)

    def update(self, sample_agent) -> dict:
        """One discriminator update: ``steps_per_update`` minibatch steps (0: one shuffled pass over the expert set,
        as liayn-pytorch's ``update_discriminator``), each on an expert batch against a fresh agent batch from
        ``sample_agent(n)``; then one forward-model step when preconditioning is on. Returns the last step's stats."""
        import torch

        from rewardlab.models.discriminator import discriminator_loss

        d, p = self.cfg.discriminator, self.cfg.penalty
        n_expert = len(self.expert[0])
        size = min(d.batch_size, n_expert)
        if d.steps_per_update == 0:
            order = torch.randperm(n_expert, generator=self.gen, device=self.device)
            batches = [order[i:i + size] for i in range(0, n_expert - size + 1, size)]  # drop_last, as liayn's loader
        else:
            batches = [torch.randint(n_expert, (size,), generator=self.gen, device=self.device) for _ in range(d.steps_per_update)]
        self.disc.train()
        for idx in batches:
            agent_obs, agent_actions, agent_next = sample_agent(size)
            e = self.disc.features(*(x[idx] for x in self.expert))
            a = self.disc.features(agent_obs, self.mask(agent_obs, agent_actions), agent_next)
            loss, stats = discriminator_loss(self.disc, e, a, p.variant, p.k, p.lam, p.one_sided, d.entropy_coef,
                                             p.noise_std, self.split, self.gen, tuple(d.expert_labels))
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        self.disc.eval()
        stats["steps"] = float(len(batches))
        if self.fwd is not None:
            pred = self.fwd(torch.cat([agent_obs, self.mask(agent_obs, agent_actions)], -1).float())
            fwd_loss = torch.nn.functional.mse_loss(pred, agent_next.float())
            self.fwd_opt.zero_grad()
            fwd_loss.backward()
            self.fwd_opt.step()
            stats |= {"forward_mse": float(fwd_loss), "kappa": self.last_kappa}
        return stats


def replay_buffer_class():
    """SB3's ReplayBuffer whose samples carry rewards from the current discriminator (lazy: SB3 import)."""
    from stable_baselines3.common.buffers import ReplayBuffer

    class GAILReplayBuffer(ReplayBuffer):
        reward_fn = None  # GAIL.rewards, set once the agent exists

        def _get_samples(self, batch_inds, env=None):
            data = super()._get_samples(batch_inds, env)
            if self.reward_fn is None:
                raise RuntimeError("GAILReplayBuffer: no reward_fn set; the environment's reward must never train the agent")
            return data._replace(rewards=self.reward_fn(data.observations, data.actions, data.next_observations))

        def sample_transitions(self, batch_size: int):
            """(obs, actions, next_obs) of a uniform batch, without relabelling: the discriminator's agent samples."""
            data = super()._get_samples(np.random.randint(0, self.buffer_size if self.full else self.pos, size=batch_size))
            return data.observations, data.actions, data.next_observations

    return GAILReplayBuffer


def make_env(env_id: str, absorbing: bool, seed: int):
    import gymnasium as gym
    from stable_baselines3.common.monitor import Monitor

    env = Monitor(gym.make(env_id))  # inside the wrapper: Monitor records the true episode return and length
    from rewardlab.envs.absorbing import AbsorbingState

    env = AbsorbingState(env) if absorbing else env
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


def callback_class():
    from stable_baselines3.common.callbacks import BaseCallback

    class GAILCallback(BaseCallback):
        """Discriminator updates every ``update_every`` steps after ``learning_starts``; evaluation on the true reward."""

        def __init__(self, gail: GAIL, cfg: Config, eval_env, demos, run, checkpoints=None):
            super().__init__()
            self.gail, self.cfg, self.eval_env, self.demos, self.run = gail, cfg, eval_env, demos, run
            self.checkpoints = checkpoints  # the folder of checkpoint-N, or None
            self.stats: list[dict] = []
            self.curve: list[dict] = []
            self.train_seconds, self._t0 = 0.0, None

        def _on_training_start(self):
            self._t0 = time.perf_counter()

        def _on_step(self) -> bool:
            steps = self.num_timesteps
            buffer = self.model.replay_buffer
            if steps >= self.cfg.agent.learning_starts and steps % self.cfg.discriminator.update_every == 0 and buffer.size() > 0:
                self.stats.append(self.gail.update(buffer.sample_transitions))
            if steps % self.cfg.eval.every == 0 or steps == self.cfg.agent.total_steps:
                self.evaluate(steps)
                if self.cfg.eval.stop_at_target and self.curve[-1]["normalized_score"] >= self.cfg.eval.target_score:
                    return False  # SB3 ends learn() when a callback returns False
            return True

        def evaluate(self, steps: int) -> None:
            from stable_baselines3.common.evaluation import evaluate_policy

            self.train_seconds += time.perf_counter() - self._t0
            returns, _ = evaluate_policy(self.model, self.eval_env, self.cfg.eval.episodes, deterministic=True, return_episode_rewards=True)
            ret = float(np.mean(returns))
            point = {"env_steps": steps, "train_seconds": round(self.train_seconds, 2), "true_return": ret,
                     "normalized_score": float(self.demos.normalized_score(ret))}
            recent = self.stats[-50:]
            for key in ("accuracy", "expert_acc", "agent_acc", "bce", "penalty", "grad_norm", "entropy", "kappa", "forward_mse"):
                if recent and key in recent[0]:
                    point[f"disc_{key}"] = float(np.mean([s[key] for s in recent]))
            self.curve.append(point)
            if self.checkpoints is not None and self.cfg.agent.checkpoint:
                # saved before the point is logged: a process killed in between resumes from here and logs it then
                # (log_pending), one killed earlier redoes this evaluation, which was never logged
                save_checkpoint(self.checkpoints, steps, self.model, self.gail, self)
            log_point(self.run, point)
            print(f"step {steps:>7d}  true return {ret:9.1f}  normalised {point['normalized_score']:6.3f}  "
                  f"D acc {point.get('disc_accuracy', float('nan')):.3f}  |grad D| {point.get('disc_grad_norm', float('nan')):.2f}", flush=True)
            self._t0 = time.perf_counter()

    return GAILCallback


def log_point(run, point: dict) -> None:
    run.log_metrics({("eval/" if k in ("true_return", "normalized_score") else "train/") + k: v
                     for k, v in point.items() if k != "env_steps"}, step=point["env_steps"])


def save_checkpoint(folder, steps: int, model, gail: GAIL, callback) -> None:
    """``folder/checkpoint-<steps>`` (``tracking.write_checkpoint``: atomic, older ones removed): the SB3 agent
    (policy, optimisers, counters), the replay buffer's arrays, the discriminator, its optimiser and the forward
    model, the curve so far and every RNG state."""
    import torch

    from rewardlab import tracking

    def write(tmp: Path) -> None:
        model.save(tmp / "agent.zip")
        buf = model.replay_buffer
        arrays = {k: getattr(buf, k) for k in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
                  if getattr(buf, k, None) is not None}
        np.savez(tmp / "replay.npz", pos=buf.pos, full=buf.full, **arrays)
        state = {"disc": gail.disc.state_dict(), "opt": gail.opt.state_dict(), "gen": gail.gen.get_state(),
                 "last_kappa": gail.last_kappa, "rng": tracking.rng_states()}
        if gail.fwd is not None:
            state |= {"fwd": gail.fwd.state_dict(), "fwd_opt": gail.fwd_opt.state_dict(),
                      "pen_stats": (gail.pen_stats.mean, gail.pen_stats.var, gail.pen_stats.count)}
        torch.save(state, tmp / "gail.pt")
        (tmp / "callback.json").write_text(json.dumps({"env_steps": steps, "curve": callback.curve, "stats": callback.stats[-50:],
                                                       "train_seconds": callback.train_seconds}))

    tracking.write_checkpoint(folder, steps, write)


def load_checkpoint(folder, model_class, env, gail: GAIL, callback):
    """The agent of ``folder`` (a ``checkpoint-N``) on ``env``, with its replay buffer filled; ``gail`` and
    ``callback`` restored in place; every RNG state as it was. Returns the agent."""
    import torch

    from rewardlab import tracking

    folder = Path(folder)
    model = model_class.load(folder / "agent.zip", env=env, device="cpu", custom_objects={"replay_buffer_class": replay_buffer_class()})
    saved = np.load(folder / "replay.npz")
    buf = model.replay_buffer
    for key in saved.files:
        if key in ("pos", "full"):
            continue
        getattr(buf, key)[...] = saved[key]
    buf.pos, buf.full = int(saved["pos"]), bool(saved["full"])
    state = torch.load(folder / "gail.pt", weights_only=False)  # our own file: RNG states are numpy/python objects
    gail.disc.load_state_dict(state["disc"])
    gail.opt.load_state_dict(state["opt"])
    gail.gen.set_state(state["gen"])
    gail.last_kappa = state["last_kappa"]
    if gail.fwd is not None:
        gail.fwd.load_state_dict(state["fwd"])
        gail.fwd_opt.load_state_dict(state["fwd_opt"])
        gail.pen_stats.mean, gail.pen_stats.var, gail.pen_stats.count = state["pen_stats"]
    saved_cb = json.loads((folder / "callback.json").read_text())
    callback.curve, callback.stats, callback.train_seconds = saved_cb["curve"], saved_cb["stats"], saved_cb["train_seconds"]
    tracking.set_rng_states(state["rng"])
    return model


def log_pending(run, curve: list[dict]) -> None:
    """Log the curve's points that the run does not hold yet (a kill between a checkpoint and its log)."""
    logged = run.logged_steps("eval/true_return")
    for point in curve:
        if point["env_steps"] not in logged:
            log_point(run, point)


def steps_to(curve: list[dict], target: float) -> tuple[int | None, float | None]:
    """(environment steps, training seconds) at the first evaluation whose normalised score reaches ``target``."""
    for p in curve:
        if p["normalized_score"] >= target:
            return p["env_steps"], p["train_seconds"]
    return None, None


def load(cfg: Config):
    """The expert demonstrations (built on first use, cached after): (builder settings, the first ``episodes``)."""
    from rewardlab.data.expert_demos import load_demos

    return cfg.demos.builder, load_demos(cfg.demos.builder).subset(cfg.demos.episodes)


def datasets(cfg: Config, data) -> list:
    from rewardlab.data import find_card
    from rewardlab.data.expert_demos import build

    demos_cfg, demos = data
    used = sorted(set(demos.episode.tolist()))
    rows = [r for r in build(demos_cfg) if r["policy"] == "expert" and r["episode"] in used]
    return [DatasetInput(rows, f"expert-demos-{demos.env_id}", "training", "rewardlab builder expert-demos", find_card("expert-demos").path)]


def tags(cfg: Config, data) -> dict:
    return {"env_id": data[1].env_id}


def fit(cfg: Config, data, job: Job) -> Fitted:
    """Train the discriminator and the agent together; the curves, the plot, the reward and the policy."""
    import torch
    from stable_baselines3 import SAC, TD3

    from rewardlab.rewards.discriminator import DiscriminatorReward

    _, demos = data
    torch.set_num_threads(cfg.agent.torch_threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    done = int(job.checkpoint.name.split("-")[-1]) if job.checkpoint else 0  # environment steps already trained
    # a resumed run starts new episodes (an environment's state is not saved), from seeds it has not used
    env = make_env(demos.env_id, cfg.absorbing, cfg.seed + done)
    eval_env = make_env(demos.env_id, cfg.absorbing, cfg.seed + 10_000 + done)
    low, high = env.action_space.low.astype(np.float32), env.action_space.high.astype(np.float32)
    expert = expert_arrays(demos, low, high, cfg.absorbing, cfg.demos.subsample, cfg.seed)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    gail = GAIL(cfg, obs_dim, act_dim, expert, seed=cfg.seed)
    a = cfg.agent
    algo = {"sac": SAC, "td3": TD3}[a.algo]
    model = algo("MlpPolicy", env, learning_rate=a.learning_rate, buffer_size=min(a.buffer_size, a.total_steps + 10), learning_starts=a.learning_starts,
                 batch_size=a.batch_size, gamma=a.gamma, train_freq=a.train_freq, gradient_steps=a.gradient_steps,
                 policy_kwargs={"net_arch": list(a.net_arch)}, replay_buffer_class=replay_buffer_class(), seed=cfg.seed, device="cpu", verbose=0)
    run, out = job.run, job.out
    cb = callback_class()(gail, cfg, eval_env, demos, run, out / "checkpoints")
    if job.checkpoint:
        model = load_checkpoint(job.checkpoint, algo, env, gail, cb)
        log_pending(run, cb.curve)
        print(f"resumed at {done} environment steps from {job.checkpoint}", flush=True)
    else:
        run.log_metrics({"demos/expert_return": demos.expert_return, "demos/random_return": demos.random_return,
                         "demos/transitions": float(len(demos.obs))}, step=0)
    model.replay_buffer.reward_fn = gail.rewards
    if done < a.total_steps:
        model.learn(total_timesteps=a.total_steps - done, callback=[cb, *job.callbacks], progress_bar=True, reset_num_timesteps=not done)
    steps, seconds = steps_to(cb.curve, cfg.eval.target_score)
    best = max(cb.curve, key=lambda p: p["true_return"])
    metrics = {"final_return": cb.curve[-1]["true_return"], "final_normalized_score": cb.curve[-1]["normalized_score"],
               "best_return": best["true_return"], "best_normalized_score": best["normalized_score"],
               "steps_to_target": steps, "seconds_to_target": seconds, "train_seconds": cb.train_seconds,
               "expert_return": demos.expert_return, "random_return": demos.random_return}
    folder = DiscriminatorReward.save(gail.disc, out / "reward", low, high, cfg.absorbing, env_id=demos.env_id, recipe=cfg.name)
    model.save(out / "policy.zip")
    run.log_artifact(out / "policy.zip", "policy")
    (out / "curve.json").write_text(json.dumps(cb.curve, indent=1))
    reached = f"{steps} steps ({seconds:.0f} s)" if steps else f"not within {a.total_steps} steps"
    report = (f"{demos.env_id}: best true return {best['true_return']:.1f} (normalised {best['normalized_score']:.3f}); "
              f"expert {demos.expert_return:.1f}, random {demos.random_return:.1f}; normalised {cfg.eval.target_score} reached: {reached}")
    return Fitted(folder, metrics, {"plots/learning_curves.png": curves_figure(cb.curve, demos, cfg)}, report, a.total_steps,
                  extra={"curve": cb.curve})


def curves_figure(curve: list[dict], demos, cfg: Config):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p["env_steps"] for p in curve]
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(14, 4))
    a.plot(steps, [p["true_return"] for p in curve], marker="o", label=f"GAIL ({cfg.penalty.variant} penalty)")
    a.axhline(demos.expert_return, color="g", ls="--", label="expert")
    a.axhline(demos.random_return, color="r", ls=":", label="random")
    a.set(xlabel="environment steps", ylabel="true return", title=demos.env_id)
    a.legend()
    b.plot(steps, [p.get("disc_accuracy", np.nan) for p in curve], label="accuracy")
    b.plot(steps, [p.get("disc_expert_acc", np.nan) for p in curve], label="on expert", alpha=0.6)
    b.plot(steps, [p.get("disc_agent_acc", np.nan) for p in curve], label="on agent", alpha=0.6)
    b.set(xlabel="environment steps", title="discriminator", ylim=(0, 1.05))
    b.legend()
    c.plot(steps, [p.get("disc_grad_norm", np.nan) for p in curve], label="mean |grad D|")
    c.plot(steps, [p.get("disc_penalty", np.nan) for p in curve], label="penalty")
    c.axhline(cfg.penalty.k, color="k", ls=":", label="k")
    c.set(xlabel="environment steps", title="Lipschitz penalty")
    c.legend()
    fig.tight_layout()
    return fig
