"""The s2e-explanations builder: real PettingZoo / gymnasium play, small builds, checked against its card."""

import numpy as np
import pytest

from rewardlab.data import DataError, find_card
from rewardlab.data.concepts import ALL_CONCEPT_SETS, connect4_concepts, explain
from rewardlab.data.s2e_dataset import LUNAR_MAX_ROWS, S2EDatasetConfig, build, episode_plan

SMALL = {"connect4": S2EDatasetConfig(domain="connect4", episodes=6, seed=3),
         "lunarlander": S2EDatasetConfig(domain="lunarlander", episodes=6, seed=3)}


@pytest.fixture(scope="module")
def small_rows():
    return {domain: build(cfg) for domain, cfg in SMALL.items()}


@pytest.mark.parametrize("domain", ["connect4", "lunarlander"])
def test_small_build_validates_against_card(small_rows, domain):
    rows = small_rows[domain]
    assert rows
    find_card("s2e-explanations").validate_rows(rows)
    assert {r["domain"] for r in rows} == {domain}
    assert {r["episode"] for r in rows} == set(range(6))
    assert {r["policy"] for r in rows} == {"random", "reasonable"}
    width = 42 if domain == "connect4" else 8
    assert all(len(r["state"]) == len(r["next_state"]) == width and len(r["action"]) == 1 for r in rows)
    if domain == "lunarlander":
        per_episode = np.bincount([r["episode"] for r in rows])
        assert per_episode.max() <= LUNAR_MAX_ROWS


@pytest.mark.parametrize("domain", ["connect4", "lunarlander"])
def test_explanations_match_concepts(small_rows, domain):
    for r in small_rows[domain]:
        assert r["concepts"] == sorted(r["concepts"])
        assert tuple(r["concepts"]) in ALL_CONCEPT_SETS[domain]
        assert r["explanation"] == explain(r["concepts"], domain)


def test_connect4_concepts_recomputed(small_rows):
    for r in small_rows["connect4"]:
        board = np.asarray(r["state"]).reshape(6, 7)
        assert set(np.unique(board)) <= {0, 1, 2}
        assert list(connect4_concepts(board, r["action"][0])) == r["concepts"]
        after = np.asarray(r["next_state"]).reshape(6, 7)
        assert (after != board).sum() == 1 and after[after != board][0] == 1


@pytest.mark.parametrize("domain", ["connect4", "lunarlander"])
def test_deterministic_for_a_seed(small_rows, domain):
    assert build(SMALL[domain]) == small_rows[domain]
    other = S2EDatasetConfig(domain=domain, episodes=6, seed=4)
    assert build(other) != small_rows[domain]


@pytest.mark.parametrize("domain", ["connect4", "lunarlander"])
def test_split_is_by_episode(small_rows, domain):
    splits = {}
    for r in small_rows[domain]:
        splits.setdefault(r["episode"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits.values())
    assert {s for ss in splits.values() for s in ss} == {"train", "test"}


def test_episode_plan_counts():
    plan = episode_plan(S2EDatasetConfig(episodes=10, policy_mix=0.3, test_fraction=0.2))
    assert sum(p == "reasonable" for p, _ in plan) == 3
    assert sum(s == "test" for _, s in plan) == 2


def test_reasonable_connect4_policy_wins_and_blocks_more():
    def rate(mix):
        rows = build(S2EDatasetConfig(domain="connect4", episodes=20, policy_mix=mix, seed=1))
        hits = sum(bool({"win", "block_win"} & set(r["concepts"])) for r in rows)
        return hits / len(rows), sum("block_win" in r["concepts"] for r in rows)

    (random_rate, random_blocks), (reasonable_rate, reasonable_blocks) = rate(0.0), rate(1.0)
    assert reasonable_rate > random_rate
    assert reasonable_blocks > random_blocks


@pytest.mark.parametrize(
    "options, setting",
    [
        ({"domain": "chess"}, "domain"),
        ({"episodes": 0}, "episodes"),
        ({"policy_mix": 1.5}, "policy_mix"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_settings_raise_data_error(options, setting):
    with pytest.raises(DataError, match=setting):
        S2EDatasetConfig(**options)
