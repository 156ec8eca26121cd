"""expert-demos: the shipped Pendulum demonstrations are an expert far above random, the typed view and its npz
round-trip, the settings' errors, and one small real generation that is cached, reused and reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from rewardlab import cli
from rewardlab.data import DataError, find_card
from rewardlab.data.expert_demos import SHIPPED, Demos, ExpertDemosConfig, build, cache_path, expert_path, load_demos

TINY = ExpertDemosConfig(expert_steps=300, episodes=1, random_episodes=1, seed=3)


@pytest.fixture(scope="module")
def shipped_rows():
    assert SHIPPED["Pendulum-v1"].exists()
    return build()


def test_shipped_inverted_double_pendulum_demos_load_without_training_an_expert(tmp_path, monkeypatch):
    monkeypatch.setenv("REWARDLAB_CACHE", str(tmp_path))  # an empty cache: nothing may be trained or written
    demos = load_demos(ExpertDemosConfig(task="InvertedDoublePendulum-v5"))
    assert demos.n_episodes == 10 and demos.obs.shape[1] == 9
    assert demos.expert_return > demos.random_return + 1000  # random play falls within a few steps
    assert not any(tmp_path.rglob("*.zip"))


def test_shipped_pendulum_demos_are_an_expert_far_above_random(shipped_rows):
    find_card("expert-demos").validate_rows(shipped_rows)
    demos = load_demos()
    assert demos.env_id == "Pendulum-v1"
    assert demos.n_episodes == 10 and len(demos.random_returns) == 10
    assert len(demos) == 10 * 200 and len(shipped_rows) == 20 * 200
    assert np.bincount(demos.episode).tolist() == [200] * 10
    assert demos.obs.dtype == np.float32 and demos.obs.shape == (2000, 3) and demos.actions.shape == (2000, 1)
    assert demos.truncated.sum() == 10 and not demos.terminated.any()  # Pendulum only ends at its 200-step limit
    # measured: expert about -150 per episode, random about -1200
    assert demos.expert_return > -300, demos.expert_returns
    assert demos.random_return < -900, demos.random_returns
    assert demos.expert_returns.min() > demos.random_returns.max()
    # the rows carry the true reward: next_obs follows obs within an episode
    assert np.array_equal(demos.obs[1:200], demos.next_obs[:199])


def test_normalized_score_maps_random_to_zero_and_expert_to_one():
    demos = load_demos()
    assert demos.normalized_score(demos.expert_return) == pytest.approx(1.0)
    assert demos.normalized_score(demos.random_return) == pytest.approx(0.0)
    midway = (demos.expert_return + demos.random_return) / 2
    assert np.allclose(demos.normalized_score(np.array([demos.random_return, midway])), [0.0, 0.5])


def test_subset_and_npz_round_trip(tmp_path):
    demos = load_demos().subset(3)
    assert demos.n_episodes == 3 and len(demos) == 600 and sorted(set(demos.episode.tolist())) == [0, 1, 2]
    assert len(demos.random_returns) == 10
    path = demos.to_npz(tmp_path / "demos.npz")
    with np.load(path) as npz:
        assert sorted(npz.files) == ["actions", "dones", "next_obs", "obs", "terminated"]
        for key in ("obs", "actions", "next_obs"):
            assert npz[key].dtype == np.float32
            np.testing.assert_array_equal(npz[key], getattr(demos, key))
        assert npz["dones"].dtype == bool and npz["terminated"].dtype == bool
        assert np.flatnonzero(npz["dones"]).tolist() == [199, 399, 599]
        np.testing.assert_array_equal(npz["terminated"], demos.terminated)
    with pytest.raises(DataError, match="1..3 episodes"):
        demos.subset(4)


def test_unknown_task_and_bad_settings_name_what_is_supported(capsys):
    with pytest.raises(DataError, match="unknown task 'CartPole-v1'; supported tasks: Pendulum-v1, InvertedPendulum-v5, InvertedDoublePendulum-v5, Hopper-v5"):
        ExpertDemosConfig(task="CartPole-v1")
    with pytest.raises(DataError, match="unknown algo 'ppo'"):
        ExpertDemosConfig(algo="ppo")
    with pytest.raises(DataError, match="episodes must be an integer >= 1"):
        ExpertDemosConfig(episodes=0)
    assert cli.main(["data", "build", "expert-demos", "--option", "task=Walker2d-v5"]) == 2
    assert "supported tasks: Pendulum-v1" in capsys.readouterr().err


def test_small_generation_is_cached_reused_and_reproducible(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REWARDLAB_CACHE", str(tmp_path))
    rows = build(TINY, progress=False)
    find_card("expert-demos").validate_rows(rows)
    assert [sum(r["policy"] == p for r in rows) for p in ("expert", "random")] == [200, 200]
    assert {r["episode"] for r in rows} == {0, 1}
    assert cache_path(TINY).exists() and expert_path(TINY).exists()

    # a second call reads the cache, not a new rollout: shorten the cached file and see it come back
    from rewardlab.data.rows import write_jsonl

    write_jsonl(cache_path(TINY), rows[:5])
    assert build(TINY, progress=False) == rows[:5]

    # more episodes with the same expert: the cached expert is loaded (not retrained), and its first episode is
    # the same one as before, transition for transition
    trained_at = expert_path(TINY).stat().st_mtime_ns
    more = build(ExpertDemosConfig(expert_steps=300, episodes=2, random_episodes=1, seed=3), progress=False)
    assert expert_path(TINY).stat().st_mtime_ns == trained_at
    assert [r for r in more if r["episode"] == 0] == rows[:200]

    # regenerating retrains from the seed and gives the same rows, bit for bit (CPU, same thread count)
    assert build(TINY, regenerate=True, progress=False) == rows

    # the CLI prints the counts and returns, and writes the JSONL and the npz
    assert cli.main(["data", "build", "expert-demos", "--option", "expert_steps=300", "--option", "episodes=1",
                     "--option", "random_episodes=1", "--option", "seed=3", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "400 transitions" in out and "mean return expert" in out
    with np.load(tmp_path / "out" / "demos.npz") as npz:
        assert npz["obs"].shape == (200, 3) and npz["dones"].sum() == 1
    assert Demos.from_rows(rows, "Pendulum-v1").n_episodes == 1
