"""The transition half of the interface: a regression MLP reward trains, saves, loads (folder and MLflow), and checks input."""

from __future__ import annotations

import numpy as np
import pytest

from rewardlab import learners, recipes, rewards, tracking
from rewardlab.learners import transition_regression


@pytest.fixture(scope="module")
def trained(module_workdir):
    config, text, _ = recipes.load("pendulum_reward", ["train.epochs=25"])
    return learners.train(config, recipe_text=text)


def test_regression_reward_fits_the_true_reward(trained):
    assert trained["losses"][-1] < trained["losses"][0] / 5
    assert trained["metrics"]["r2"] > 0.9  # held-out episodes


def test_loads_back_from_folder_and_mlflow_with_equal_scores(trained):
    rng = np.random.default_rng(0)
    obs, act, nxt = rng.normal(size=(16, 3)), rng.uniform(-2, 2, size=(16, 1)), rng.normal(size=(16, 3))
    from_folder = rewards.load(f"{trained['output_dir']}/reward")
    from_registry = rewards.load(trained["model_uri"])
    from_run = rewards.load(f"runs:/{trained['run_id']}/model")
    tracking.set_alias("pendulum-reward", "champion", 1)
    from_alias = rewards.load("models:/pendulum-reward@champion")
    assert isinstance(from_registry, rewards.TransitionReward)
    expected = from_folder.score(obs, act, nxt, np.zeros(16))
    assert expected.shape == (16,) and np.std(expected) > 0
    np.testing.assert_array_equal(from_registry.score(obs, act, nxt, np.zeros(16)), expected)
    np.testing.assert_array_equal(from_run.score(obs, act, nxt, np.zeros(16)), expected)
    np.testing.assert_array_equal(from_alias.score(obs, act, nxt, np.zeros(16)), expected)
    with pytest.raises(FileNotFoundError, match="models:/pendulum-reward/9"):
        rewards.load("models:/pendulum-reward/9")
    # reward: higher near upright and still (theta=0) than hanging down (theta=pi)
    upright = from_folder.score(np.array([[1.0, 0.0, 0.0]]), np.zeros((1, 1)), np.zeros((1, 3)), np.zeros(1))
    down = from_folder.score(np.array([[-1.0, 0.0, 0.0]]), np.zeros((1, 1)), np.zeros((1, 3)), np.zeros(1))
    assert upright[0] > down[0] + 3


def test_mlflow_run_holds_params_metrics_dataset_plot_and_model(trained):
    run = tracking.get_run_data(trained["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == "25"
    assert run.data.metrics["eval/r2"] > 0.9
    assert "pendulum-random-train" in tracking.dataset_inputs(trained["run_id"])
    assert "plots/fit.png" in tracking.list_artifacts(trained["run_id"], "plots")
    assert trained["model_uri"] == "models:/pendulum-reward/1"


def test_bad_transitions_raise_errors_that_name_the_field(trained):
    reward = rewards.load(f"{trained['output_dir']}/reward")
    ok = np.zeros((2, 3))
    with pytest.raises(rewards.RewardInputError, match="next_obs: contains NaN or inf"):
        reward.score(ok, np.zeros((2, 1)), np.array([[0, np.nan, 0], [0, 0, 0]]), np.zeros(2))
    with pytest.raises(rewards.RewardInputError, match="batch sizes differ"):
        reward.score(ok, np.zeros((3, 1)), ok, np.zeros(2))
    with pytest.raises(rewards.RewardInputError, match=r"expected shapes \(N, 3\)"):
        reward.score(np.zeros((2, 4)), np.zeros((2, 1)), np.zeros((2, 4)), np.zeros(2))


def test_a_crash_mid_training_resumes_to_the_same_model_as_an_uninterrupted_run(workdir):
    """Per-epoch checkpoints (model, optimiser, data-order generator): a resumed run ends bit-identical to one
    that never stopped, in the same MLflow run, with every epoch's metrics logged once."""
    def crash_at(n):
        def callback(epoch):
            if epoch == n:
                raise RuntimeError(f"simulated crash after epoch {n}")
        return callback

    overrides = ["train.epochs=6", "tracking.register_model=false"]
    whole, _, _ = recipes.load("pendulum_reward", [*overrides, "name=tr-whole"])
    reference = learners.train(whole)
    config, text, _ = recipes.load("pendulum_reward", [*overrides, "name=tr-crash"])
    with pytest.raises(RuntimeError, match="simulated crash after epoch 2"):
        learners.train(config, recipe_text=text, callbacks=[crash_at(2)])
    import json

    crashed_id = json.loads((config.out() / "run.json").read_text())["run_id"]
    assert tracking.get_run_data(crashed_id).info.status == "FAILED"
    resumed = learners.train(config, recipe_text=text, resume=True)
    assert resumed["run_id"] == crashed_id
    assert resumed["losses"] == reference["losses"] and resumed["metrics"] == reference["metrics"]
    assert [s for s, _ in tracking.metric_history(resumed["run_id"], "train/mse")] == [0, 1, 2, 3, 4, 5]
    assert tracking.get_run_data(resumed["run_id"]).info.status == "FINISHED"
