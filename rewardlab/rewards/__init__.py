"""The shared reward interface: protocols, ``load(uri)``, and the inference-side reward classes.

Consumers (serving, RLHF, imitation) import this package and never a learner.
"""

from __future__ import annotations

from pathlib import Path

from rewardlab.rewards.base import Chat, RewardInputError, TextReward, TransitionReward, modality
from rewardlab.rewards.registry import REWARD_JSON, class_for, kinds, read_reward_json, register, write_reward_json
from rewardlab.rewards.concept import ConceptShapingReward
from rewardlab.rewards.discriminator import DiscriminatorReward
from rewardlab.rewards.goal import GoalTextReward
from rewardlab.rewards.polar import PolarReward
from rewardlab.rewards.text import ScalarTextReward
from rewardlab.rewards.transition import MLPTransitionReward

__all__ = [
    "Chat",
    "ConceptShapingReward",
    "DiscriminatorReward",
    "GoalTextReward",
    "MLPTransitionReward",
    "PolarReward",
    "REWARD_JSON",
    "RewardInputError",
    "ScalarTextReward",
    "TextReward",
    "TransitionReward",
    "kinds",
    "load",
    "modality",
    "resolve_folder",
    "register",
    "write_reward_json",
]

MLFLOW_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")


def find_reward_folder(root: Path) -> Path:
    """The folder holding ``reward.json``: ``root`` itself, or the one place below it (an MLflow download)."""
    if (root / REWARD_JSON).exists():
        return root
    found = sorted(p.parent for p in root.rglob(REWARD_JSON))
    if len(found) != 1:
        raise FileNotFoundError(f"{root}: expected one {REWARD_JSON} in this folder or below it, found {len(found)}")
    return found[0]


def load(uri: str | Path, **kwargs):
    """Return the Reward stored at ``uri``.

    ``uri`` is a trainer's output folder, or an MLflow URI: ``models:/name@alias``, ``models:/name/version``
    or ``runs:/<run_id>/model``, or a running ``rewardlab serve`` at ``http://host:port`` (kwargs ``api_key``,
    ``timeout``; the key defaults to ``$REWARDLAB_API_KEY``). Other ``kwargs`` go to the class (``device``, ...).
    """
    text = str(uri)
    if text.startswith(("http://", "https://")):
        from rewardlab.rewards.remote import connect

        return connect(text, **kwargs)
    folder = resolve_folder(text)
    meta = read_reward_json(folder)
    reward = class_for(meta["kind"]).from_folder(folder, **kwargs)
    reward.normalization = meta.get("normalization")  # mean, std, quantiles on held-out answers (text learners)
    return reward


def resolve_folder(uri: str | Path) -> Path:
    """The local reward folder (the one holding ``reward.json``) of a folder path or an MLflow URI (downloaded)."""
    text = str(uri)
    if text.startswith(MLFLOW_SCHEMES):
        from rewardlab import tracking

        return find_reward_folder(tracking.download(text))
    folder = Path(text)
    if folder.is_symlink() and not folder.exists():  # a finished run's folder links to the store's copy
        raise FileNotFoundError(f"{text}: links to the MLflow store's copy of the reward, {folder.readlink()}, which no longer "
                                "exists (was the store's mlartifacts/ folder moved or deleted?)")
    if not folder.is_dir():
        raise FileNotFoundError(f"{text}: not a folder and not an MLflow URI (models:/..., runs:/...)")
    return find_reward_folder(folder)
