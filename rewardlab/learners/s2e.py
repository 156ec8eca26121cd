"""S2E (State2Explanation, Das et al., NeurIPS 2023): a joint embedding of transitions and concept explanations,
used to shape an RL agent's reward and to explain its moves to people.

The recipe does the whole experiment, top to bottom:

1. builds the ``s2e-explanations`` dataset (rule-labelled (state, action, next state, explanation) rows from play by
   a random and a reasonable policy);
2. trains ``models/concept_embedder.py`` with S2E's loss, reports Recall@1/2/3 of retrieving the right explanation
   among all of the domain's explanations on held-out episodes, and saves it as a ``ConceptShapingReward``;
3. trains Stable-Baselines3 agents (PPO or DQN) in three arms, each on the environment's reward plus
   ``shaping_coef`` x a shaping reward: ``none`` (no shaping), ``s2e`` (concepts predicted by the embedding) and
   ``ground_truth`` (concepts from the rules). Connect 4 plays against fixed opponents (``random``, or
   ``lookahead``: win if it can, else block, else random); Lunar Lander trains on its sparse reward (only the
   +-100 of landing or crashing; ``base_reward: dense`` keeps gymnasium's own shaping). Every arm is evaluated on the
   environment's true reward; curves, steps to ``target_return`` and a plot go to MLflow.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rewardlab.tracking import DatasetInput, Fitted, Job, RecipeBase

ARMS = ("none", "s2e", "ground_truth")


class EmbeddingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dim: int = Field(32, ge=2)  # joint space size
    hidden: int = Field(128, ge=8)  # width of the state-action encoder (the board CNN's linear layer is 2x this)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(128, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    negatives: int = Field(8, ge=1)  # mismatched explanations per transition: half one concept away, half at random
    margin: float = Field(1.0, gt=0)  # target distance y of a mismatched pair in (||s - e|| - y)^2
    mirror: bool = True  # Connect 4: also train on left-right mirrored boards (every concept is mirror-symmetric)


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    algo: Literal["ppo", "dqn"] = "ppo"
    net_arch: list[int] = [64, 64]
    kwargs: dict = {}  # any other keyword of SB3's PPO / DQN constructor (learning_rate, n_steps, exploration_fraction, ...)
    torch_threads: int = Field(1, ge=1)  # small MLPs: one thread is faster than several fighting over 2 cores


class RLConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True  # false: train and evaluate the embedding only
    arms: list[Literal["none", "s2e", "ground_truth"]] = list(ARMS)
    seeds: list[int] = [0]
    total_steps: int = Field(50_000, ge=1)  # environment steps per arm and seed
    shaping_coef: float = 1.0  # reward = environment reward + shaping_coef x concept shaping
    base_reward: Literal["sparse", "dense"] = "sparse"  # Lunar Lander: the reward the shaping is added to
    opponents: list[Literal["random", "lookahead"]] = ["random", "lookahead"]  # Connect 4 only
    eval_every: int = Field(5_000, ge=1)  # environment steps
    eval_episodes: int = Field(20, ge=1)
    target_return: float | None = None  # true return whose first crossing is reported; default: 0.8 (Connect 4), 0 (Lunar Lander)
    stop_at_target: bool = False  # end an arm at its first crossing; this censors its curve, so comparisons leave it off
    agent: AgentConfig = AgentConfig()


class Config(RecipeBase):
    learner: Literal["s2e"] = "s2e"
    data: Any = None  # S2EDatasetConfig settings (rewardlab/data/s2e_dataset.py): domain, episodes, policy_mix, ...; typed when read
    embedding: EmbeddingConfig = EmbeddingConfig()
    rl: RLConfig = RLConfig()

    @model_validator(mode="after")
    def _typed_data(self):
        from rewardlab.data import registry

        self.data = registry.typed("s2e-explanations", self.data, "data")
        return self

    def target(self, domain: str) -> float:
        return self.rl.target_return if self.rl.target_return is not None else (0.8 if domain == "connect4" else 0.0)


# --- the embedding ------------------------------------------------------------------------------------------------

def transition_arrays(rows: list[dict], domain: str, mirror: bool = False) -> dict[str, np.ndarray]:
    """Dataset rows -> arrays: obs, actions, next_obs and the index of each row's concept set in ALL_CONCEPT_SETS.

    ``mirror`` (Connect 4) appends every row mirrored left-right, which keeps its concepts."""
    from rewardlab.data.concepts import ALL_CONCEPT_SETS, COLS, ROWS

    index = {s: i for i, s in enumerate(ALL_CONCEPT_SETS[domain])}
    obs = np.asarray([r["state"] for r in rows], np.float32)
    actions = np.asarray([r["action"][0] for r in rows], np.int64)
    next_obs = np.asarray([r["next_state"] for r in rows], np.float32)
    truth = np.asarray([index[tuple(sorted(r["concepts"]))] for r in rows], np.int64)
    if mirror and domain == "connect4":
        flip = lambda b: b.reshape(-1, ROWS, COLS)[:, :, ::-1].reshape(len(b), -1)  # noqa: E731
        obs, next_obs = np.concatenate([obs, flip(obs)]), np.concatenate([next_obs, flip(next_obs)])
        actions, truth = np.concatenate([actions, COLS - 1 - actions]), np.concatenate([truth, truth])
    return {"obs": obs, "actions": actions, "next_obs": next_obs, "truth": truth}


def neighbour_sets(domain: str) -> list[np.ndarray]:
    """For each concept set, the indices of the possible sets that differ from it by exactly one concept."""
    from rewardlab.data.concepts import ALL_CONCEPT_SETS

    sets = [set(s) for s in ALL_CONCEPT_SETS[domain]]
    return [np.array([j for j, t in enumerate(sets) if len(s ^ t) == 1], np.int64) for s in sets]


def sample_negatives(truth: np.ndarray, n_sets: int, neighbours: list[np.ndarray], k: int, rng: np.random.Generator) -> np.ndarray:
    """(B, k) mismatched explanation indices: the first half one concept away from the truth, the rest uniform."""
    out = np.empty((len(truth), k), np.int64)
    n_hard = k // 2
    for i, t in enumerate(truth):
        near = neighbours[t]
        hard = rng.choice(near, n_hard) if len(near) and n_hard else np.empty(0, np.int64)
        rand = rng.integers(n_sets - 1, size=k - len(hard))
        rand = rand + (rand >= t)  # uniform over the sets other than the truth
        out[i] = np.concatenate([hard, rand])
    return out


def evaluate_embedding(embedder, arrays: dict[str, np.ndarray], explanations: list[str], batch: int = 2048) -> dict:
    """Recall@1/2/3 of the true explanation among all candidates, and the mean distances."""
    import torch

    from rewardlab.models.concept_embedder import rank_candidates, recall_at

    embedder.eval()
    with torch.inference_mode():
        texts = embedder.embed_texts(explanations)
        ranks = []
        for i in range(0, len(arrays["truth"]), batch):
            sl = slice(i, i + batch)
            states = embedder.embed_transitions(*(torch.as_tensor(arrays[k][sl]) for k in ("obs", "actions", "next_obs")))
            ranks.append(rank_candidates(states, texts))
        ranking = torch.cat(ranks)
    recall = recall_at(ranking, torch.as_tensor(arrays["truth"]))
    return {f"recall_at_{k}": v for k, v in recall.items()} | {"predicted": ranking[:, 0].numpy()}


def train_embedding(cfg: Config, domain: str, train: dict, test: dict, run=None):
    """Train the joint embedding; returns (embedder, the per-epoch history). Logs loss and test recall per epoch."""
    import torch
    from tqdm.auto import tqdm

    from rewardlab.data.concepts import ALL_CONCEPT_SETS, explain
    from rewardlab.models.concept_embedder import ConceptEmbedder, build_vocab, s2e_loss

    e = cfg.embedding
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    explanations = [explain(s, domain) for s in ALL_CONCEPT_SETS[domain]]
    embedder = ConceptEmbedder(domain, build_vocab(explanations), dim=e.dim, hidden=e.hidden)
    if domain == "lunarlander":
        embedder.state.set_normalisation(torch.as_tensor(train["obs"]), torch.as_tensor(train["next_obs"]))
    opt = torch.optim.Adam(embedder.parameters(), lr=e.learning_rate)
    neighbours = neighbour_sets(domain)
    n = len(train["truth"])
    history = []
    bar = tqdm(range(e.epochs), desc=f"S2E embedding ({domain}, {n} transitions)", unit="epoch")
    for epoch in bar:
        embedder.train()
        order = rng.permutation(n)
        losses = []
        for i in range(0, n, e.batch_size):
            idx = order[i : i + e.batch_size]
            states = embedder.embed_transitions(*(torch.as_tensor(train[k][idx]) for k in ("obs", "actions", "next_obs")))
            texts = embedder.embed_texts(explanations)
            neg = torch.as_tensor(sample_negatives(train["truth"][idx], len(explanations), neighbours, e.negatives, rng))
            loss, stats = s2e_loss(states, texts, torch.as_tensor(train["truth"][idx]), neg, e.margin)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append({"loss": loss.item(), **stats})
        point = {"epoch": epoch + 1} | {k: float(np.mean([x[k] for x in losses])) for k in losses[0]}
        point |= {k: v for k, v in evaluate_embedding(embedder, test, explanations).items() if k != "predicted"}
        history.append(point)
        bar.set_postfix(loss=f"{point['loss']:.3f}", r1=f"{point['recall_at_1']:.3f}")
        if run is not None:
            run.log_metrics({f"embedding/{k}": v for k, v in point.items() if k != "epoch"}, step=epoch + 1)
    return embedder.eval(), history


def concept_report(predicted: np.ndarray, truth: np.ndarray, domain: str) -> dict[str, float]:
    """Per-concept accuracy of the retrieved explanations' concepts against the true ones, and exact-set accuracy."""
    from rewardlab.data.concepts import ALL_CONCEPT_SETS, CONCEPTS, concept_mask

    masks = np.stack([concept_mask(s, domain) for s in ALL_CONCEPT_SETS[domain]])
    p, t = masks[predicted], masks[truth]
    out = {f"concept_accuracy/{name}": float((p[:, j] == t[:, j]).mean()) for j, name in enumerate(CONCEPTS[domain])}
    return out | {"exact_set_accuracy": float((p == t).all(axis=1).mean())}


# --- the environments ---------------------------------------------------------------------------------------------

def make_env(domain: str, opponent: str | None, shaping=None, coef: float = 1.0, base: str = "dense", seed: int = 0):
    """The environment of an arm: Monitor (true returns) inside the shaping wrapper."""
    import gymnasium as gym
    from stable_baselines3.common.monitor import Monitor

    from rewardlab.envs.connect4 import Connect4VsOpponent
    from rewardlab.envs.shaping import ConceptShaping

    env = Monitor(Connect4VsOpponent(opponent) if domain == "connect4" else gym.make("LunarLander-v3"))
    env = ConceptShaping(env, shaping, coef, base if domain == "lunarlander" else "dense")
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


# --- the RL arms ---------------------------------------------------------------------------------------------------

def eval_callback_class():
    from stable_baselines3.common.callbacks import BaseCallback

    class ArmEval(BaseCallback):
        """Evaluates the deterministic policy on the true reward every ``every`` steps; logs the curve."""

        def __init__(self, eval_env, every: int, episodes: int, target: float, stop: bool, log=None, save=None):
            super().__init__()
            self.eval_env, self.every, self.episodes, self.target, self.stop, self.log = eval_env, every, episodes, target, stop, log
            self.save = save  # save(model, curve, train_seconds): a checkpoint, before the point is logged
            self.curve: list[dict] = []
            self.t0 = time.perf_counter()
            self.eval_seconds = 0.0
            self.seconds_before = 0.0  # training seconds of a run resumed from a checkpoint

        def _on_step(self) -> bool:
            if self.num_timesteps % self.every == 0:
                self.evaluate()
                if self.stop and self.curve[-1]["true_return"] >= self.target:
                    return False
            return True

        def _on_training_end(self) -> None:
            if not self.curve or self.curve[-1]["env_steps"] != self.num_timesteps:
                self.evaluate()

        def evaluate(self) -> None:
            from stable_baselines3.common.evaluation import evaluate_policy

            t = time.perf_counter()
            returns, _ = evaluate_policy(self.model, self.eval_env, self.episodes, deterministic=True, return_episode_rewards=True)
            self.eval_seconds += time.perf_counter() - t
            returns = np.asarray(returns, float)
            point = {"env_steps": int(self.num_timesteps), "true_return": float(returns.mean()), "win_rate": float((returns > 0).mean()),
                     "train_seconds": round(self.seconds_before + time.perf_counter() - self.t0 - self.eval_seconds, 2)}
            self.curve.append(point)
            if self.save:
                self.save(self.model, self.curve, point["train_seconds"])
            if self.log:
                self.log(point)

    return ArmEval


def run_arm(domain: str, arm: str, opponent: str | None, seed: int, rl: RLConfig, shaping, target: float, log=None,
            save=None, resume: dict | None = None) -> dict:
    """Train one agent (one arm, opponent and seed); returns its curve and the steps to ``target``. ``save`` is
    called at every evaluation (see ArmEval); ``resume`` ({"agent": zip path, "curve", "train_seconds"}) continues
    an interrupted run: its agent, its step count and its curve (the environments start new episodes)."""
    import torch
    from stable_baselines3 import DQN, PPO

    torch.set_num_threads(rl.agent.torch_threads)
    done = resume["curve"][-1]["env_steps"] if resume else 0
    env = make_env(domain, opponent, shaping, rl.shaping_coef, rl.base_reward, seed + done)
    eval_env = make_env(domain, opponent, seed=seed + 10_000 + done)
    algo = {"ppo": PPO, "dqn": DQN}[rl.agent.algo]
    cb = eval_callback_class()(eval_env, rl.eval_every, rl.eval_episodes, target, rl.stop_at_target, log, save)
    if resume:
        model = algo.load(resume["agent"], env=env, device="cpu")
        cb.curve, cb.seconds_before = list(resume["curve"]), resume["train_seconds"]
    else:
        model = algo("MlpPolicy", env, policy_kwargs={"net_arch": list(rl.agent.net_arch)}, seed=seed, device="cpu", verbose=0, **rl.agent.kwargs)
    if done < rl.total_steps:
        model.learn(total_timesteps=rl.total_steps - done, callback=cb, reset_num_timesteps=not done)
    steps = next((p["env_steps"] for p in cb.curve if p["true_return"] >= target), None)
    env.close()
    eval_env.close()
    return {"arm": arm, "opponent": opponent, "seed": seed, "steps_to_target": steps, "curve": cb.curve,
            "final_return": cb.curve[-1]["true_return"], "best_return": max(p["true_return"] for p in cb.curve)}


def shaping_for(arm: str, domain: str, learned):
    from rewardlab.rewards.concept import ConceptShapingReward

    return {"none": None, "s2e": learned, "ground_truth": ConceptShapingReward.rules(domain)}[arm]


def run_arms(cfg: Config, domain: str, learned, run=None, on_result=(), checkpoints: Checkpoints | None = None) -> list[dict]:
    """Every arm x opponent x seed of ``cfg.rl``, one after the other, with a progress bar over the runs;
    ``on_result`` callables get the results so far after each run. With ``checkpoints``, the finished runs and the
    current one (its agent at its last evaluation) are saved at every evaluation, and a resumed job skips the
    finished runs and continues the current one."""
    from tqdm.auto import tqdm

    rl, target = cfg.rl, cfg.target(domain)
    opponents = rl.opponents if domain == "connect4" else [None]
    jobs = [(arm, opp, seed) for opp in opponents for arm in rl.arms for seed in rl.seeds]
    results = list(checkpoints.state["results"]) if checkpoints else []
    current = checkpoints.state.get("current") if checkpoints else None
    for arm, opp, seed in tqdm(jobs[len(results):], desc=f"S2E RL arms ({domain})", unit="run", initial=len(results), total=len(jobs)):
        key = f"rl/{arm}" + (f"/{opp}" if opp else "") + f"/seed{seed}"

        def log(point, key=key):
            print(f"{key}  step {point['env_steps']:>7d}  true return {point['true_return']:8.2f}", flush=True)
            if run is not None:
                run.log_metrics({f"{key}/true_return": point["true_return"], f"{key}/win_rate": point["win_rate"]}, step=point["env_steps"])

        resume = None
        if current is not None and current["job"] == [arm, opp, seed]:
            resume = {"agent": checkpoints.agent_path(), "curve": current["curve"], "train_seconds": current["train_seconds"]}
            if run is not None:  # a kill between a checkpoint and its log: log what the run does not hold
                logged = run.logged_steps(f"{key}/true_return")
                for point in current["curve"]:
                    if point["env_steps"] not in logged:
                        log(point)
            current = None
        save = (lambda model, curve, seconds, job=[arm, opp, seed]: checkpoints.save(results, job, curve, seconds, model)) if checkpoints else None
        results.append(run_arm(domain, arm, opp, seed, rl, shaping_for(arm, domain, learned), target, log, save, resume))
        if checkpoints:
            checkpoints.save(results, None)
        for callback in on_result:
            callback(results)  # e.g. a benchmark writing its JSON after every run, so a stopped sweep keeps them
    return results


class Checkpoints:
    """``out/checkpoints/checkpoint-<n>`` (n counts the evaluations saved, so the newest is the largest): the
    embedding's metrics and history, the finished RL runs, and the current run's curve and agent, with every RNG
    state (``tracking.write_checkpoint``: atomic, older checkpoints removed). The embedder itself is the saved reward
    folder."""

    def __init__(self, folder, state: dict, counter: int = 0, loaded_from=None):
        self.folder, self.state, self.counter, self.loaded_from = Path(folder), state, counter, loaded_from

    @classmethod
    def load(cls, checkpoint) -> Checkpoints:
        import torch

        from rewardlab import tracking

        checkpoint = Path(checkpoint)
        state = json.loads((checkpoint / "state.json").read_text())
        tracking.set_rng_states(torch.load(checkpoint / "rng.pt", weights_only=False))  # our own file: numpy/python RNG states
        return cls(checkpoint.parent, state, int(checkpoint.name.split("-")[-1]), checkpoint)

    def agent_path(self) -> Path:
        return self.loaded_from / "agent.zip"

    def save(self, results: list[dict], job, curve=None, seconds: float = 0.0, model=None) -> None:
        import torch

        from rewardlab import tracking

        self.counter += 1
        self.state = {**self.state, "results": results,
                      "current": {"job": job, "curve": curve, "train_seconds": seconds} if job is not None else None}

        def write(tmp: Path) -> None:
            if model is not None:
                model.save(tmp / "agent.zip")
            torch.save(tracking.rng_states(), tmp / "rng.pt")
            (tmp / "state.json").write_text(json.dumps(self.state))

        self.loaded_from = tracking.write_checkpoint(self.folder, self.counter, write)


def _mean_std(values) -> dict[str, float]:
    values = np.asarray(values, float)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def summarise(results: list[dict], budget: int) -> dict:
    """Per (arm, opponent), over seeds: the uncensored measures first (final true return and win rate, and the
    area under the learning curve, i.e. the mean true return over all evaluations, as mean and std), then steps
    to the target, which is censored: a seed that never reaches it counts as the whole budget."""
    out = {}
    for arm, opp in dict.fromkeys((r["arm"], r["opponent"]) for r in results):
        group = [r for r in results if r["arm"] == arm and r["opponent"] == opp]
        reached = [r["steps_to_target"] for r in group if r["steps_to_target"] is not None]
        final, auc = _mean_std([r["final_return"] for r in group]), _mean_std([np.mean([p["true_return"] for p in r["curve"]]) for r in group])
        win = _mean_std([r["curve"][-1]["win_rate"] for r in group])
        out[arm + (f"/{opp}" if opp else "")] = {
            "seeds": len(group),
            "final_return_mean": final["mean"], "final_return_std": final["std"],
            "auc_mean_return": auc["mean"], "auc_mean_return_std": auc["std"],
            "final_win_rate_mean": win["mean"], "final_win_rate_std": win["std"],
            "best_return_mean": float(np.mean([r["best_return"] for r in group])),
            "reached": len(reached),
            "steps_to_target_mean": float(np.mean(reached)) if reached else None,
            "steps_to_target_censored_mean": float(np.mean([r["steps_to_target"] or budget for r in group])),
        }
    return out


def curves_figure(results: list[dict], domain: str, target: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    opponents = list(dict.fromkeys(r["opponent"] for r in results))
    fig, axes = plt.subplots(1, len(opponents), figsize=(6 * len(opponents), 4), squeeze=False)
    for ax, opp in zip(axes[0], opponents):
        for arm in dict.fromkeys(r["arm"] for r in results):
            group = [r["curve"] for r in results if r["arm"] == arm and r["opponent"] == opp]
            steps = [p["env_steps"] for p in min(group, key=len)]
            values = np.array([[p["true_return"] for p in c[: len(steps)]] for c in group])
            ax.plot(steps, values.mean(0), marker="o", label=f"{arm} ({len(group)} seeds)")
            if len(group) > 1:
                ax.fill_between(steps, values.min(0), values.max(0), alpha=0.2)
        ax.axhline(target, color="k", ls=":", label="target")
        ax.set(xlabel="environment steps", ylabel="true return", title=f"{domain}" + (f" vs {opp}" if opp else ""))
        ax.legend()
    fig.tight_layout()
    return fig


def load(cfg: Config) -> dict:
    """Build (or read from the cache) the explanation dataset and split it."""
    from rewardlab.data.s2e_dataset import build

    data_cfg = cfg.data
    t0 = time.perf_counter()
    rows = build(data_cfg)
    return {"domain": data_cfg.domain, "seconds": time.perf_counter() - t0, "train": [r for r in rows if r["split"] == "train"],
            "test": [r for r in rows if r["split"] == "test"]}


def datasets(cfg: Config, data: dict) -> list:
    from rewardlab.data import find_card

    card, domain, source = find_card("s2e-explanations").path, data["domain"], "rewardlab builder s2e-explanations"
    return [DatasetInput(data["train"], f"s2e-explanations-{domain}-train", "training", source, card),
            DatasetInput(data["test"], f"s2e-explanations-{domain}-test", "evaluation", source, card)]


def tags(cfg: Config, data: dict) -> dict:
    return {"domain": data["domain"]}


def fit(cfg: Config, data: dict, job: Job) -> Fitted:
    """Train and evaluate the embedding, save and register the reward, then run the RL arms; ``job.callbacks``
    are called with the RL results so far after every arm's run."""
    from rewardlab.data.concepts import ALL_CONCEPT_SETS, explain
    from rewardlab.rewards.concept import ConceptShapingReward

    domain, run, out = data["domain"], job.run, job.out
    if job.checkpoint:  # the embedding was trained, saved and registered before the kill: continue with the RL arms
        checkpoints = Checkpoints.load(job.checkpoint)
        metrics, history = checkpoints.state["metrics"], checkpoints.state["history"]
        folder = out / "reward"
        print(f"resumed from {job.checkpoint}: {len(checkpoints.state['results'])} RL runs done", flush=True)
        return _fit_rl(cfg, domain, job, folder, metrics, history, checkpoints)
    train = transition_arrays(data["train"], domain, mirror=cfg.embedding.mirror)
    test = transition_arrays(data["test"], domain)
    t0 = time.perf_counter()
    embedder, history = train_embedding(cfg, domain, train, test, run)
    embed_seconds = time.perf_counter() - t0
    explanations = [explain(s, domain) for s in ALL_CONCEPT_SETS[domain]]
    final = evaluate_embedding(embedder, test, explanations)
    counts = np.bincount(train["truth"], minlength=len(explanations))
    metrics = {k: v for k, v in final.items() if k.startswith("recall")}
    metrics |= {"chance_recall_at_1": 1.0 / len(explanations),
                "majority_recall_at_1": float((test["truth"] == counts.argmax()).mean()),
                "test_transitions": float(len(test["truth"])), "train_transitions": float(len(train["truth"])),
                "candidates": float(len(explanations)), "embedding_seconds": embed_seconds, "dataset_seconds": data["seconds"]}
    metrics |= concept_report(final["predicted"], test["truth"], domain)
    run.log_metrics({f"eval/{k}": v for k, v in metrics.items()})
    print(f"S2E embedding ({domain}): held-out Recall@1 {metrics['recall_at_1']:.3f}, @2 {metrics['recall_at_2']:.3f}, "
          f"@3 {metrics['recall_at_3']:.3f} over {len(explanations)} explanations (chance {metrics['chance_recall_at_1']:.3f}, "
          f"most frequent explanation {metrics['majority_recall_at_1']:.3f}); {len(test['truth'])} test transitions", flush=True)
    folder = ConceptShapingReward.save(embedder, out / "reward", recipe=cfg.name, recall_at_1=metrics["recall_at_1"])
    job.register(folder)  # before the RL arms, which take far longer than the embedding
    checkpoints = Checkpoints(out / "checkpoints", {"metrics": metrics, "history": history, "results": [], "current": None})
    checkpoints.save([], None)  # a kill from here on resumes without training the embedding again
    return _fit_rl(cfg, domain, job, folder, metrics, history, checkpoints)


def _fit_rl(cfg: Config, domain: str, job: Job, folder, metrics: dict, history, checkpoints: Checkpoints) -> Fitted:
    """The RL arms on the saved embedding, and what the run reports about them."""
    from rewardlab.rewards.concept import ConceptShapingReward

    run, out = job.run, job.out
    learned = ConceptShapingReward.from_folder(folder)
    results, summary, figures, lines = [], {}, {}, []
    if cfg.rl.enabled:
        results = run_arms(cfg, domain, learned, run, on_result=job.callbacks, checkpoints=checkpoints)
        summary = summarise(results, cfg.rl.total_steps)
        for name, s in summary.items():
            run.log_metrics({f"rl/{name}/{k}": float(v) for k, v in s.items() if v is not None})
        figures["plots/learning_curves.png"] = curves_figure(results, domain, cfg.target(domain))
        for name, s in summary.items():
            reached = f"{s['steps_to_target_mean']:.0f} steps" if s["reached"] else "never"
            lines.append(f"{name}: final true return {s['final_return_mean']:.2f} +- {s['final_return_std']:.2f}, area under the "
                         f"curve {s['auc_mean_return']:.2f} +- {s['auc_mean_return_std']:.2f} ({s['seeds']} seeds); "
                         f"return >= {cfg.target(domain)} reached by {s['reached']}/{s['seeds']} ({reached})")
    (out / "rl_curves.json").write_text(json.dumps(results, indent=1))
    return Fitted(folder, metrics, figures, "\n".join(lines), record={"metrics": metrics, "embedding_history": history, "rl": summary},
                  extra={"rl": summary, "results": results})
