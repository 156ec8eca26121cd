"""Datasets: card validation, loaders, and builders of the built-in datasets."""

from rewardlab.data.cards import Card, DataError, find_card, parse_card
from rewardlab.data.loaders import PreferenceData, TextDataConfig, TransitionData, TransitionDataConfig, load_preferences, load_transitions

__all__ = [
    "Card",
    "DataError",
    "PreferenceData",
    "TextDataConfig",
    "TransitionData",
    "TransitionDataConfig",
    "find_card",
    "load_preferences",
    "load_transitions",
    "parse_card",
]
