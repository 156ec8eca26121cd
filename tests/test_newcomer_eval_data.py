"""`rewardlab eval` on your own data, as a newcomer met it (issue 28): a `--column` typo scored without the prompt
and exited 0; a null answer was reported as missing; the offline `hf:` error named `data.name` instead of
`--data`; `--split train` was labelled test; an unknown `--data` did not say which forms it takes."""

from __future__ import annotations

import json

import mlflow
import pytest

from rewardlab import cli, tracking


def write_jsonl(path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def own_rows(n: int = 6) -> list[dict]:
    return [{"question": f"What is {i} + 3?", "chosen": f"It is {i + 3}.", "rejected": f"It is {i + 5}.",
             "split": "train" if i < n - 2 else "test"} for i in range(n)]


def _no_evaluation_run() -> bool:
    mlflow.set_tracking_uri(tracking.resolve_uri())
    return mlflow.search_runs(search_all_experiments=True).empty


def test_a_column_map_naming_a_column_the_data_lacks_is_refused_before_the_reward_loads(workdir, reward_folder, capsys):
    path = write_jsonl(workdir / "my.jsonl", own_rows())
    out = workdir / "never.json"
    assert cli.main(["eval", str(reward_folder), "--data", path, "--column", "prompt=nope", "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--column prompt=nope" in err and "has no column 'nope'" in err, err
    assert "its columns: chosen, question, rejected, split" in err and "Traceback" not in err
    assert not out.exists() and _no_evaluation_run()
    # checked before the reward is loaded: a reward that does not exist is not what is reported
    assert cli.main(["eval", str(workdir / "no-such-reward"), "--data", path, "--column", "prompt=nope"]) == 2
    assert "has no column 'nope'" in capsys.readouterr().err
    assert cli.main(["eval", str(reward_folder), "--data", path, "--column", "prompt=question", "--no-mlflow"]) == 0


def test_a_null_answer_is_reported_as_null_not_missing(workdir, reward_folder, capsys):
    path = write_jsonl(workdir / "nulls.jsonl", [{"prompt": "q", "chosen": "a", "rejected": None},
                                                 {"prompt": "q", "chosen": "a"}])
    assert cli.main(["eval", str(reward_folder), "--data", path, "--no-mlflow"]) == 2
    err = capsys.readouterr().err
    assert "row 1: field 'rejected' is null (found None)" in err and "row 2: field 'rejected' is missing" in err, err
    assert "2 bad rows, nothing was scored" in err and "--column rejected=your_column" in err


def test_the_offline_hub_error_names_the_data_flag(workdir, reward_folder, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert cli.main(["eval", str(reward_folder), "--data", "hf:nobody/no-such-dataset", "--no-mlflow"]) == 2
    err = capsys.readouterr().err
    assert "error: --data hf:nobody/no-such-dataset: could not load it" in err and "data.name" not in err, err
    assert "needs network" in err and "Traceback" not in err


def test_the_report_names_the_split_that_was_evaluated(workdir, reward_folder, capsys):
    path = write_jsonl(workdir / "split.jsonl", own_rows(8))
    assert cli.main(["eval", str(reward_folder), "--data", path, "--column", "prompt=question", "--split", "train", "--no-mlflow"]) == 0
    printed = capsys.readouterr().out
    assert "over 6 pairs (train)" in printed and "(pairs, train)" in printed and "(test)" not in printed, printed
    assert cli.main(["eval", str(reward_folder), "--data", path, "--column", "prompt=question", "--no-mlflow"]) == 0
    assert "over 2 pairs (test)" in capsys.readouterr().out  # the default: the test rows of a split column


@pytest.mark.parametrize("spec, hint", [("nosuchname", ""), ("Anthropic/hh-rlhf", "a hub dataset is written hf:Anthropic/hh-rlhf")])
def test_an_unknown_data_name_lists_the_forms_data_takes(workdir, reward_folder, capsys, spec, hint):
    assert cli.main(["eval", str(reward_folder), "--data", spec, "--no-mlflow"]) == 2
    err = capsys.readouterr().err
    assert f"--data {spec}: no such file, and not a built-in dataset (math-answers" in err and hint in err, err
    assert "hf:<id>" in err and ".jsonl" in err and "file" in err and "Traceback" not in err
