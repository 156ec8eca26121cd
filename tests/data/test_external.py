"""External preference data through datasets.load_dataset, on small fixtures written in each dataset's own field
layout (HH-RLHF, UltraFeedback-binarized in both published layouts, Skywork, RewardBench, TRL's formats), as local
files and as a local dataset folder (the `hf:` path a hub id takes)."""

from __future__ import annotations

import json

import pytest

from rewardlab import cli
from rewardlab.data import DataError, TextDataConfig, load_preferences

USER = lambda text: {"role": "user", "content": text}  # noqa: E731
BOT = lambda text: {"role": "assistant", "content": text}  # noqa: E731


def write_parquet(folder, split: str, rows: list[dict]) -> None:
    from datasets import Dataset

    (folder / "data").mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows).to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))


def write_jsonl(path, rows: list[dict]):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def ultrafeedback_h4(i: int) -> dict:
    """HuggingFaceH4/ultrafeedback_binarized: a string prompt beside message lists that repeat it."""
    q = f"What is {i} + 1?"
    return {"prompt": q, "prompt_id": f"id{i}", "chosen": [USER(q), BOT(f"{i + 1}.")], "rejected": [USER(q), BOT(f"{i + 2}.")],
            "messages": [USER(q), BOT(f"{i + 1}.")], "score_chosen": 8.0, "score_rejected": 3.5}


def test_ultrafeedback_binarized_h4_layout_as_a_dataset_folder(tmp_path):
    write_parquet(tmp_path, "train_prefs", [ultrafeedback_h4(i) for i in range(6)])
    write_parquet(tmp_path, "test_prefs", [ultrafeedback_h4(i) for i in range(6, 9)])
    data = load_preferences(TextDataConfig(name=f"hf:{tmp_path}", split="train_prefs", margin_from_scores=True))
    assert (len(data.train_pairs), len(data.test_pairs)) == (6, 3)  # test_prefs found without being named
    first = data.train_pairs[0]
    assert first["prompt"] == [USER("What is 0 + 1?")] and first["chosen"] == [BOT("1.")] and first["rejected"] == [BOT("2.")]
    assert first["margin"] == 4.5 and data.card.name == "preference-pairs"
    assert data.source.startswith("hf://datasets/")


def test_trl_lib_ultrafeedback_skywork_and_hh_rlhf_layouts_need_no_column_map(tmp_path):
    trl_lib = [{"chosen": [USER("Hi?"), BOT("Hello!")], "rejected": [USER("Hi?"), BOT("Go away.")], "score_chosen": 9.0,
                "score_rejected": 2.0} for _ in range(4)]
    skywork = [{"chosen": [USER("Sky?"), BOT("Blue.")], "rejected": [USER("Sky?"), BOT("Green.")], "source": "helpsteer2"}] * 4
    hh = [{"chosen": "\n\nHuman: What is 2+2?\n\nAssistant: 4\n\nHuman: Sure?\n\nAssistant: Yes, 4.",
           "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: 4\n\nHuman: Sure?\n\nAssistant: No, 5."}] * 4
    for rows, prompt, chosen in ((trl_lib, [USER("Hi?")], [BOT("Hello!")]), (skywork, [USER("Sky?")], [BOT("Blue.")]),
                                 (hh, [USER("What is 2+2?"), BOT("4"), USER("Sure?")], [BOT("Yes, 4.")])):
        path = write_jsonl(tmp_path / "rows.jsonl", rows)
        data = load_preferences(TextDataConfig(path=path, test_fraction=0.25))
        assert (len(data.train_pairs), len(data.test_pairs)) == (3, 1)  # a seeded held-out fraction: no split given
        assert data.train_pairs[0]["prompt"] == prompt and data.train_pairs[0]["chosen"] == chosen
        assert "margin" not in data.train_pairs[0]  # scores become a margin only when asked


def test_reward_bench_layout_keeps_its_subsets_and_a_split_column_is_honoured(tmp_path):
    rows = [{"prompt": f"Q{i}", "chosen": "good", "chosen_model": "a", "rejected": "bad", "rejected_model": "b",
             "subset": "chat-easy" if i % 2 else "math-prm", "id": i, "split": "test" if i >= 4 else "train"} for i in range(6)]
    data = load_preferences(TextDataConfig(path=write_jsonl(tmp_path / "rb.jsonl", rows)))
    assert [p["subset"] for p in data.test_pairs] == ["math-prm", "chat-easy"]
    assert data.train_pairs[0] == {"prompt": "Q0", "chosen": "good", "rejected": "bad", "subset": "math-prm", "split": "train"}


def test_parquet_and_csv_files_and_a_column_map(tmp_path):
    from datasets import Dataset

    rows = [{"question": f"Q{i}", "good": "yes", "bad": "no", "weight": 1.5} for i in range(10)]
    Dataset.from_list(rows).to_parquet(str(tmp_path / "mine.parquet"))
    Dataset.from_list(rows).to_csv(str(tmp_path / "mine.csv"))
    for name in ("mine.parquet", "mine.csv"):
        data = load_preferences(TextDataConfig(path=tmp_path / name, columns={"prompt": "question", "chosen": "good",
                                                                               "rejected": "bad", "margin": "weight"}))
        assert len(data.train_pairs) == 9 and data.train_pairs[0]["chosen"] == "yes" and data.train_pairs[0]["margin"] == 1.5


@pytest.mark.parametrize("rows, overrides, needle", [
    ([{"prompt": "Q", "good": "a", "rejected": "b"}] * 3, {}, "row 1: field 'chosen' is missing (its fields: good, prompt, rejected)"),
    ([{"prompt": "Q", "chosen": ["a", "b"], "rejected": "b"}] * 3, {}, "field 'chosen': expected a string or a list of {role, content} messages, found list (a list of answers is the best-of-N layout"),
    ([{"chosen": "same", "rejected": "same"}] * 3, {}, "row 1: fields 'chosen' and 'rejected' are the same"),
    ([{"chosen": [USER("Q"), BOT("a")], "rejected": [USER("Q")]}] * 3, {}, "field 'rejected': its last message is not the assistant's answer"),
    ([{"prompt": "Q", "chosen": "a", "rejected": "b", "split": "train"}] * 3, {}, "no row has split 'test'; its split values: train"),
    ([{"prompt": "Q", "chosen": "a", "rejected": "b"}] * 3, {"columns": {"answer": "x"}}, "data.columns: unknown field answer"),
])
def test_bad_input_names_the_source_the_row_and_the_field(tmp_path, rows, overrides, needle):
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises((DataError, ValueError)) as err:
        load_preferences(TextDataConfig(path=path, **overrides))
    assert needle in str(err.value)


def test_an_empty_file_and_a_missing_split_are_clear_errors_on_the_command_line(tmp_path, capsys):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="empty.jsonl"):
        load_preferences(TextDataConfig(path=tmp_path / "empty.jsonl"))
    write_parquet(tmp_path / "ds", "train", [ultrafeedback_h4(i) for i in range(3)])
    with pytest.raises(DataError, match=r"no split 'train_prefs'; its splits: train \(set data.split\)"):
        load_preferences(TextDataConfig(name=f"hf:{tmp_path / 'ds'}", split="train_prefs"))
    assert cli.main(["train", "quickstart", "--set", f"data.name=hf:{tmp_path / 'ds'}", "--set", "data.split=nope"]) == 2
    err = capsys.readouterr().err
    assert "no split 'nope'" in err and "Traceback" not in err


def test_a_bradley_terry_rm_trains_on_an_external_dataset_and_its_margin_reaches_trls_loss(tmp_path, workdir):
    """The UltraFeedback fixture through the quickstart recipe on MiniLM: the margin column changes TRL's loss to
    -log sigma(r_c - r_r - margin), so with the same seed and data the first step's loss is higher with margins."""
    from rewardlab import learners, recipes, tracking

    write_parquet(tmp_path / "uf", "train_prefs", [ultrafeedback_h4(i) for i in range(16)])
    write_parquet(tmp_path / "uf", "test_prefs", [ultrafeedback_h4(i) for i in range(16, 24)])
    base = ["model.backbone=embedded:minilm-l6", "model.freeze_layers=6", "model.max_length=64", "train.max_steps=1",
            "train.batch_size=8", "train.logging_steps=1", "tracking.register_model=false", f"data.name=hf:{tmp_path / 'uf'}",
            "data.split=train_prefs"]
    losses = {}
    for margin in (False, True):
        config, text, _ = recipes.load("quickstart", [*base, f"data.margin_from_scores={str(margin).lower()}", f"name=uf-{margin}"])
        result = learners.train(config, recipe_text=text)
        losses[margin] = next(h["loss"] for h in result["log_history"] if "loss" in h)
        assert result["metrics"]["n_pairs"] == 8  # scored on the test_prefs split
        logged = tracking.get_run_data(result["run_id"]).data
        assert logged.metrics["data/train_pairs"] == 16 and logged.metrics["data/train_truncated_pairs"] == 0
        assert any(d.dataset.name.endswith("-train-pairs") for d in tracking.get_run_data(result["run_id"]).inputs.dataset_inputs)
    assert losses[True] > losses[False] + 1.0, losses  # a margin of 4.5 on every pair


def test_over_long_pairs_are_cut_from_the_left_and_counted_not_dropped():
    from rewardlab import backbones
    from rewardlab.learners._trainer import preference_dataset
    from rewardlab.rewards.text import encode

    tokenizer = backbones.load_tokenizer("embedded:minilm-l6")
    rows = [{"prompt": "Q?", "chosen": "short.", "rejected": "also short."},
            {"prompt": "Tell me " * 40, "chosen": "a long prompt.", "rejected": "still long."},
            {"prompt": "Q?", "chosen": "word " * 60, "rejected": "no."}]
    counts: dict = {}
    ds = preference_dataset(rows, lambda row, side: encode(tokenizer, row["prompt"], row[side], 24, "plain"), counts=counts)
    assert counts == {"truncated_pairs": 2.0, "pairs": 3.0} and len(ds) == 3  # TRL's own tokenisation would drop rows 2 and 3
    assert max(ds["length"]) == 24
