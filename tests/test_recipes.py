"""Recipe errors: each names the file, the key and what was expected, before any work; the CLI shows no traceback."""

from __future__ import annotations

import pytest

from rewardlab import cli, recipes
from rewardlab.recipes import RecipeError


def write(tmp_path, text: str):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_bundled_quickstart_validates_with_defaults():
    config, text, path = recipes.load("quickstart")
    assert config.learner == "bradley_terry"
    assert config.model.backbone == "embedded:smollm2-135m-instruct"
    assert path.name == "quickstart.yaml" and "learner: bradley_terry" in text


def test_unknown_key_names_file_key_and_the_allowed_keys(tmp_path):
    path = write(tmp_path, "learner: bradley_terry\nname: x\ntrain:\n  learning_rat: 0.1\n")
    with pytest.raises(RecipeError) as err:
        recipes.load(path)
    msg = str(err.value)
    assert str(path) in msg and "train.learning_rat" in msg and "unknown key" in msg
    assert "learning_rate" in msg  # the expected keys are listed


def test_wrong_type_names_key_expected_and_found(tmp_path):
    path = write(tmp_path, "learner: bradley_terry\nname: x\ntrain:\n  batch_size: lots\n")
    with pytest.raises(RecipeError) as err:
        recipes.load(path)
    msg = str(err.value)
    assert "train.batch_size" in msg and "integer" in msg and "'lots'" in msg


def test_missing_data_file_fails_before_work(tmp_path):
    path = write(tmp_path, "learner: bradley_terry\nname: x\ndata:\n  path: nowhere.jsonl\n")
    with pytest.raises(RecipeError) as err:
        recipes.load(path)
    assert "data.path" in str(err.value) and "nowhere.jsonl" in str(err.value)


def test_unknown_learner_and_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="key 'learner': expected one of bradley_terry"):
        recipes.load(write(tmp_path, "learner: magic\nname: x\n"))
    with pytest.raises(RecipeError, match="recipe file not found"):
        recipes.load(tmp_path / "absent.yaml")


def test_set_overrides_are_typed_and_checked():
    config, text, _ = recipes.load("quickstart", ["train.max_steps=7", "model.freeze_layers=3", "data.max_train_pairs=16"])
    assert (config.train.max_steps, config.model.freeze_layers, config.data.max_train_pairs) == (7, 3, 16)
    assert "# overrides: train.max_steps=7" in text
    with pytest.raises(RecipeError, match="expected key.path=value"):
        recipes.load("quickstart", ["train.max_steps"])
    with pytest.raises(RecipeError, match="train.nope"):
        recipes.load("quickstart", ["train.nope=1"])


def test_a_number_in_an_override_path_indexes_a_list():
    config, _, _ = recipes.load("spo_oracle", ["rewards.0.flip_rate=0.3", "rewards.1.weight=0.5"])
    assert (config.rewards[0].flip_rate, config.rewards[0].win_rate, config.rewards[1].weight) == (0.3, True, 0.5)
    with pytest.raises(RecipeError, match="a list of 2; expected an index 0..1, found '2'"):
        recipes.load("spo_oracle", ["rewards.2.weight=1"])
    with pytest.raises(RecipeError, match="'seed' holds a value"):
        recipes.load("quickstart", ["seed.x=1"])


def test_cli_prints_the_message_and_no_traceback(tmp_path, capsys):
    path = write(tmp_path, "learner: bradley_terry\nname: x\nmodel:\n  max_length: 2\n")
    rc = cli.main(["train", str(path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "model.max_length" in err and "greater than 8" in err
    assert "Traceback" not in err


def test_recipes_list_shows_every_bundled_recipe(capsys):
    assert cli.main(["recipes", "list"]) == 0
    out = capsys.readouterr().out
    for name in recipes.names():
        assert name in out
    assert "bradley_terry" in out and "transition_regression" in out


def test_a_backbone_that_cannot_be_loaded_is_refused_at_validation_naming_the_key(tmp_path, monkeypatch, capsys):
    from rewardlab import cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no hub retries: the cache is the only place a hub id could be
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "quickstart", "--set", "model.backbone=nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "model.backbone: 'nonexistent' is not an embedded model" in err and "Traceback" not in err
    assert cli.main(["train", "quickstart", "--set", "model.freeze_layers=40"]) == 2
    err = capsys.readouterr().err
    assert "model.backbone: embedded:smollm2-135m-instruct has 30 blocks, so freeze_layers=40" in err
    assert "model.freeze_layers takes 0..30" in err
    assert cli.main(["train", "quickstart", "--set", f"model.backbone={tmp_path}"]) == 2
    assert "holds no config.json" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "runs").exists()  # refused before any work


@pytest.mark.parametrize("recipe, override, needle", [
    ("quickstart", "data.builder.n_question=3", "data.builder: unknown setting 'n_question' of math-answers (its settings: model, n_questions"),
    ("goal_rm_steps", "data.builder.samples_per_question=x", "data.builder.samples_per_question: input should be a valid integer"),
    ("gail_pendulum", "demos.builder.tsk=Hopper-v5", "demos.builder: unknown setting 'tsk' of expert-demos (its settings: task, algo"),
    ("polar_pretrain", "pool.builder.n_topic=3", "pool.builder: unknown setting 'n_topic' of policy-trajectories"),
    ("s2e_connect4", "data.episodes=-1", "episodes must be a positive integer, found -1"),
    ("pendulum_reward", "data.builder.episode=1", "data.builder: unknown setting 'episode' of pendulum-random"),
])
def test_a_typo_under_a_builder_fails_when_the_recipe_is_read(recipe, override, needle, capsys):
    """Builder settings are typed into the recipe (the dataset registry's settings classes): `recipes show`
    catches what used to pass until the data was built."""
    with pytest.raises(RecipeError) as err:
        recipes.load(recipe, [override])
    assert needle.lower() in str(err.value).lower()
    assert cli.main(["recipes", "show", recipe, "--set", override]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_resolved_prints_every_builder_default(capsys):
    from rewardlab.data.math_steps import MathStepsConfig

    assert cli.main(["recipes", "show", "goal_rm_steps", "--resolved"]) == 0
    out = capsys.readouterr().out
    defaults = MathStepsConfig()
    for field in ("n_questions", "samples_per_question", "max_new_tokens", "shifted_temperature"):
        assert f"    {field}: {getattr(defaults, field)}" in out, field


def test_a_builder_setting_reaches_the_builder_typed():
    from rewardlab.data.math_answers import MathAnswersConfig

    config, _, _ = recipes.load("quickstart", ["data.builder.temperature=1"])
    assert config.data.builder == MathAnswersConfig(temperature=1.0)
    with pytest.raises(RecipeError, match="data.builder: only the built-in builders"):
        recipes.load("quickstart", ["data.name=Anthropic/hh-rlhf", "data.builder.seed=1"])


@pytest.mark.parametrize("name", recipes.names())
def test_every_bundled_recipe_validates(name, capsys):
    """GPU recipes name hub models this machine cannot reach: `recipes show` validates them and says so; training
    would refuse them here (see the backbone test above)."""
    assert cli.main(["recipes", "show", name]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if name.startswith("gpu_"):
        assert "is not in the local Hugging Face cache and not reachable from here" in err
