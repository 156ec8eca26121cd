"""Small command-line defects a newcomer hit (issue 28), each through ``cli.main``: strict JSON from `eval --json`,
a missing local backbone, `--option` without a value, help examples that name real folders, aligned recipe lists."""

from __future__ import annotations

import json
import re

import pytest

from rewardlab import cli


def test_eval_json_is_strict_json_with_null_where_there_are_no_pairs(workdir, reward_folder, capsys):
    rows = [{"prompt": f"What is {a} + 1?", "chosen": f"{a + 1}.", "rejected": f"{a + 2}."} for a in range(6)]  # equal lengths
    (workdir / "same_length.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli.main(["eval", str(reward_folder), "--data", "same_length.jsonl", "--no-mlflow", "--json", "out.json"]) == 0
    out = capsys.readouterr().out
    text = (workdir / "out.json").read_text()
    assert "NaN" not in text
    report = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert report["accuracy_chosen_shorter"] is None and report["pairs_chosen_shorter"] == 0
    assert "shorter no pairs (0 pairs)" in out and "nan" not in out


def test_eval_refuses_max_pairs_zero(workdir, reward_folder, capsys):
    assert cli.main(["eval", str(reward_folder), "--max-pairs", "0", "--no-mlflow"]) == 2
    assert "--max-pairs 0: expected at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("path", ["/no/such/model/folder", "./no-such-folder", "../no/such"])
def test_a_local_backbone_path_that_does_not_exist_is_a_message_not_a_traceback(workdir, capsys, path):
    assert cli.main(["train", "quickstart", "--set", f"model.backbone={path}"]) == 2
    err = capsys.readouterr().err
    assert f"model.backbone: {path} looks like a local path, but no such folder exists" in err and "Traceback" not in err


def test_option_without_a_value_says_key_value(capsys):
    assert cli.main(["data", "build", "math-answers", "--option", "seed"]) == 2
    err = capsys.readouterr().err
    assert "--option 'seed': expected KEY=VALUE" in err and "valid integer" not in err


def test_help_examples_name_folders_that_training_writes(capsys):
    for argv in (["--help"], ["eval", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
        text = capsys.readouterr().out
        assert "outputs/quickstart" not in text and "runs/quickstart/" not in text
        assert "runs/quickstart-bt/reward" in text
        assert "mlartifacts" in text or argv == ["eval", "--help"]


def test_recipes_list_columns_line_up(capsys):
    assert cli.main(["recipes", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 10 and any(len(line.split()[0]) > 24 for line in lines)  # a name longer than the old fixed width
    learner_at = {line.index(line.split()[1], len(line.split()[0])) for line in lines}
    description_at = {line.index(line.split()[2], min(learner_at) + len(line.split()[1])) for line in lines}
    assert len(learner_at) == 1 and len(description_at) == 1, lines
