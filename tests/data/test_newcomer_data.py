"""What a newcomer hit with their own data (issue 28): a column-map typo that trained without the prompt, a
``data.columns`` on a built-in dataset ignored, ``data validate --card preference-pairs`` disagreeing with what
``train`` and ``eval`` accept, one line that is not JSON hiding every other bad row, a null reported as missing,
and an unknown ``data.name`` that did not say how to name a hub dataset or a file."""

from __future__ import annotations

import json

import mlflow
import pytest

from rewardlab import cli, tracking
from rewardlab.data import DataError, TextDataConfig, load_preferences
from rewardlab.data.external import load_eval_rows

USER = lambda text: {"role": "user", "content": text}  # noqa: E731
BOT = lambda text: {"role": "assistant", "content": text}  # noqa: E731
SMALL = ["--set", "model.backbone=embedded:minilm-l6", "--set", "model.freeze_layers=0", "--set", "train.max_steps=1",
         "--set", "name=newcomer-typo"]  # were the typo not caught, a one-step run on MiniLM


def write_jsonl(path, rows: list) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def own_rows(n: int = 8) -> list[dict]:
    return [{"question": f"What is {i} + 3?", "chosen": f"It is {i + 3}.", "rejected": f"It is {i + 5}.", "topic": "add"}
            for i in range(n)]


def test_a_column_map_typo_in_a_recipe_fails_before_any_model_is_loaded(workdir, capsys):
    path = write_jsonl(workdir / "my.jsonl", own_rows())
    assert cli.main(["train", "quickstart", "--set", f"data.path={path}", "--set", "data.columns.prompt=nope", *SMALL]) == 2
    err = capsys.readouterr().err
    assert "data.columns.prompt: nope" in err and "has no column 'nope'" in err, err
    assert "its columns: chosen, question, rejected, topic" in err and "Traceback" not in err
    mlflow.set_tracking_uri(tracking.resolve_uri())
    assert mlflow.search_runs(search_all_experiments=True).empty  # refused before the run (and the model) opened
    assert not (workdir / "runs").exists()
    # the right name still loads, and the mapped subset comes through
    data = load_preferences(TextDataConfig(path=path, columns={"prompt": "question", "subset": "topic"}))
    assert data.train_pairs[0]["prompt"].startswith("What is") and data.train_pairs[0]["subset"] == "add"


def test_data_columns_on_a_built_in_dataset_is_an_error_not_ignored(workdir, capsys):
    assert cli.main(["train", "quickstart", "--set", "data.columns.prompt=question", *SMALL]) == 2
    err = capsys.readouterr().err
    assert "data.columns" in err and "applies to your own data (data.path, or data.name: hf:<id>)" in err, err
    assert "'math-answers' is a built-in dataset" in err and "Traceback" not in err
    assert cli.main(["recipes", "show", "quickstart", "--set", "data.columns.prompt=question"]) == 2  # caught when read
    assert "applies to your own data" in capsys.readouterr().err


def test_an_unknown_data_name_says_how_to_name_a_hub_dataset_or_a_file(workdir, capsys):
    for name, extra in (("nosuch", ""), ("trl-lib/ultrafeedback", "a hub id is written hf:trl-lib/ultrafeedback")):
        assert cli.main(["recipes", "show", "quickstart", "--set", f"data.name={name}"]) == 2
        err = capsys.readouterr().err
        assert f"data.name: unknown dataset '{name}'" in err and extra in err, err
        assert "math-answers" in err and "hf:<id>" in err and "data.path" in err and ".jsonl" in err
        assert "Traceback" not in err


# rows that train and eval take, and rows they refuse: `data validate --card preference-pairs` must agree with both
ACCEPTED = {
    "explicit prompt": {"prompt": "Sky?", "chosen": "Blue.", "rejected": "Green."},
    "TRL implicit prompt": {"chosen": "Q: 2 + 2? A: 4", "rejected": "Q: 2 + 2? A: 5"},
    "conversational, implicit prompt": {"chosen": [USER("Hi?"), BOT("Hello!")], "rejected": [USER("Hi?"), BOT("Go away.")]},
    "hh-rlhf transcript": {"chosen": "\n\nHuman: 2+2?\n\nAssistant: 4", "rejected": "\n\nHuman: 2+2?\n\nAssistant: 5"},
    "extra columns (topic, qid)": {"prompt": "Q", "chosen": "a", "rejected": "b", "topic": "math", "qid": 7, "source": "x"},
    "a margin and a subset": {"prompt": "Q", "chosen": "a", "rejected": "b", "margin": 2, "subset": "easy"},
}
REFUSED = {
    "empty chosen": ({"prompt": "Q", "chosen": "", "rejected": "b"}, "field 'chosen' is empty"),
    "chosen identical to rejected": ({"prompt": "Q", "chosen": "same", "rejected": "same"}, "are the same"),
    "null rejected": ({"prompt": "Q", "chosen": "a", "rejected": None}, "field 'rejected' is null (found None)"),
    "no rejected": ({"prompt": "Q", "chosen": "a"}, "field 'rejected' is missing"),
    "a number as an answer": ({"prompt": "Q", "chosen": 3, "rejected": "b"}, "field 'chosen': expected a string"),
    "a margin that is not a number": ({"prompt": "Q", "chosen": "a", "rejected": "b", "margin": "big"}, "the margin must be a number"),
    "last message not the assistant's": ({"chosen": [USER("Q"), BOT("a")], "rejected": [USER("Q")]}, "not the assistant's answer"),
}


def _verdicts(path: str) -> tuple[bool, bool]:
    """(eval takes the file, train takes it) through their own loaders."""
    outcomes = []
    for load in (lambda: load_eval_rows(path), lambda: load_preferences(TextDataConfig(path=path, test_fraction=0.5))):
        try:
            load()
            outcomes.append(True)
        except DataError:
            outcomes.append(False)
    return outcomes[0], outcomes[1]


@pytest.mark.parametrize("case", [*ACCEPTED, *REFUSED])
def test_validate_preference_pairs_accepts_exactly_what_train_and_eval_accept(tmp_path, capsys, case):
    row, needle = (ACCEPTED[case], None) if case in ACCEPTED else REFUSED[case]
    path = write_jsonl(tmp_path / "rows.jsonl", [row, row])
    code = cli.main(["data", "validate", "--card", "preference-pairs", "--file", path])
    out, err = capsys.readouterr()
    assert _verdicts(path) == (needle is None, needle is None), case
    if needle is None:
        assert code == 0 and "2 rows OK against preference-pairs.md" in out, (case, err)
    else:
        assert code == 2 and "row 1: " in err and needle in err and "Traceback" not in err, (case, err)


def test_validate_preference_pairs_takes_best_of_n_rows_as_eval_does_and_the_pairs_data_build_writes(tmp_path, capsys):
    best_of_n = write_jsonl(tmp_path / "bon.jsonl", [{"id": "1", "prompt": "Q", "chosen": ["a"], "rejected": ["b", "c"],
                                                       "subset": "Math", "num_correct": 1}])
    assert cli.main(["data", "validate", "--card", "preference-pairs", "--file", best_of_n]) == 0
    out = capsys.readouterr().out
    assert "1 rows OK" in out and "best-of-N layout" in out and "rewardlab eval" in out
    assert load_eval_rows(best_of_n).format == "best-of-n"
    with pytest.raises(DataError, match="best-of-N layout"):  # train needs one answer a side, and says so
        load_preferences(TextDataConfig(path=write_jsonl(tmp_path / "two.jsonl", [json.loads((tmp_path / "bon.jsonl").read_text())] * 2)))
    # the pairs that `rewardlab data build --out` writes (qid, split) are preference pairs as they are
    assert cli.main(["data", "build", "math-answers", "--out", str(tmp_path / "built")]) == 0
    capsys.readouterr()
    assert cli.main(["data", "validate", "--card", "preference-pairs", "--file", str(tmp_path / "built" / "pairs.jsonl")]) == 0
    assert "split column: test" in capsys.readouterr().out


@pytest.mark.parametrize("card", ["preference-pairs", "reference-pairs"])
def test_a_line_that_is_not_json_is_reported_beside_the_other_bad_rows(tmp_path, capsys, card):
    good = {"prompt": "q", "reference": "r", "chosen": "a", "rejected": "b", "split": "train"}
    path = write_jsonl(tmp_path / "mixed.jsonl", [good, "{not json", good, {**good, "chosen": 3},
                                                  {k: v for k, v in good.items() if k != "rejected"}, "", good])
    assert cli.main(["data", "validate", "--card", card, "--file", path]) == 2
    err = capsys.readouterr().err
    assert "3 bad rows" in err and "Traceback" not in err, err
    assert "row 2: not valid JSON: " in err and "row 4: field 'chosen'" in err and "row 5: field 'rejected' is missing" in err
    assert err.index("row 2:") < err.index("row 4:") < err.index("row 5:")  # by line in the file, blank lines counted
    many = write_jsonl(tmp_path / "many.jsonl", ["{not json"] * 25 + [good])
    assert cli.main(["data", "validate", "--card", card, "--file", many]) == 2
    err = capsys.readouterr().err
    assert "25 bad rows" in err and "row 20: not valid JSON" in err and "row 21:" not in err and "... and 5 more" in err
