"""Cards: the front matter is checked, and a bad row fails with the file, row number, field and reason."""

from __future__ import annotations

import json

import pytest

from rewardlab import cli
from rewardlab.data import DataError, find_card, parse_card
from rewardlab.data.math_answers import MathAnswersConfig, build, make_pairs, make_questions, stated_number


def test_every_bundled_card_parses_with_hf_fields():
    for name in ("math-answers", "hh-rlhf", "pendulum-random"):
        card = find_card(name)
        for key in ("pretty_name", "license", "task_categories", "dataset_info"):
            assert key in card.meta
        assert card.prose, f"{name}: a card has prose below its front matter"
    assert find_card("Anthropic/hh-rlhf").meta["requires_network"] is True


def test_bad_rows_name_file_row_field_and_reason(tmp_path):
    card = find_card("math-answers")
    good = {"qid": 1, "split": "train", "prompt": "q", "chosen": "a", "rejected": "b"}
    with pytest.raises(DataError) as err:
        card.validate_rows([good, {**good, "qid": "seven"}], "pairs", source="x.jsonl")
    assert str(err.value) == "x.jsonl: row 2: field 'qid': expected int64, found str ('seven')"
    with pytest.raises(DataError, match="row 1: field 'rejected' is missing"):
        card.validate_rows([{k: v for k, v in good.items() if k != "rejected"}], "pairs")
    with pytest.raises(DataError, match="row 1: field 'chosen': expected a string or a list of"):
        card.validate_rows([{**good, "chosen": [{"text": "no role"}]}], "pairs")
    with pytest.raises(DataError, match="row 1: field 'extra' is not in the card"):
        card.validate_rows([{**good, "extra": 1}], "pairs")
    with pytest.raises(DataError, match="field 'correct': expected bool, found str"):
        card.validate_rows([{"qid": 1, "split": "t", "prompt": "q", "response": "r", "answer": 2, "stated": None, "correct": "yes"}], "samples")


def test_card_without_required_key_is_rejected(tmp_path):
    path = tmp_path / "bad.md"
    path.write_text("---\npretty_name: x\nlicense: mit\n---\nprose\n")
    with pytest.raises(DataError, match="lacks required key 'task_categories'"):
        parse_card(path)


def test_cli_validate_reports_the_bad_row(tmp_path, capsys):
    rows = tmp_path / "pairs.jsonl"
    rows.write_text(json.dumps({"qid": 0, "split": "test", "prompt": "q", "chosen": "a", "rejected": "b"}) + "\n" + "{not json\n")
    assert cli.main(["data", "validate", "--card", "math-answers", "--file", str(rows), "--config", "pairs"]) == 2
    err = capsys.readouterr().err
    assert f"{rows}: row 2: not valid JSON" in err and "Traceback" not in err


def test_stated_number_and_questions_are_deterministic():
    assert stated_number("7 * 8 = 56.") == 56
    assert stated_number("The answer is -3, I think") == -3
    assert stated_number("no idea") is None
    assert make_questions(20, 3) == make_questions(20, 3)
    assert make_questions(20, 3) != make_questions(20, 4)
    for q in make_questions(50, 0):
        a, op, b = q["question"].split()[2:5]
        assert eval(f"{a}{op}{b.rstrip('?')}") == q["answer"]


def test_shipped_rows_are_valid_split_by_question_and_pairs_are_correct_vs_incorrect():
    built = build(MathAnswersConfig())
    card = find_card("math-answers")
    card.validate_rows(built["samples"], "samples")
    card.validate_rows(built["pairs"], "pairs")
    samples = built["samples"]
    assert len(samples) == MathAnswersConfig().n_questions * MathAnswersConfig().samples_per_question
    for s in samples:  # the label is exactly "last stated number equals the answer"
        assert s["correct"] == (stated_number(s["response"]) == s["answer"])
    train_q = {s["qid"] for s in samples if s["split"] == "train"}
    test_q = {s["qid"] for s in samples if s["split"] == "test"}
    assert train_q and test_q and not train_q & test_q
    by_text = {(s["qid"], s["response"]): s["correct"] for s in samples}
    for p in built["pairs"]:
        assert by_text[(p["qid"], p["chosen"])] is True and by_text[(p["qid"], p["rejected"])] is False
    assert make_pairs(samples, 4, 0) == built["pairs"]


def test_builder_regenerates_the_shipped_rows_from_the_seed():
    """The first batch of questions, sampled again, gives the shipped answers word for word (same library versions)."""
    from rewardlab.data.math_answers import generate_samples

    default = MathAnswersConfig()
    fresh = generate_samples(MathAnswersConfig(n_questions=default.batch_questions))
    shipped = build(default)["samples"][: len(fresh)]
    key = ("qid", "prompt", "response", "answer", "stated", "correct")
    assert [tuple(r[k] for k in key) for r in fresh] == [tuple(r[k] for k in key) for r in shipped]


EXAMPLE = __import__("re").compile(r"```json(?: (\w+))?\n(.*?)```", __import__("re").S)


def test_every_bundled_card_validates_the_example_row_its_own_prose_shows(tmp_path, capsys):
    from rewardlab.data.cards import cards_dir

    names = sorted(p.stem for p in cards_dir().glob("*.md"))
    assert len(names) >= 7
    for name in names:
        card = find_card(name)
        examples = EXAMPLE.findall(card.prose)
        assert examples, f"{name}: the card's prose shows no example row"
        for i, (config, text) in enumerate(examples):
            path = tmp_path / f"{name}-{i}.jsonl"
            path.write_text(text.strip() + "\n")
            argv = ["data", "validate", "--card", name, "--file", str(path)] + (["--config", config] if config else [])
            assert cli.main(argv) == 0, capsys.readouterr().err
            assert "rows OK" in capsys.readouterr().out


def test_validate_reports_every_bad_row_and_refuses_empty_files_and_unknown_splits(tmp_path, capsys):
    good = {"prompt": "q", "reference": "r", "chosen": "a", "rejected": "b", "split": "train"}
    rows = [good, {**good, "chosen": 3}, good, {**good, "split": "validation"}, {k: v for k, v in good.items() if k != "prompt"}]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli.main(["data", "validate", "--card", "reference-pairs", "--file", str(path)]) == 2
    err = capsys.readouterr().err
    assert "3 bad rows" in err and "row 2: field 'chosen'" in err and "row 5: field 'prompt' is missing" in err
    assert "row 4: field 'split': 'validation' is not a split of this card (expected one of: train, test)" in err
    assert "Traceback" not in err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert cli.main(["data", "validate", "--card", "reference-pairs", "--file", str(empty)]) == 2
    assert "no rows (an empty file)" in capsys.readouterr().err


def test_validate_with_an_unknown_config_names_the_configs(tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"qid": 0, "split": "test", "prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    assert cli.main(["data", "validate", "--card", "math-answers", "--file", str(path), "--config", "pair"]) == 2
    err = capsys.readouterr().err
    assert "no config 'pair'; this card's configs are: samples, pairs" in err and "Traceback" not in err
    assert cli.main(["data", "validate", "--card", "math-answers", "--file", str(tmp_path / "p.jsonl"), "--config", "pairs"]) == 0
    assert cli.main(["data", "validate", "--card", "math-answers", "--file", str(path)]) == 2  # checked as samples
    assert "config samples" in capsys.readouterr().err


def test_the_shifted_split_answers_the_test_questions_again_under_another_persona():
    from rewardlab.data import math_answers

    built = build(MathAnswersConfig())
    card = find_card("math-answers")
    card.validate_rows(built["shifted_samples"], "samples")
    card.validate_rows(built["shifted_pairs"], "pairs")
    test = [s for s in built["samples"] if s["split"] == "test"]
    shifted = built["shifted_samples"]
    assert {s["split"] for s in shifted} == {"shifted"} and len(shifted) == len(test)
    assert [s["qid"] for s in shifted] == [s["qid"] for s in test]  # the same questions, in the same order
    assert len({s["response"] for s in shifted} & {s["response"] for s in test}) < 0.05 * len(test)  # other answers
    for s in shifted:
        assert s["correct"] == (stated_number(s["response"]) == s["answer"])
    assert make_pairs(shifted, 4, 0) == built["shifted_pairs"]
    # the shifted rows have their own cache key: changing the persona leaves the train/test rows' key alone
    other = MathAnswersConfig(shifted_system="Talk like a pirate.")
    assert other.key() == MathAnswersConfig().key() and other.shifted_key() != MathAnswersConfig().shifted_key()
    assert math_answers.SHIFTED_SYSTEM in math_answers.chat_prompts(__import__("rewardlab").backbones.load_tokenizer(
        MathAnswersConfig().model), [{"question": "What is 1 + 1?"}], math_answers.SHIFTED_SYSTEM)[0]
