"""CLI commands that are not training: the MLflow UI on 127.0.0.1, data build, help that answers questions."""

from __future__ import annotations

import json
import sys
import urllib.request

import pytest

from rewardlab import cli
from rewardlab.data import DataError, TextDataConfig, load_preferences
from rewardlab.serve import process


def test_ui_serves_the_mlflow_store_on_localhost(workdir):
    port = process.free_port()
    # its own process group, stopped whole below: MLflow's UI runs uvicorn and job-consumer workers
    proc = process.start(
        [sys.executable, "-m", "rewardlab.cli", "ui", "--port", str(port), "--tracking-uri", f"sqlite:///{workdir}/mlflow.db"]
    )
    try:
        body = process.wait_ready(f"http://127.0.0.1:{port}/health", proc, timeout=90)
        assert body.strip() == "OK"
        experiments = urllib.request.urlopen(
            f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search?max_results=10", timeout=5
        ).read().decode()
        assert "Default" in experiments  # it is reading our SQLite store
    finally:
        process.stop(proc)


def test_data_build_pendulum_prints_row_count(capsys):
    assert cli.main(["data", "build", "pendulum-random", "--option", "episodes=2", "--option", "test_episodes=1"]) == 0
    assert "pendulum-random: 600 transitions" in capsys.readouterr().out
    assert cli.main(["data", "build", "pendulum-random", "--option", "episode=2"]) == 2
    err = capsys.readouterr().err
    assert "--option" in err and "'episode'" in err and "episodes, test_episodes, seed" in err and "Traceback" not in err


def test_hub_dataset_without_network_fails_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError, match="Anthropic/hh-rlhf: could not load from the Hugging Face hub.*needs network"):
        load_preferences(TextDataConfig(name="Anthropic/hh-rlhf"))


def test_help_explains_commands_and_overrides(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--set KEY.PATH=VALUE" in out and "--resume" in out and "MLFLOW_TRACKING_URI" in out
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    out = capsys.readouterr().out
    # routes, both compatibility clients, auth and the batching knobs are documented where users look
    for needle in ("/v1/score", "/get_reward", "--remote_rm_url", "server_type=\"vllm\"", "--api-key", "REWARDLAB_API_KEY",
                   "--max-batch-size", "--max-body-mb", "127.0.0.1"):
        assert needle in out, needle


def test_explain_prints_the_concept_sentences_of_a_move(capsys, tmp_path):
    board = "......./......./......./......./......./ooo.xx."
    assert cli.main(["explain", "rules:connect4", "--board", board, "--column", "3"]) == 0
    text = capsys.readouterr().out
    assert "blocks the opponent" in text and "three in a row" in text and "centre column" in text
    rows = tmp_path / "moves.jsonl"
    rows.write_text('{"state": [0.1, 1.0, 0.0, -0.5, 0.1, 0, 0, 0], "action": [2], "next_state": [0.09, 0.98, 0.0, -0.45, 0.05, 0, 0, 0]}\n')
    assert cli.main(["explain", "rules:lunarlander", "--file", str(rows), "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["explanation"].startswith("The lander fires its main engine.") and line["shaping_reward"] > 0


def test_explain_rejects_bad_boards_and_rewards_that_cannot_explain(capsys, tmp_path):
    assert cli.main(["explain", "rules:connect4", "--board", "x......", "--column", "3"]) == 2
    assert "expected 6 rows of 7 cells" in capsys.readouterr().err
    assert cli.main(["explain", "rules:connect4", "--board", "......./......./......./......./......x/ooo.xx.", "--column", "3"]) == 2
    assert "floats above an empty cell" in capsys.readouterr().err
    assert cli.main(["explain", "rules:connect4"]) == 2
    assert "--file" in capsys.readouterr().err
    assert cli.main(["explain", "rules:chess", "--board", "x"]) == 2
    assert "rules:connect4 and rules:lunarlander" in capsys.readouterr().err
    assert cli.main(["explain", "rules:lunarlander", "--obs", "[0, 1", "--action", "2"]) == 2
    assert "--obs: expected a JSON number or list" in capsys.readouterr().err
    (tmp_path / "bad.jsonl").write_text('{"state": [0, 0, 0, 0, 0, 0, 0, 0]}\n')
    assert cli.main(["explain", "rules:lunarlander", "--file", str(tmp_path / "bad.jsonl")]) == 2
    assert "row 1: needs 'action'" in capsys.readouterr().err


def test_data_build_pendulum_writes_its_rows_with_out(tmp_path, capsys):
    out = tmp_path / "pendulum"
    assert cli.main(["data", "build", "pendulum-random", "--option", "episodes=1", "--option", "test_episodes=1", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "transitions.jsonl").read_text().splitlines()]
    assert len(rows) == 400 and {r["split"] for r in rows} == {"train", "test"}
    assert f"written to {out}/transitions.jsonl" in capsys.readouterr().out


def test_explain_refuses_out_of_range_columns_and_unreachable_boards(capsys, tmp_path):
    board = "......./......./......./......./......./ooo.xx."
    for column in ("9", "-1"):
        assert cli.main(["explain", "rules:connect4", "--board", board, "--column", column]) == 2
        captured = capsys.readouterr()
        assert f"--column: expected a column 0-6 (0 is the leftmost), found {column}" in captured.err
        assert captured.out == "" and "Traceback" not in captured.err
    seven_x = "......./......./......./......./x....../xxxxxx."  # seven of one colour, none of the other
    assert cli.main(["explain", "rules:connect4", "--board", seven_x, "--column", "6"]) == 2
    assert "7 pieces of the player to move (x) and 0 of the opponent (o) cannot occur" in capsys.readouterr().err
    rows = tmp_path / "moves.jsonl"
    rows.write_text(json.dumps({"board": board, "column": 3}) + "\n" + json.dumps({"board": board, "column": 1}) + "\n")
    assert cli.main(["explain", "rules:connect4", "--file", str(rows)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "blocks the opponent" in lines[0] and lines[1] == "This move has no notable effect."
    rows.write_text(json.dumps({"board": board}) + "\n")
    assert cli.main(["explain", "rules:connect4", "--file", str(rows)]) == 2
    assert "row 1: a Connect 4 row needs 'board' and 'column'" in capsys.readouterr().err


def test_eval_on_your_own_plain_trl_pairs_as_the_readme_writes_them(workdir, capsys):
    tmp_path = workdir
    """`rewardlab eval MODEL --data-path my.jsonl` with rows of prompt/chosen/rejected only: no qid, split or
    training rows needed."""
    import numpy as np
    import torch

    from rewardlab import backbones, rewards
    from rewardlab.models.scalar_head import build_scalar_rm
    from rewardlab.rewards.text import ScalarTextReward

    torch.manual_seed(0)
    tokenizer = backbones.load_tokenizer(backbones.MINILM)
    folder = ScalarTextReward.save(build_scalar_rm(backbones.MINILM, tokenizer), tokenizer, tmp_path / "rm", max_length=48, template="plain")
    rows = [{"prompt": "What is 2 + 2?", "chosen": "4", "rejected": "5"},
            {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon, I think, or maybe Marseille."},
            {"prompt": [{"role": "user", "content": "Say hi"}], "chosen": [{"role": "assistant", "content": "Hi!"}],
             "rejected": [{"role": "assistant", "content": "No."}]}]
    path = tmp_path / "my.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "metrics.json"
    assert cli.main(["eval", str(folder), "--data-path", str(path), "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    reward = rewards.load(folder)
    chosen = reward.score([r["prompt"] for r in rows], [r["chosen"] for r in rows])
    rejected = reward.score([r["prompt"] for r in rows], [r["rejected"] for r in rows])
    assert metrics["n_pairs"] == 3.0
    assert metrics["pair_accuracy"] == pytest.approx(float(np.mean(np.asarray(chosen) > np.asarray(rejected))))
    assert "pairwise accuracy" in capsys.readouterr().out
    path.write_text(json.dumps({"prompt": "q", "chosen": "a"}) + "\n" + json.dumps({"prompt": "q", "chosen": 3, "rejected": "b"}) + "\n")
    assert cli.main(["eval", str(folder), "--data-path", str(path)]) == 2
    err = capsys.readouterr().err
    assert "row 1: field 'rejected' is missing" in err and "row 2: field 'chosen'" in err and "Traceback" not in err


def test_subcommand_help_is_their_own_and_lists_each_builders_options(capsys):
    for argv, wanted in ((["data", "build", "--help"], ["expert-demos: task='Pendulum-v1', algo='sac'", "s2e-explanations: domain='connect4'",
                                                         "pendulum-random: episodes=20, test_episodes=5, seed=0"]),
                         (["recipes", "show", "--help"], ["--resolved", "Print a recipe's YAML"]),
                         (["data", "validate", "--help"], ["every bad row", "--config"]),
                         (["models", "--help"], ["alias", "@champion"])):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        out = capsys.readouterr().out
        assert exit_.value.code == 0 and all(w in out for w in wanted), (argv, out[:400])


def test_every_file_the_readme_and_docs_point_to_is_in_the_repository():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = "\n".join(p.read_text() for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))])
    for link in re.findall(r"\]\(((?:\.\./)?[\w./-]+\.(?:md|png))\)", text):  # markdown links, from the README or docs/
        assert (root / link).exists() or (root / "docs" / link).resolve().exists(), link
    tops = "recipes|benchmarks|data_cards|rewardlab|tests|docs|\\.ci"
    named = set(re.findall(rf"`((?:{tops})/[\w./-]+)`", text)) | set(re.findall(r"\b([\w-]+\.md)\b", text))
    made_by_you = (".venv",)  # git-ignored folders the README tells you how to create
    missing = sorted(n for n in named if not any(m in n for m in made_by_you)
                     and not any((folder / n).exists() for folder in (root, root / "data_cards", root / "docs")))
    assert not missing, f"the README names files the repository lacks: {missing}"
