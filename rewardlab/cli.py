"""The ``rewardlab`` command: parses arguments and dispatches. No training or serving logic lives here."""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from pathlib import Path

#: One description of the MLflow store (tracking.py's resolve_uri and use_experiment) for every help text.
STORE_HELP = ("$MLFLOW_TRACKING_URI, else the nearest mlflow.db in the working directory or a folder above it, else "
              "~/.local/share/rewardlab/mlflow.db ($XDG_DATA_HOME/rewardlab); artifacts beside it in mlartifacts/")

EPILOG = """examples:
  rewardlab train recipes/quickstart.yaml
  rewardlab train quickstart --set train.max_steps=20 --set data.max_train_pairs=64
  rewardlab train quickstart --resume          # continue the interrupted run, same MLflow run
  rewardlab eval models:/quickstart-bt/1 --data math-answers
  rewardlab recipes list
  rewardlab data validate --card math-answers --file my_pairs.jsonl --config pairs
  rewardlab models list                        # registered rewards, their versions and aliases
  rewardlab models alias quickstart-bt 1 champion
  rewardlab serve models:/quickstart-bt@champion --port 8000
  REWARDLAB_API_KEY=secret rewardlab serve runs/quickstart-bt/reward --host 0.0.0.0
  rewardlab explain rules:connect4 --board "......./......./......./......./......./ooo.xx." --column 3
  rewardlab ui                                 # MLflow UI on the store (see below), 127.0.0.1:5000

the MLflow store: """ + STORE_HELP + """.
`rewardlab models list` prints it. A finished run keeps its reward once: runs/<name>/reward links to the store's copy.
"""


SERVE_EPILOG = """routes:
  POST /v1/score              {"prompts": [...], "responses": [...], "references": [...]?, "normalize": true|false?}
                              -> {"rewards": [...], "truncated": [...]}; references only for rewards that use them
                              (POLAR): others answer 422
  POST /v1/score_transitions  {"obs": [[...]], "actions": [...], "next_obs": [[...]], "dones": [...]?} -> {"rewards": [...]}
  POST /v1/explain            same bodies -> {"explanations": [...]}; 404 for rewards that cannot explain
  POST /v1/q_values           {"prompts", "responses"} -> {"q_values": [[...], ...]} per response token; 404 unless goal-conditioned
  POST /get_reward            OpenRLHF: {"query": [...], "prompts": [...], "labels": [...]} -> {"rewards", "scores"}
  POST /pooling               vLLM / lmdeploy pooling: {"input": [...]} -> {"data": [{"data": [[score]] | score}]}
  POST /classify              vLLM: {"input", "use_activation"} -> {"data": [{"probs": [score]}]};
                              SGLang: {"text": [...]} -> [{"embedding": [score]}]
  POST /v1/embeddings         SGLang: {"input"} -> {"data": [{"embedding": [score]}]}
  GET  /v1/info, /health, /metrics (Prometheus), /docs (OpenAPI)
texts on /pooling, /classify and /v1/embeddings are POLAR "<|reward|>" strings or whole conversations already rendered
with the reward model's chat template; a reward trained on the plain template gets them turned back into messages and
scored as on /v1/score (/v1/info "text_rendering" says which rendering it expects; the server warns at start if it cannot).
errors are JSON {"error": {"type", "message", "field", "status"}}: 4xx for bad input, 503 + Retry-After when the queue
is full (--max-queue), 413 for a request with more items than --max-queue, 504 past the deadline (--timeout-s).

clients (each tested against this server with its own request and parsing):
  client                                  route            set on the client side
  OpenRLHF                                /get_reward      --remote_rm_url http://HOST:PORT/get_reward
  POLAR RewardModelClient, sglang         /classify        RewardModelClient(path, server_type="sglang", server_address="HOST:PORT")
  POLAR RewardModelClient, vllm           /pooling         server_type="vllm"
  POLAR RewardModelClient, lmdeploy       /pooling         server_type="lmdeploy"; start this server with --pooling-format lmdeploy
  verl reward loop (reward model on vllm) /classify        reward_model.rollout.name=vllm, router address HOST:PORT
  verl reward loop (reward model on sglang) /v1/embeddings reward_model.rollout.name=sglang, router address HOST:PORT
  rewardlab                               /v1/score        rewards.load("http://HOST:PORT")  (uses $REWARDLAB_API_KEY)
"""


EVAL_HELP = """Score a reward on held-out comparisons and report (printed, in --json, and as an MLflow evaluation run
linked to the reward's training run and logged model):

  pairwise accuracy     chosen scored above rejected (ties count 1/2), with a bootstrap 95% interval
  best-of-N accuracy    the chosen answer scores at least every rejected one (RewardBench 2's rule); the
                        Ties subset gets RewardBench 2's own Ties score
  subsets               the accuracy per subset (a 'subset' column, or --subset-column), with intervals
  ECE, Brier            calibration of P(chosen > rejected) = sigmoid(r_chosen - r_rejected); a coin scores
                        ECE 0 and Brier 0.25; a reliability diagram is logged
  length bias           Spearman(reward, answer length); accuracy when the chosen answer is the shorter /
                        the longer one; the length-only ranker on the same pairs
  margins               mean and std of r_chosen - r_rejected, and their histogram

examples:
  rewardlab eval runs/quickstart-bt/reward                               # math-answers, test + shifted
  rewardlab eval models:/my-rm/1 --data hf:allenai/reward-bench-2 --format best-of-n --json rb2.json
  rewardlab eval http://127.0.0.1:8000 --data my_pairs.jsonl --column prompt=question --subset-column topic
"""


def _user_errors() -> tuple[type[BaseException], ...]:
    from rewardlab.backbones import BackboneError
    from rewardlab.data.cards import DataError
    from rewardlab.recipes import RecipeError
    from rewardlab.rewards.base import RewardInputError
    from rewardlab.rewards.remote import RemoteRewardError
    from rewardlab.serve.app import ServeConfigError
    from rewardlab.tracking import RegistryError, ResumeError, StoreError

    return (RecipeError, DataError, ResumeError, RegistryError, StoreError, BackboneError, RewardInputError, RemoteRewardError,
            ServeConfigError, FileNotFoundError)


class Interrupted(KeyboardInterrupt):
    """SIGTERM (a scheduler's stop, `timeout`, a container shutdown), handled as Ctrl-C is: the run ends KILLED."""


def _on_sigterm(signum, frame):
    raise Interrupted()


def _json_ready(value):
    """``value`` with every NaN and infinity as None, so that the file is JSON that strict parsers read."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def cmd_train(args) -> int:
    from rewardlab import recipes

    from rewardlab import tracking

    notes: list[str] = []
    config, text, path = recipes.load(args.recipe, args.set, own_data_notes=notes)
    for note in notes:
        print(f"note: {note}", flush=True)
    store = tracking.check_store(config.tracking.uri)
    print(f"recipe {path} -> learner {config.learner}, output {config.out()}, MLflow store {store}", flush=True)
    recipes.run(config, recipe_text=text, resume=args.resume, allow_changed=args.allow_changed)
    return 0


CONNECT4_ROW = '{"board": "......./......./......./......./......./ooo.xx.", "column": 3}'


def _connect4_board(text, where: str):
    """A typed Connect 4 board that a game can reach with x to move, as a (1, 42) array; else a DataError."""
    from rewardlab.data.cards import DataError
    from rewardlab.data.concepts import check_position, parse_board

    try:
        return check_position(parse_board(text)).reshape(1, -1)
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None


def _connect4_column(value, where: str) -> int:
    from rewardlab.data.cards import DataError
    from rewardlab.data.concepts import COLS

    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < COLS:
        raise DataError(f"{where}: expected a column 0-{COLS - 1} (0 is the leftmost), found {value!r}")
    return value


def _explain_inputs(args) -> tuple:
    """(obs, actions, next_obs) from --file, --board/--column or --obs/--action/--next-obs."""
    import numpy as np

    from rewardlab.data.cards import DataError
    from rewardlab.data.rows import read_jsonl

    if args.board is not None:
        if args.column is None:
            raise DataError("--board needs --column (the column played, 0-6)")
        board = _connect4_board(args.board, "--board")
        return board, np.array([_connect4_column(args.column, "--column")]), board
    if args.file is not None:
        rows = read_jsonl(args.file) if str(args.file).endswith(".jsonl") else json.loads(Path(args.file).read_text())
        rows = rows if isinstance(rows, list) else [rows]
        if rows and all(isinstance(r, dict) and "board" in r for r in rows):  # Connect 4 rows: {"board": B, "column": C}
            boards, cols = [], []
            for number, row in enumerate(rows, start=1):
                if "column" not in row:
                    raise DataError(f"{args.file}: row {number}: a Connect 4 row needs 'board' and 'column', e.g. {CONNECT4_ROW}")
                boards.append(_connect4_board(row["board"], f"{args.file}: row {number}: board"))
                cols.append(_connect4_column(row["column"], f"{args.file}: row {number}: column"))
            boards = np.concatenate(boards)
            return boards, np.asarray(cols), boards
        columns = {"obs": ("obs", "state"), "action": ("action", "actions"), "next_obs": ("next_obs", "next_state")}
        out = {k: [] for k in columns}
        for number, row in enumerate(rows, start=1):
            for key, names in columns.items():
                value = next((row[n] for n in names if n in row), None)
                if value is None and key != "next_obs":
                    raise DataError(f"{args.file}: row {number}: needs '{names[0]}' (or '{names[1]}'), or, for Connect 4, "
                                    f"'board' and 'column' ({CONNECT4_ROW})")
                out[key].append(value if value is not None else out["obs"][-1])
        return np.asarray(out["obs"], float), np.asarray(out["action"], float).reshape(len(rows), -1), np.asarray(out["next_obs"], float)
    if args.obs is None or args.action is None:
        raise DataError("give the transitions: --file ROWS.jsonl, --board B --column C (Connect 4), or --obs/--action/--next-obs")
    parsed = {}
    for flag, text in (("--obs", args.obs), ("--action", args.action), ("--next-obs", args.next_obs or args.obs)):
        try:
            parsed[flag] = np.asarray(json.loads(text), float).reshape(1, -1)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{flag}: expected a JSON number or list of numbers, found {text!r} ({exc})") from None
    return parsed["--obs"], parsed["--action"], parsed["--next-obs"]


def cmd_explain(args) -> int:
    from rewardlab import rewards

    if args.model.startswith("rules:"):
        from rewardlab.data.cards import DataError
        from rewardlab.data.concepts import DOMAINS

        domain = args.model.split(":", 1)[1]
        if domain not in DOMAINS:
            raise DataError(f"{args.model}: the rule-based explainers are rules:{' and rules:'.join(DOMAINS)}")
        reward = rewards.ConceptShapingReward.rules(domain)
    else:
        reward = rewards.load(args.model)
    if not callable(getattr(reward, "explain", None)):
        print(f"error: {args.model}: this reward ({getattr(reward, 'kind', type(reward).__name__)}) cannot explain; "
              "S2E rewards (recipes/s2e_*.yaml) can", file=sys.stderr)
        return 2
    obs, actions, next_obs = _explain_inputs(args)
    import numpy as np

    dones = np.zeros(len(obs))
    texts = reward.explain(obs, actions, next_obs, dones)
    scores = np.asarray(reward.score(obs, actions, next_obs, dones)).reshape(-1).tolist()
    for i, (text, score) in enumerate(zip(texts, scores)):
        print(json.dumps({"index": i, "explanation": text, "shaping_reward": round(float(score), 6)}) if args.json else text)
    return 0


def cmd_eval(args) -> int:
    from rewardlab import rewards, tracking
    from rewardlab.data import TextDataConfig, load_preferences
    from rewardlab.data import registry
    from rewardlab.data.external import load_eval_rows
    from rewardlab.data.loaders import load_eval_pairs
    from rewardlab.rewards.evaluate import evaluate_splits, evaluate_text_reward, format_report, score_best_of_n
    from rewardlab.rewards.report import expand_pairs, format_suite, report_figures, suite

    spec = str(args.data_path) if args.data_path else args.data
    if args.max_pairs is not None and args.max_pairs < 1:
        print(f"rewardlab eval: --max-pairs {args.max_pairs}: expected at least 1 (leave it out to evaluate every row)", file=sys.stderr)
        return 2
    if not args.no_mlflow:
        tracking.check_store()
    columns = {}
    for item in args.column:
        field, sep, column = item.partition("=")
        if not sep or not field or not column:
            print(f"rewardlab eval: --column {item!r}: expected FIELD=COLUMN, e.g. --column prompt=question", file=sys.stderr)
            return 2
        columns[field] = column
    builder = spec in registry.names("preferences")
    if builder and (args.format == "best-of-n" or args.subset_column or columns or args.split):
        print(f"rewardlab eval: --data {spec} is a built-in dataset (its test and shifted splits); --format, --subset-column, "
              "--column and --split apply to your own data (hf:<id> or a file)", file=sys.stderr)
        return 2
    # the data first: a bad row, split or column is reported before the reward is loaded and nothing is written
    split = "test"  # a built-in dataset's test (and shifted) split
    if builder:
        data = load_preferences(TextDataConfig(name=spec, max_eval_pairs=args.max_pairs, max_eval_samples=args.max_pairs))
        rows, fmt, source, name = data.test_pairs, "pairs", data.source, spec
    elif args.card:  # a JSONL checked against one of rewardlab's cards
        rows, fmt, source, name = load_eval_pairs(spec, args.card)[: args.max_pairs], "pairs", spec, Path(spec).stem
    else:
        found = load_eval_rows(spec, split=args.split, columns=columns, fmt=args.format, subset_column=args.subset_column,
                               config=args.config, revision=args.revision, max_rows=args.max_pairs)
        rows, fmt, source, split = found.rows, found.format, found.source, found.split_label
        name = spec.removeprefix("hf:").rstrip("/").rsplit("/", 1)[-1] if spec.startswith("hf:") else Path(spec).stem
    reward = rewards.load(args.model)
    if rewards.modality(reward) != "text":
        print(f"{args.model}: eval supports text rewards; this is a {type(reward).__name__}", file=sys.stderr)
        return 2
    if getattr(reward, "uses_references", False) and any(r.get("reference") is None for r in rows):
        missing = next(i for i, r in enumerate(rows, start=1) if r.get("reference") is None)
        print(f"{source}: row {missing}: field 'reference' is missing; {args.model} is a POLAR reward, which scores each answer "
              "against a reference answer (map yours with --column reference=your_column)", file=sys.stderr)
        return 2
    if fmt == "pairs":
        if builder:
            result, _, metrics = evaluate_splits(reward, data)
        else:
            result = evaluate_text_reward(reward, rows)
            metrics = dict(result.metrics)
        chosen, rejected = result.chosen.tolist(), result.rejected.tolist()
    else:
        chosen, rejected = score_best_of_n(reward, rows)
        metrics = {}
    report = suite(rows, fmt, chosen, rejected)
    merged = {**metrics, **report, "data": source, "model": args.model}
    if metrics:
        print(format_report(metrics, split=split))
    print(format_suite(report, split=split))
    if not args.no_mlflow:
        _, pc, pr = expand_pairs(rows, fmt, chosen, rejected)
        run_id = tracking.log_evaluation(args.model, merged, rows, source, name, report_figures(pc, pr, report))
        merged["eval_run_id"] = run_id
        print(f"MLflow evaluation run: {run_id}  (store: {tracking.resolve_uri()}; browse with `rewardlab ui`)")
    if args.json:  # NaN (a measure with no pairs to measure, e.g. no pair differs in length) is written as null
        Path(args.json).write_text(json.dumps(_json_ready(merged), indent=2, allow_nan=False))
    return 0


def cmd_recipes(args) -> int:
    from rewardlab import recipes

    if args.action == "list":
        rows = [("recipe", "learner", "description")]
        rows += [(name, *recipes.summary(recipes.recipes_dir() / f"{name}.yaml")) for name in recipes.names()]
        wide = [max(len(r[i]) for r in rows) for i in range(2)]
        for name, learner, first in rows:
            print(f"{name:{wide[0]}s}  {learner:{wide[1]}s}  {first}")
        return 0
    notes: list[str] = []
    config, text, path = recipes.load(args.name, args.set, notes=notes)
    print(f"# {path}\n{text}")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.resolved:
        import yaml

        print("# resolved, with every default:\n" + yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return 0


def cmd_data(args) -> int:
    from rewardlab.data import cards, registry
    from rewardlab.data.loaders import validate_file
    from rewardlab.data.rows import write_jsonl

    if args.action == "validate":
        card = cards.parse_card(args.card) if Path(args.card).exists() else cards.find_card(args.card)
        if not args.file:
            print(f"{card.path}: card OK ({', '.join(card.configs())})")
            return 0
        print(validate_file(card, args.file, args.config))
        return 0
    builder = registry.get(args.name, "data build")
    settings = builder.typed(dict(_kv(args.option)), "--option")
    export = builder.export(builder.load_module(), settings, args.regenerate)
    card = builder.card()
    for stem, (rows, config) in export.files.items():
        card.validate_rows(rows, config, source=f"{args.name} {stem}")
    for line in export.summary:
        print(f"{args.name}: {line}" if not line.startswith(" ") and not line.endswith(":") else line)
    if args.out:
        out = Path(args.out)
        for stem, (rows, _) in export.files.items():
            write_jsonl(out / f"{stem}.jsonl", rows)
        for name, write in export.extras.items():
            write(out / name)
        written = [f"{stem}.jsonl" for stem in export.files] + list(export.extras)
        print("written to " + ", ".join(f"{out}/{name}" for name in written))
    return 0


def _kv(items: list[str]):
    import yaml

    from rewardlab.data.cards import DataError

    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise DataError(f"--option {item!r}: expected KEY=VALUE, e.g. --option seed=1 (`rewardlab data build --help` lists "
                            "each builder's options)")
        yield key, yaml.safe_load(value)


def cmd_serve(args) -> int:
    import os

    from rewardlab.serve import API_KEY_ENV, ServeSettings, serve

    settings = ServeSettings(
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        max_queue=args.max_queue,
        timeout_s=args.timeout_s,
        normalize=args.normalize,
        pooling_format=args.pooling_format,
        max_batch_tokens=args.max_batch_tokens or None,
        compile=args.compile,
    )
    serve(args.model, host=args.host, port=args.port, settings=settings, device=args.device,
          access_log=not args.no_access_log, graceful_timeout_s=args.graceful_timeout)
    return 0


def cmd_models(args) -> int:
    import time

    from rewardlab import tracking

    store = tracking.check_store()
    if args.action == "alias":
        if len(args.args) != 3:
            print("usage: rewardlab models alias NAME VERSION ALIAS   (e.g. rewardlab models alias quickstart-bt 3 champion)", file=sys.stderr)
            return 2
        name, version, alias = args.args
        tracking.set_alias(name, alias, version)
        print(f"models:/{name}@{alias} -> version {version} (store: {store})")
        return 0
    models = tracking.registered_models()
    print(f"store: {store}")
    if not models:
        print("no registered models yet: `rewardlab train RECIPE` registers one under the recipe's name")
        return 0
    for m in models:
        latest = m["versions"][0] if m["versions"] else None
        aliases = ", ".join(f"@{a} -> {v}" for a, v in sorted(m["aliases"].items())) or "no aliases"
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(latest["created"] / 1000)) if latest else "-"
        print(f"{m['name']:28s} {len(m['versions'])} version(s); latest {latest['version'] if latest else '-'} ({when}); {aliases}")
    return 0


def cmd_ui(args) -> int:
    from rewardlab import tracking

    return tracking.ui(args.tracking_uri, host=args.host, port=args.port)


class _BuildHelp(argparse.ArgumentParser):
    """`data build --help` lists every builder's options; they are read from the code only when help is asked for."""

    def format_help(self) -> str:
        from rewardlab.data import registry

        return super().format_help() + "\n" + registry.options_help() + "\n"


def _builder_names() -> list[str]:
    from rewardlab.data.registry import BUILDERS  # a table of names: importing it loads no builder

    return list(BUILDERS)


def _add_build_parser(dsub) -> argparse.ArgumentParser:
    default_class, dsub._parser_class = dsub._parser_class, _BuildHelp  # argparse takes the class per subparsers group only
    b = dsub.add_parser("build", help="build a built-in dataset and check it against its card",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Build a built-in dataset (or load its shipped or cached rows) and check it against its card.",
                        epilog="examples:\n  rewardlab data build math-answers --out data/\n"
                        "  rewardlab data build math-steps --option n_questions=80 --regenerate\n"
                        "  rewardlab data build expert-demos --option task=InvertedDoublePendulum-v5 --out demos/\n"
                        "  rewardlab data build s2e-explanations --option domain=lunarlander --option episodes=50")
    b.add_argument("name", nargs="?", help=" | ".join(_builder_names()))
    b.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="builder setting, e.g. --option seed=1 (see below)")
    b.add_argument("--regenerate", action="store_true", help="sample again instead of using shipped or cached rows (slow)")
    b.add_argument("--out", default=None, help="also write the rows as JSONL into this folder (expert-demos: also demos.npz)")
    dsub._parser_class = default_class
    return b


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rewardlab",
        description="Reward modeling and preference learning: train from recipes, evaluate, serve rewards over HTTP, browse runs in MLflow.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="run a recipe (YAML) and track it in MLflow",
                       description="Run a recipe. Progress is shown; the run, its plots and the registered model go to the "
                       f"MLflow store: the recipe's tracking.uri, else {STORE_HELP}. The output folder runs/<name> holds the "
                       "resume state and the reward (a link to the store's copy once the run finishes; checkpoints are removed "
                       "then unless the recipe sets keep_checkpoints: true). Training on your own data (--set data.path=... or "
                       "data.name=hf:...) names the run after the data, so the recipe's own registered model and folder stay as "
                       "they are.")
    t.add_argument("recipe", help="a recipe file, or the name of a bundled recipe (see `rewardlab recipes list`)")
    t.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a recipe value, e.g. --set train.max_steps=10 (repeatable; values are YAML)")
    t.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir, in the same MLflow run; "
                   "a recipe value that differs from the run's logged parameters is an error naming the key")
    t.add_argument("--allow-changed", action="store_true", help="with --resume: continue with the changed values anyway (each "
                   "change is printed and logged to the run as resume_changes.json)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="evaluate a reward: pairwise and best-of-N accuracy per subset, calibration, length bias",
                       description=EVAL_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("model", help="a reward folder, models:/name/version, models:/name@alias, runs:/id/model, or a running "
                   "`rewardlab serve` at http://host:port")
    e.add_argument("--data", default="math-answers", metavar="NAME|hf:ID|PATH",
                   help="math-answers (default) or math-steps: a built-in dataset's test and shifted splits; hf:<id> (or "
                   "hf:/local/dataset/folder): a Hugging Face dataset; a .jsonl/.json/.parquet/.csv file")
    e.add_argument("--data-path", default=None, help="a file to evaluate on (the same as --data PATH)")
    e.add_argument("--format", choices=("pairs", "best-of-n"), default=None,
                   help="pairs: one chosen and one rejected answer per row; best-of-n: chosen and rejected are lists "
                   "(RewardBench 2); default: detected from the first row")
    e.add_argument("--subset-column", default=None, metavar="C", help="report accuracy per value of this column (default: "
                   "a 'subset' column when the data has one)")
    e.add_argument("--split", default=None, help="the split to evaluate (default: test, test_prefs, validation or the only "
                   "one; with a 'split' column, its test rows, else every row)")
    e.add_argument("--column", action="append", default=[], metavar="FIELD=COLUMN",
                   help="map a field (prompt, chosen, rejected, subset, reference) to your column name (repeatable)")
    e.add_argument("--config", default=None, help="the Hugging Face dataset's configuration name")
    e.add_argument("--revision", default=None, help="a branch, tag or commit of the Hugging Face dataset")
    e.add_argument("--card", default=None, help="validate a JSONL --data-path against this rewardlab card first")
    e.add_argument("--max-pairs", type=int, default=None, help="evaluate on at most this many rows (and samples)")
    e.add_argument("--json", default=None, metavar="OUT", help="also write every measure to this JSON file")
    e.add_argument("--no-mlflow", action="store_true", help="do not log an evaluation run to MLflow")
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("recipes", help="list bundled recipes, or show one",
                       description="The bundled recipes (recipes/*.yaml): `list` names them, `show NAME` prints one.")
    rsub = r.add_subparsers(dest="action", required=True, metavar="{list,show}")
    rsub.add_parser("list", help="every bundled recipe with its learner and what it does",
                    description="Every bundled recipe, its learner (or consumer job) and the first line of its description.")
    rs = rsub.add_parser("show", help="print a recipe as it would run", formatter_class=argparse.RawDescriptionHelpFormatter,
                         description="Print a recipe's YAML as it would run (with --set overrides applied and validated).",
                         epilog="examples:\n  rewardlab recipes show quickstart\n  rewardlab recipes show gail_idp --resolved\n"
                         "  rewardlab recipes show quickstart --set train.epochs=2 --resolved")
    rs.add_argument("name", nargs="?", default="quickstart", help="recipe name or path (default: quickstart)")
    rs.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", help="show with overrides applied")
    rs.add_argument("--resolved", action="store_true", help="also print the validated config with every default filled in")
    r.set_defaults(func=cmd_recipes)

    d = sub.add_parser("data", help="build a built-in dataset, or validate rows against a card",
                       description="`build NAME` makes (or loads the shipped or cached rows of) a built-in dataset; "
                       "`validate --card CARD --file ROWS.jsonl` checks your rows against a dataset card.")
    dsub = d.add_subparsers(dest="action", required=True, metavar="{build,validate}")
    _add_build_parser(dsub)
    dv = dsub.add_parser("validate", help="check rows against a dataset card (every bad row is reported)",
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         description="Check a JSONL file against a card's schema: every bad row (up to 20, lines that are not "
                         "JSON included) with its number, field and reason; an empty file and a split the card does not declare "
                         "are errors too. --card preference-pairs applies exactly the rules that `train` and `eval` apply to "
                         "your own pairs.",
                         epilog="examples:\n  rewardlab data validate --card reference-pairs --file my.jsonl\n"
                         "  rewardlab data validate --card math-answers --file pairs.jsonl --config pairs\n"
                         "cards: data_cards/*.md (each shows an example row)")
    dv.add_argument("name", nargs="?", help="the card (same as --card)")
    dv.add_argument("--card", default=None, help="card path or dataset name")
    dv.add_argument("--file", default=None, help="a JSONL file to check against the card")
    dv.add_argument("--config", default=None, help="which config of the card (e.g. pairs); default: the card's first")
    d.set_defaults(func=cmd_data)

    s = sub.add_parser(
        "serve", help="serve a reward over HTTP (FastAPI + uvicorn, micro-batched)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve any reward that `rewards.load` accepts. Concurrent requests are merged into batches.",
        epilog=SERVE_EPILOG,
    )
    s.add_argument("model", help="a reward folder, models:/name/version, models:/name@alias or runs:/id/model")
    s.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' on every route but /health, /docs and /openapi.json included "
                   "(default: $REWARDLAB_API_KEY)")
    s.add_argument("--max-batch-size", type=int, default=64, help="most items per forward pass (default 64)")
    s.add_argument("--max-wait-ms", type=float, default=0.0,
                   help="how long a batch that is not full waits for more requests (default 0: requests that arrive while "
                   "the model is busy form the next batch)")
    s.add_argument("--max-body-mb", type=float, default=8.0, help="larger request bodies get 413 (default 8)")
    s.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    s.add_argument("--graceful-timeout", type=float, default=30.0, help="seconds to let in-flight requests finish on shutdown")
    s.add_argument("--no-access-log", action="store_true", help="do not log one line per request")
    s.add_argument("--max-queue", type=int, default=None, metavar="ITEMS",
                   help="most items waiting or being scored; beyond it requests get 503 with Retry-After (default: unbounded)")
    s.add_argument("--timeout-s", type=float, default=None, help="per-request deadline: 504 after it, and the request's queued "
                   "work is dropped (default: none)")
    s.add_argument("--normalize", action="store_true", help="whiten text rewards with the mean and std measured on the "
                   "evaluation set at training time (reward.json 'normalization', shown by /v1/info); /v1/score takes "
                   '"normalize": true/false per request')
    s.add_argument("--max-batch-tokens", type=int, default=8192, help="token budget of one forward pass of a text reward "
                   "(rows x padded length; rows sorted by length so little is padding); 0: count rows only (default 8192)")
    s.add_argument("--compile", action="store_true", help="run a text reward through torch.compile (inductor), warmed up "
                   "at start; same scores, faster on CPU (see the README's serving table)")
    s.add_argument("--pooling-format", choices=("vllm", "lmdeploy"), default="vllm",
                   help="the /pooling response shape: vllm (POLAR client server_type='vllm') or lmdeploy (server_type='lmdeploy')")
    s.set_defaults(func=cmd_serve)

    x = sub.add_parser(
        "explain", help="explain transitions in words (S2E rewards)", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Print the explanation of each transition: the concept sentences that an S2E reward predicts (or, with "
        "rules:connect4 / rules:lunarlander, that the rule-based extractors find).",
        epilog="""inputs (one of):
  --file ROWS.jsonl           rows with obs (or state), action, next_obs (or next_state): s2e-explanations rows work as they are;
                              Connect 4 rows may instead be {"board": "......./.../ooo.xx.", "column": 3} (typed boards)
  --board B --column C        Connect 4: six rows top first, '/' between rows; . empty, x the player to move, o the opponent;
                              the column is 0-6 (a full column is explained as illegal); a board no game reaches is refused
  --obs JSON --action A --next-obs JSON   one transition (Lunar Lander: 8 numbers each, action 0-3)
examples:
  rewardlab explain runs/s2e-connect4/reward --board "......./......./......./......./xx...../xx.ooo." --column 6
  rewardlab explain rules:connect4 --board "......./......./......./......./......./ooo.xx." --column 3
  rewardlab explain models:/s2e-lunarlander/1 --file transitions.jsonl --json
  rewardlab explain http://127.0.0.1:8000 --file transitions.jsonl""",
    )
    x.add_argument("model", help="a reward folder, MLflow URI, http://host:port of `rewardlab serve`, or rules:connect4 | rules:lunarlander")
    x.add_argument("--file", default=None, help="a JSONL (or JSON list) of transitions")
    x.add_argument("--board", default=None, help="Connect 4 board before the move, from the mover's side")
    x.add_argument("--column", type=int, default=None, help="Connect 4 column played (0-6)")
    x.add_argument("--obs", default=None, help="one observation as a JSON list")
    x.add_argument("--action", default=None, help="its action (JSON)")
    x.add_argument("--next-obs", default=None, help="the next observation as a JSON list")
    x.add_argument("--json", action="store_true", help="print JSON lines with the explanation and the shaping reward")
    x.set_defaults(func=cmd_explain)

    m = sub.add_parser("models", help="list registered rewards, or point an alias (e.g. @champion) at a version",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Registered rewards in the MLflow store. Every `rewardlab train` registers its reward under the "
                       "recipe's name and moves that name's `latest`; an alias such as @champion moves only when you say so.",
                       epilog="examples:\n  rewardlab models list\n  rewardlab models alias quickstart-bt 3 champion   "
                       "# then: rewardlab serve models:/quickstart-bt@champion")
    m.add_argument("action", choices=["list", "alias"])
    m.add_argument("args", nargs="*", metavar="NAME VERSION ALIAS", help="alias: the registered name, its version, the alias")
    m.set_defaults(func=cmd_models)

    u = sub.add_parser("ui", help="open the MLflow UI on the same store (127.0.0.1 by default)",
                       description=f"The MLflow UI on rewardlab's store: {STORE_HELP}.")
    u.add_argument("--tracking-uri", default=None, help=f"default: {STORE_HELP}")
    u.add_argument("--host", default="127.0.0.1")
    u.add_argument("--port", type=int, default=5000)
    u.set_defaults(func=cmd_ui)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "data" and args.action == "validate" and not args.card:
        args.card = args.name
    if args.command == "data" and not (args.name or getattr(args, "card", None)):
        print("rewardlab data: name a builder (build) or a card (validate)", file=sys.stderr)
        return 2
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    try:
        return args.func(args)
    except _user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Interrupted) else "interrupted"
        hint = "; the MLflow run is marked KILLED and `rewardlab train ... --resume` continues from the last checkpoint" \
            if args.command == "train" else ""
        print(f"{what}{hint}", file=sys.stderr, flush=True)
        return 143 if isinstance(exc, Interrupted) else 130
    finally:
        if in_main and previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
