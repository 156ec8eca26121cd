"""Peer baseline for the GAIL benchmark: HumanCompatibleAI's ``imitation`` GAIL with an SB3 PPO or SAC generator.

Runs in its OWN virtualenv (``benchmarks/.venv-imitation``, see ``benchmarks/imitation-requirements.txt``),
because ``imitation`` pins older gymnasium / stable-baselines3 than rewardlab. It never imports rewardlab.

    benchmarks/.venv-imitation/bin/python benchmarks/gail_peer_imitation.py \\
        --demos demos.npz --env Pendulum-v1 --budget 100000 --eval-every 5000 \\
        --eval-episodes 10 --seed 0 --out result.json

The demo file (.npz) holds float32 ``obs`` (N, obs_dim), ``actions`` (N, act_dim), ``next_obs`` (N, obs_dim)
and bool ``dones`` (N,) (True at the last transition of every episode, terminated or truncated) and
``terminated`` (N,) (True only at real terminations). They become one ``imitation.data.types.Transitions``;
its ``dones`` follow imitation's own convention (episode end, truncation included), which is the npz ``dones``.

Training goes in chunks of ``--eval-every`` environment steps (``GAIL.train(eval_every)``) up to ``--budget``;
after each chunk the generator is scored on the TRUE environment reward (deterministic actions, a separate
evaluation env seeded from ``--seed``, the same episode seeds at every evaluation). ``curve`` rows are
``[env_steps, training_wall_seconds_so_far, mean_true_return]``; evaluation time is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # imitation's per-round tqdm bar would flood the log

REQUIRED_KEYS = ("obs", "actions", "next_obs", "dones", "terminated")
# imitation 1.0.1 pins gymnasium 0.29, which has the MuJoCo v4 tasks only. InvertedDoublePendulum-v5 is v4 without
# the two constraint-force entries of the observation (always 0 in v4; checked) and without the +10 alive bonus on
# the step that terminates: the peer trains and is evaluated on v4 with those two entries dropped (so the demos fit),
# and its returns can be at most 10 above v5's per episode.
TERMINATING = {"InvertedPendulum", "InvertedDoublePendulum", "Hopper", "Walker2d", "Ant", "Humanoid"}
V4_FOR_V5 = {"InvertedDoublePendulum-v5": ("InvertedDoublePendulum-v4", 9)}


def log(msg: str) -> None:
    print(f"[gail-peer {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demos", required=True, help=".npz with obs, actions, next_obs, dones, terminated")
    ap.add_argument("--env", default="Pendulum-v1")
    ap.add_argument("--budget", type=int, default=100_000, help="generator environment steps in all")
    ap.add_argument("--eval-every", type=int, default=5_000, help="environment steps per training chunk")
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="result JSON path")
    # Generator / discriminator settings. Defaults: PPO as tuned for Pendulum-v1 (gamma 0.9, lr 1e-3, 10 epochs,
    # gSDE, 4 envs), discriminator as in imitation's GAIL docs/scripts (BasicRewardNet + RunningNorm input,
    # demo batch 1024, no replay beyond the last rollout).
    ap.add_argument("--generator", choices=["ppo", "sac"], default="ppo",
                    help="ppo: on-policy, as imitation's docs; sac: off-policy (imitation accepts any SB3 algorithm), "
                         "SB3's SAC defaults with --sac-lr, one environment, rewards from the discriminator at collection time")
    ap.add_argument("--sac-lr", type=float, default=1e-3)
    ap.add_argument("--sac-round", type=int, default=1000, help="SAC generator steps per GAIL round")
    ap.add_argument("--sac-learning-starts", type=int, default=1000)
    ap.add_argument("--n-envs", type=int, default=4)
    ap.add_argument("--n-steps", type=int, default=0,
                    help="PPO steps per env per rollout; 0 = largest divisor of eval_every/n_envs that is <= 1024, "
                         "so that a chunk is a whole number of GAIL rounds")
    ap.add_argument("--ppo-lr", type=float, default=1e-3)
    ap.add_argument("--ppo-batch-size", type=int, default=64,
                    help="PPO minibatch; lowered to the nearest divisor of the rollout size if one is >= half of it")
    ap.add_argument("--ppo-epochs", type=int, default=10)
    ap.add_argument("--gamma", type=float, default=0.9)
    ap.add_argument("--gae-lambda", type=float, default=0.95)
    ap.add_argument("--ent-coef", type=float, default=0.0)
    ap.add_argument("--clip-range", type=float, default=0.2)
    ap.add_argument("--no-sde", action="store_true", help="plain Gaussian exploration instead of gSDE")
    ap.add_argument("--sde-sample-freq", type=int, default=4)
    ap.add_argument("--demo-batch-size", type=int, default=1024)
    ap.add_argument("--disc-updates", type=int, default=4, help="discriminator updates per GAIL round")
    ap.add_argument("--disc-lr", type=float, default=1e-3)
    ap.add_argument("--replay-capacity", type=int, default=0,
                    help="generator replay buffer (transitions); 0 = one rollout (imitation's default)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args(argv)
    for name in ("budget", "eval_every", "eval_episodes", "n_envs"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.eval_every > args.budget:
        ap.error("--eval-every must not exceed --budget")
    return args


def load_demos(path: str):
    """The npz as a dict of arrays, checked; exits with a clear message on a missing key or bad shape."""
    import numpy as np

    p = Path(path)
    if not p.is_file():
        sys.exit(f"error: demo file not found: {p}")
    with np.load(p, allow_pickle=False) as z:
        missing = [k for k in REQUIRED_KEYS if k not in z.files]
        if missing:
            sys.exit(f"error: {p} lacks key(s) {missing}; it has {sorted(z.files)}; "
                     f"required: {list(REQUIRED_KEYS)}")
        d = {k: z[k] for k in REQUIRED_KEYS}
    n = len(d["obs"])
    for k in REQUIRED_KEYS:
        if len(d[k]) != n:
            sys.exit(f"error: {p}: '{k}' has {len(d[k])} rows, 'obs' has {n}")
    if d["obs"].shape != d["next_obs"].shape:
        sys.exit(f"error: {p}: obs {d['obs'].shape} and next_obs {d['next_obs'].shape} differ in shape")
    for k in ("dones", "terminated"):
        if d[k].ndim != 1:
            sys.exit(f"error: {p}: '{k}' must be 1-D, got shape {d[k].shape}")
        d[k] = d[k].astype(bool)
    if np.any(d["terminated"] & ~d["dones"]):
        sys.exit(f"error: {p}: a 'terminated' transition is not marked in 'dones'")
    if n == 0:
        sys.exit(f"error: {p}: no transitions")
    for k in ("obs", "actions", "next_obs"):
        d[k] = d[k].astype(np.float32)
    if d["actions"].ndim == 1:
        d["actions"] = d["actions"][:, None]
    return d


def pick_n_steps(eval_every: int, n_envs: int, cap: int = 1024) -> int:
    if eval_every % n_envs:
        sys.exit(f"error: --eval-every {eval_every} is not a multiple of --n-envs {n_envs}; "
                 "pass --n-steps to choose the rollout length yourself")
    per_env = eval_every // n_envs
    best = max(d for d in range(1, min(per_env, cap) + 1) if per_env % d == 0)
    if best < 32:
        sys.exit(f"error: no rollout length in [32, {cap}] divides eval_every/n_envs = {per_env}; pass --n-steps")
    return best


def make_env(env_id: str):
    """``env_id``, or for a v5 task this gymnasium lacks, its v4 with the v5 observation (see V4_FOR_V5)."""
    import gymnasium as gym

    if env_id in V4_FOR_V5 and env_id not in gym.registry:
        old, dim = V4_FOR_V5[env_id]
        env = gym.make(old)
        low, high = env.observation_space.low[:dim], env.observation_space.high[:dim]
        return _Trim(env, dim, low, high)
    return gym.make(env_id)


def _Trim(env, dim, low, high):  # noqa: N802 - a small ObservationWrapper built here so gymnasium is imported lazily
    import gymnasium as gym

    class Trim(gym.ObservationWrapper):
        def __init__(self, inner):
            super().__init__(inner)
            self.observation_space = gym.spaces.Box(low, high, dtype=inner.observation_space.dtype)

        def observation(self, observation):
            return observation[:dim]

    return Trim(env)


def evaluate(policy, env_id: str, episodes: int, seed: int) -> float:
    """Mean undiscounted TRUE return of deterministic actions, episode i reset with seed ``seed + 10_000 + i``."""
    import numpy as np

    env = make_env(env_id)
    env.action_space.seed(seed + 10_000)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + 10_000 + i)
        total, done = 0.0, False
        while not done:
            action, _ = policy.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def versions() -> dict:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for dist in ("imitation", "stable-baselines3", "gymnasium", "torch", "numpy"):
        try:
            out[dist] = version(dist)
        except Exception:  # noqa: BLE001 - a missing distribution is simply not reported
            out[dist] = None
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    demos = load_demos(args.demos)  # before the heavy imports, so a bad file fails fast

    import numpy as np
    import torch
    from stable_baselines3 import PPO
    from imitation.algorithms.adversarial.gail import GAIL
    from imitation.data import types
    from imitation.rewards.reward_nets import BasicRewardNet
    from imitation.util import logger as imit_logger
    from imitation.util.networks import RunningNorm
    from imitation.util.util import make_vec_env

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    n = len(demos["obs"])
    transitions = types.Transitions(
        obs=demos["obs"],
        acts=demos["actions"],
        infos=np.array([{} for _ in range(n)], dtype=object),
        next_obs=demos["next_obs"],
        dones=demos["dones"],
    )
    n_episodes = int(demos["dones"].sum())
    log(f"demos: {n} transitions, {n_episodes} episode ends ({int(demos['terminated'].sum())} terminations)")

    import gymnasium as gym

    env_name, post = args.env, None
    if args.env in V4_FOR_V5 and args.env not in gym.registry:
        env_name, dim = V4_FOR_V5[args.env]
        trim = make_env(args.env)  # for its observation bounds
        post = [lambda env, _i: _Trim(env, dim, trim.observation_space.low, trim.observation_space.high)]
        log(f"{args.env} is not in gymnasium {gym.__version__}: training on {env_name} with the v5 observation")
    if args.generator == "sac":
        args.n_envs = 1
    venv = make_vec_env(env_name, rng=np.random.default_rng(args.seed), n_envs=args.n_envs, parallel=False, post_wrappers=post)
    if venv.observation_space.shape != demos["obs"].shape[1:]:
        sys.exit(f"error: demo obs shape {demos['obs'].shape[1:]} != {args.env} obs {venv.observation_space.shape}")
    if venv.action_space.shape != demos["actions"].shape[1:]:
        sys.exit(f"error: demo action shape {demos['actions'].shape[1:]} != {args.env} "
                 f"action {venv.action_space.shape}")

    # imitation refuses variable-length episodes unless told. They occur when the task can terminate: when the demos
    # show terminations, or for a task known to terminate (an expert that never falls still has an agent that does).
    variable_horizon = bool(demos["terminated"].any()) or args.env.split("-")[0] in TERMINATING
    workdir = tempfile.mkdtemp(prefix="gail-peer-")
    quiet_logger = imit_logger.configure(folder=workdir, format_strs=["csv"])
    if args.generator == "sac":
        from stable_baselines3 import SAC

        learner = SAC("MlpPolicy", venv, learning_rate=args.sac_lr, learning_starts=args.sac_learning_starts,
                      seed=args.seed, device="cpu", verbose=0)
        round_steps, gen_settings = args.sac_round, {"generator": "stable_baselines3.SAC MlpPolicy (SB3 defaults)",
                                                      "sac_lr": args.sac_lr, "learning_starts": args.sac_learning_starts}
        if args.eval_every % round_steps:
            sys.exit(f"error: --eval-every {args.eval_every} is not a multiple of --sac-round {round_steps}")
    else:
        n_steps = args.n_steps or pick_n_steps(args.eval_every, args.n_envs)
        rollout = n_steps * args.n_envs
        if args.eval_every % rollout:
            log(f"warning: eval_every {args.eval_every} is not a multiple of the GAIL round ({rollout} steps); "
                "chunks will be rounded down to whole rounds")
        if args.eval_every < rollout:
            sys.exit(f"error: --eval-every {args.eval_every} is smaller than one GAIL round ({rollout} steps)")
        ppo_batch = min(args.ppo_batch_size, rollout)
        if rollout % ppo_batch:  # SB3 would leave a tiny truncated minibatch each epoch: use the nearest divisor below
            divisor = max(d for d in range(1, ppo_batch + 1) if rollout % d == 0)
            if divisor >= ppo_batch // 2:
                ppo_batch = divisor
        use_sde = not args.no_sde
        learner = PPO(
            "MlpPolicy",
            venv,
            n_steps=n_steps,
            batch_size=ppo_batch,
            n_epochs=args.ppo_epochs,
            learning_rate=args.ppo_lr,
            gamma=args.gamma,
            gae_lambda=args.gae_lambda,
            ent_coef=args.ent_coef,
            clip_range=args.clip_range,
            use_sde=use_sde,
            sde_sample_freq=args.sde_sample_freq if use_sde else -1,
            seed=args.seed,
            device="cpu",
            verbose=0,
        )
        round_steps = None
        gen_settings = {"generator": "stable_baselines3.PPO MlpPolicy", "n_envs": args.n_envs, "n_steps": n_steps,
                        "ppo_batch_size": ppo_batch, "ppo_epochs": args.ppo_epochs, "ppo_lr": args.ppo_lr, "gamma": args.gamma,
                        "gae_lambda": args.gae_lambda, "ent_coef": args.ent_coef, "clip_range": args.clip_range,
                        "use_sde": use_sde, "sde_sample_freq": args.sde_sample_freq if use_sde else None}
    reward_net = BasicRewardNet(
        observation_space=venv.observation_space,
        action_space=venv.action_space,
        normalize_input_layer=RunningNorm,
    )
    gail = GAIL(
        demonstrations=transitions,
        demo_batch_size=min(args.demo_batch_size, n),
        gen_replay_buffer_capacity=args.replay_capacity or None,
        **({"gen_train_timesteps": round_steps} if round_steps else {}),
        n_disc_updates_per_round=args.disc_updates,
        disc_opt_kwargs={"lr": args.disc_lr},
        venv=venv,
        gen_algo=learner,
        reward_net=reward_net,
        log_dir=workdir,
        custom_logger=quiet_logger,
        allow_variable_horizon=variable_horizon,  # never for Pendulum's fixed 200 steps
    )
    settings = {
        **gen_settings, "vec_env": "DummyVecEnv (imitation.util.util.make_vec_env, parallel=False)",
        "gail_round_steps": gail.gen_train_timesteps,
        "discriminator": "imitation BasicRewardNet(normalize_input_layer=RunningNorm), reward -log(1-D)",
        "demo_batch_size": min(args.demo_batch_size, n), "disc_updates_per_round": args.disc_updates,
        "disc_lr": args.disc_lr, "gen_replay_buffer_capacity": args.replay_capacity or gail.gen_train_timesteps,
        "eval_every": args.eval_every, "eval_episodes": args.eval_episodes, "eval": "deterministic, true reward",
        "eval_seeds": f"{args.seed + 10_000}..{args.seed + 10_000 + args.eval_episodes - 1}",
        "allow_variable_horizon": variable_horizon, "demo_transitions": n, "demo_episodes": n_episodes, "torch_threads": args.threads,
        "wall_seconds": "training only (GAIL.train), evaluation excluded",
    }
    log(f"{args.env}: budget {args.budget}, chunk {args.eval_every}, GAIL round {gail.gen_train_timesteps} steps "
        f"({args.generator}, {args.n_envs} envs), seed {args.seed}")

    curve = []
    train_seconds = 0.0
    ret0 = evaluate(learner, args.env, args.eval_episodes, args.seed)
    curve.append([0, 0.0, round(ret0, 3)])
    log(f"steps 0: true return {ret0:.1f}")
    while learner.num_timesteps + gail.gen_train_timesteps <= args.budget:
        chunk = min(args.eval_every, args.budget - learner.num_timesteps)
        if chunk < gail.gen_train_timesteps:
            break
        start = time.perf_counter()
        gail.train(chunk)
        train_seconds += time.perf_counter() - start
        ret = evaluate(learner, args.env, args.eval_episodes, args.seed)
        curve.append([int(learner.num_timesteps), round(train_seconds, 2), round(ret, 3)])
        log(f"steps {learner.num_timesteps}: true return {ret:.1f} (train wall {train_seconds:.1f}s)")

    result = {
        "library": "imitation",
        "versions": versions(),
        "env": args.env,
        "budget": args.budget,
        "seed": args.seed,
        "curve": curve,
        "best_return": max(row[2] for row in curve[1:]) if len(curve) > 1 else curve[0][2],
        "final_return": curve[-1][2],
        "env_steps": int(learner.num_timesteps),
        "train_wall_seconds": round(train_seconds, 2),
        "settings": settings,
        "demos": str(Path(args.demos).resolve()),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {out}: best {result['best_return']:.1f}, final {result['final_return']:.1f}, "
        f"{train_seconds:.1f}s training for {learner.num_timesteps} steps")
    venv.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
