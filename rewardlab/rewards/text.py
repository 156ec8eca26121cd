"""The scalar text reward: a sequence-classification head on a transformers backbone, read back from a folder.

Training and inference share ``encode`` so that a response is tokenized, templated and truncated the same way
in both places: a reward model scored on text rendered differently from its training data is a different model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardlab.rewards.base import Chat, Message, check_text_batch, chat_to_messages
from rewardlab.rewards.registry import register, write_reward_json


def _use_chat_template(tokenizer, template: str) -> bool:
    return template == "chat" and bool(getattr(tokenizer, "chat_template", None))


def render(tokenizer, prompt: Chat, response: Chat, template: str = "chat") -> str:
    """The text the model reads.

    ``template="chat"`` uses the tokenizer's chat template when it has one (faithful to how a chat model was
    sampled, but it may add a long default system prompt); ``"plain"`` is prompt and response on two lines,
    about half the tokens on short answers.
    """
    if _use_chat_template(tokenizer, template):
        messages = chat_to_messages(prompt, "user", "prompt") + chat_to_messages(response, "assistant", "response")
        return tokenizer.apply_chat_template(messages, tokenize=False)
    prompt_text = "\n".join(m["content"] for m in chat_to_messages(prompt, "user", "prompt"))
    response_text = "\n".join(m["content"] for m in chat_to_messages(response, "assistant", "response"))
    return f"{prompt_text}\n{response_text}"


def encode(tokenizer, prompt: Chat, response: Chat, max_length: int, template: str = "chat") -> tuple[list[int], bool]:
    """Token ids for one (prompt, response), cut from the left to ``max_length``; also whether it was cut.

    Cutting from the left keeps the end of the response, where the reward is read. Without a chat template the
    text ends with the EOS token (SEP for encoders), as TRL's RewardTrainer does.
    """
    ids, cut, _ = encode_span(tokenizer, prompt, response, max_length, template, with_start=False)
    return ids, cut


def encode_span(
    tokenizer, prompt: Chat, response: Chat, max_length: int, template: str = "chat", with_start: bool = True
) -> tuple[list[int], bool, int]:
    """``encode`` plus the index of the first response token in the returned ids (0 when the prompt was cut away
    entirely). Tokens from there to the end are the response and the end token(s) where the reward is read.

    The boundary comes from the tokenizer's character offsets, so a token that straddles it counts as response.
    """
    chat = _use_chat_template(tokenizer, template)
    text = render(tokenizer, prompt, response, template)
    enc = tokenizer(text, add_special_tokens=not chat, return_offsets_mapping=with_start)
    ids = enc["input_ids"]
    start = 0
    if with_start:
        boundary = _response_char_start(tokenizer, prompt, response, template, text)
        ends = [end for _, end in enc["offset_mapping"]]
        start = next((i for i, end in enumerate(ends) if end > boundary), len(ids))
    if tokenizer.eos_token_id is not None and not chat and ids[-1:] != [tokenizer.eos_token_id]:
        ids = ids + [tokenizer.eos_token_id]
    start = min(start, len(ids) - 1)  # an empty response still owns the end token
    if len(ids) > max_length:
        return ids[-max_length:], True, max(0, start - (len(ids) - max_length))
    return ids, False, start


def _response_char_start(tokenizer, prompt: Chat, response: Chat, template: str, text: str) -> int:
    """Where the response begins in the rendered ``text``."""
    prompt_messages = chat_to_messages(prompt, "user", "prompt")
    if _use_chat_template(tokenizer, template):
        prefix = tokenizer.apply_chat_template(prompt_messages, tokenize=False, add_generation_prompt=True)
        if text.startswith(prefix):
            return len(prefix)
        first = chat_to_messages(response, "assistant", "response")[0]["content"]
        found = text.rfind(first) if first else -1
        return found if found >= 0 else len(prefix)
    return len("\n".join(m["content"] for m in prompt_messages)) + 1


MAX_BATCH_TOKENS = 8192
"""Default token budget of one forward pass at inference (batch rows x padded width)."""


def padded_batches(seqs: list[list[int]], batch_size: int, pad_id: int | None, max_tokens: int | None = None):
    """Yield ``(indices, input_ids, attention_mask)`` over ``seqs``, longest first so each batch pads little.

    A batch holds at most ``batch_size`` rows and, with ``max_tokens``, at most that many tokens once padded
    (rows x the longest row's length): many short texts share a pass, a few long ones do not blow it up. A single
    row longer than the budget still gets its own pass."""
    import torch

    pad = pad_id if pad_id is not None else 0
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    start = 0
    while start < len(order):
        width = len(seqs[order[start]])
        rows = batch_size if max_tokens is None else max(1, min(batch_size, max_tokens // max(width, 1)))
        idx = order[start : start + rows]
        start += len(idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, : len(seqs[i])] = torch.tensor(seqs[i])
            mask[row, : len(seqs[i])] = 1
        yield idx, ids, mask


def encode_text(tokenizer, text: str, max_length: int, template: str = "chat") -> tuple[list[int], bool]:
    """Token ids of text already rendered as ``render`` renders it (a chat template applied by the caller, as
    verl's reward loop does), tokenized exactly as ``encode`` tokenizes its own rendering: same special tokens,
    same end token, same left cut. So ``encode_text(render(p, r))`` equals ``encode(p, r)``.

    A ``plain`` reward never saw the chat template, yet verl renders with it: a text that is exactly the chat
    template's rendering of some messages is turned back into them (``recover_messages``) and encoded as ``encode``
    encodes those messages, so it scores as ``score`` does. Any other text is read as it is."""
    chat = _use_chat_template(tokenizer, template)
    if not chat and getattr(tokenizer, "chat_template", None):
        messages = recover_messages(tokenizer, text)
        if messages:
            return encode(tokenizer, messages[:-1], messages[-1:], max_length, template)
    bos = getattr(tokenizer, "bos_token", None)
    if chat and bos and not text.startswith(bos) and _template_starts_with(tokenizer, bos):
        # verl strips a leading BOS from the rendered text because vLLM's tokenizer adds it back; do the same
        text = bos + text
    ids = tokenizer(text, add_special_tokens=not chat)["input_ids"]
    if tokenizer.eos_token_id is not None and not chat and ids[-1:] != [tokenizer.eos_token_id]:
        ids = ids + [tokenizer.eos_token_id]
    if len(ids) > max_length:
        return ids[-max_length:], True
    return ids, False


_PROBE = ("rlprobe0", "rlprobe1", "rlprobe2", "rlprobe3")


def _render_chat(tokenizer, messages: list[Message]) -> str | None:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception:  # noqa: BLE001 - a template may refuse a role (no system message) or raise on its own terms
        return None


def chat_markers(tokenizer) -> dict | None:
    """What the tokenizer's chat template writes around each message, read off renderings of probe messages: the
    text before the first message (a BOS, a default system prompt), and each role's head and tail. None when the
    template does not render one message after another in that way. Computed once per tokenizer."""
    if hasattr(tokenizer, "_rewardlab_chat_markers"):
        return tokenizer._rewardlab_chat_markers
    a, b, c, sys_ = _PROBE
    one = _render_chat(tokenizer, [{"role": "user", "content": a}])
    two = _render_chat(tokenizer, [{"role": "user", "content": a}, {"role": "assistant", "content": b}])
    three = _render_chat(tokenizer, [{"role": "user", "content": a}, {"role": "assistant", "content": b},
                                     {"role": "user", "content": c}])
    markers = None
    if one and two and three and two.startswith(one) and three.startswith(two):
        roles = {}
        for role, block, probe in (("assistant", two[len(one):], b), ("user", three[len(two):], c)):
            if block.count(probe) == 1:
                head, tail = block.split(probe)
                roles[role] = (head, tail)
        if len(roles) == 2 and all(head and tail for head, tail in roles.values()) and one.count(a) == 1:
            head, tail = roles["user"]
            first = one[: one.index(a)]
            if first.endswith(head) and one.endswith(a + tail):
                prefixes = [first[: len(first) - len(head)]]
                with_sys = _render_chat(tokenizer, [{"role": "system", "content": sys_}, {"role": "user", "content": a}])
                user_block = head + a + tail
                if with_sys and with_sys.count(sys_) == 1 and with_sys.endswith(user_block):
                    before, after = with_sys[: -len(user_block)].split(sys_)
                    lead = _system_lead(tokenizer, before, head)
                    if before[len(lead):] and after:
                        roles["system"] = (before[len(lead):], after)
                        prefixes.append(lead)
                markers = {"prefixes": list(dict.fromkeys(prefixes)), "roles": roles}
    tokenizer._rewardlab_chat_markers = markers
    return markers


def _system_lead(tokenizer, before: str, user_head: str) -> str:
    """The text before a system message's head in ``before`` (head included): nothing, or the BOS. The head is
    taken to be the user's with the role renamed (ChatML, Llama 3), else what follows the BOS."""
    guess = user_head.replace("user", "system")
    if "user" in user_head and before.endswith(guess):
        return before[: len(before) - len(guess)]
    bos = getattr(tokenizer, "bos_token", None)
    return bos if bos and before.startswith(bos) else ""


def _parse_blocks(text: str, roles: dict[str, tuple[str, str]]) -> list[Message] | None:
    """Messages from a run of ``head content tail`` blocks covering all of ``text``, or None."""
    messages, at = [], 0
    while at < len(text):
        for role, (head, tail) in roles.items():
            if text.startswith(head, at):
                end = text.find(tail, at + len(head))
                if end < 0 and text.endswith(tail.rstrip()):  # a last tail without its trailing newline
                    end, tail = len(text) - len(tail.rstrip()), tail.rstrip()
                if end < 0:
                    return None
                messages.append({"role": role, "content": text[at + len(head) : end]})
                at = end + len(tail)
                break
        else:
            return None
    return messages


def recover_messages(tokenizer, text: str) -> list[Message] | None:
    """The messages whose chat-template rendering is exactly ``text`` (also with the leading BOS that verl strips
    before sending), or None. A candidate is parsed with ``chat_markers`` and kept only if rendering it again gives
    the text back, so a text that merely looks like a chat is never misread."""
    markers = chat_markers(tokenizer)
    if markers is None:
        return None
    bos = getattr(tokenizer, "bos_token", None)
    candidates = [text] + ([bos + text] if bos and not text.startswith(bos) else [])
    for full in candidates:
        for prefix in markers["prefixes"]:
            if not full.startswith(prefix):
                continue
            messages = _parse_blocks(full[len(prefix):], markers["roles"])
            if messages and _render_chat(tokenizer, messages) == full:
                return messages
    return None


PLAIN_RENDERING = "the prompt's and the response's contents on separate lines (prompt\\nresponse)"


def rendering_info(tokenizer, template: str) -> dict[str, Any]:
    """What texts sent already rendered (``/classify``, ``/pooling``, ``/v1/embeddings``) must look like for this
    reward, for ``/v1/info``; ``warning`` is set when a chat-templated text (what verl sends) cannot be scored as the
    reward was trained, so the server can say so at start."""
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    if _use_chat_template(tokenizer, template):
        return {"template": "chat", "expects": "the conversation rendered with the tokenizer's chat template",
                "chat_template_texts": "scored as sent", "warning": None}
    info = {"template": "plain", "expects": PLAIN_RENDERING, "chat_template_texts": None, "warning": None}
    if has_chat:
        probe = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}]
        rendered = _render_chat(tokenizer, probe)
        if rendered is not None and recover_messages(tokenizer, rendered) == probe:
            info["chat_template_texts"] = "recovered: turned back into messages and scored with the plain template"
        else:
            info["chat_template_texts"] = "scored as sent: this chat template's rendering cannot be turned back into messages"
            info["warning"] = ("this reward was trained on the plain template (prompt\\nresponse), and texts rendered with "
                               "its tokenizer's chat template (verl's /classify, /v1/embeddings) cannot be turned back into "
                               "messages: they are scored as sent, not as trained; send prompt\\nresponse texts, or use "
                               "/v1/score or /get_reward")
    return info


def compile_for_serving(reward, warmup: list[tuple[int, int]] = ((1, 8), (4, 32))) -> float:
    """Replace ``reward.model`` by ``torch.compile(model, dynamic=True)`` (inductor; one graph for every batch and
    length) and run it once per ``warmup`` (batch, length) so the first requests do not pay for compilation.
    Scores stay those of the eager model (within 1e-6 on CPU, tested). Returns the seconds it took."""
    import time

    import torch

    start = time.perf_counter()
    eager = reward.model
    reward.model = torch.compile(eager, dynamic=True)
    pad = reward.tokenizer.pad_token_id or 0
    with torch.inference_mode():
        for batch, length in warmup:
            ids = torch.full((batch, length), max(pad, 1) + 1, dtype=torch.long, device=reward.device)
            reward.model(input_ids=ids, attention_mask=torch.ones_like(ids))
    return time.perf_counter() - start


def _template_starts_with(tokenizer, token: str) -> bool:
    return tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False).startswith(token)


def score_stats(scores) -> dict[str, float]:
    """What a consumer needs to whiten a reward: mean, standard deviation and quantiles of its scores on held-out
    answers (stored in ``reward.json`` as ``normalization``; ``rewardlab serve --normalize`` applies them)."""
    import numpy as np

    values = np.asarray(scores, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        raise ValueError(f"reward statistics need at least 2 finite scores, found {len(values)}")
    q = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {"mean": float(values.mean()), "std": float(values.std()), "q05": float(q[0]), "q25": float(q[1]),
            "median": float(q[2]), "q75": float(q[3]), "q95": float(q[4]), "n": int(len(values))}


def whiten(scores, stats: dict) -> list[float]:
    """(score - mean) / std with a reward's stored ``score_stats`` (std 0: centred only)."""
    std = stats["std"] if stats["std"] > 0 else 1.0
    return [(s - stats["mean"]) / std for s in scores]


def record_normalization(folder: str | Path, scores) -> dict[str, float]:
    """Measure ``score_stats`` and add them to the reward folder's ``reward.json``; returns them."""
    import json

    from rewardlab.rewards.registry import REWARD_JSON

    stats = score_stats(scores)
    path = Path(folder) / REWARD_JSON
    meta = json.loads(path.read_text())
    meta["normalization"] = stats
    path.write_text(json.dumps(meta, indent=2, sort_keys=True))
    return stats


def load_classifier_folder(folder: str | Path):
    """(reward.json contents, one-label sequence classifier, tokenizer) from a reward folder."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rewardlab.rewards.registry import read_reward_json

    meta = read_reward_json(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=1)
    return meta, model, tokenizer


def save_classifier_folder(model, tokenizer, folder: str | Path, kind: str, **meta: Any) -> Path:
    """Safetensors weights, the tokenizer and ``reward.json`` naming ``kind``: nothing pickled."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    write_reward_json(folder, kind, **meta)
    return folder


@register("scalar_text")
class ScalarTextReward:
    """A Bradley-Terry style reward model: one scalar per (prompt, response). Ignores references.

    After each ``score`` call, ``last_truncated[i]`` says whether item i was cut to ``max_length`` (the server
    reports it to clients).
    """

    modality = "text"

    def __init__(
        self, model, tokenizer, max_length: int = 512, batch_size: int = 16, device: str | None = None, template: str = "chat"
    ):
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.template = template
        self.batch_size = batch_size
        self.max_batch_tokens = MAX_BATCH_TOKENS
        self.last_truncated: list[bool] = []

    @classmethod
    def from_folder(cls, folder: str | Path, **kwargs: Any) -> ScalarTextReward:
        meta, model, tokenizer = load_classifier_folder(folder)
        kwargs.setdefault("max_length", meta.get("max_length", 512))
        kwargs.setdefault("template", meta.get("template", "chat"))
        return cls(model, tokenizer, **kwargs)

    @staticmethod
    def save(model, tokenizer, folder: str | Path, max_length: int, template: str = "chat", **meta: Any) -> Path:
        """Write weights, tokenizer and ``reward.json``: everything ``from_folder`` needs, nothing pickled."""
        return save_classifier_folder(model, tokenizer, folder, "scalar_text", max_length=max_length, template=template, **meta)

    def score(self, prompts: Sequence[Chat], responses: Sequence[Chat], references: Sequence[Chat] | None = None) -> list[float]:
        """One float per response (one prompt and one response, each a string or a chat, give a list of one);
        longest-first batches so padding is small. ``last_truncated`` says what was cut."""
        prompts, responses, _ = check_text_batch(prompts, responses, references)
        return self._forward([encode(self.tokenizer, p, r, self.max_length, self.template) for p, r in zip(prompts, responses)])

    def score_texts(self, texts: Sequence[str] | str) -> list[float]:
        """Scores of whole conversations already rendered (what vLLM's and SGLang's classify routes take): with this
        model's template, or with the tokenizer's chat template for a ``plain`` reward (see ``encode_text``). Equal to
        ``score`` on the same conversation."""
        texts = [texts] if isinstance(texts, str) else texts
        return self._forward([encode_text(self.tokenizer, t, self.max_length, self.template) for t in texts])

    def rendering(self) -> dict[str, Any]:
        """How pre-rendered texts must look to be scored as this reward was trained (``rendering_info``)."""
        return rendering_info(self.tokenizer, self.template)

    def _forward(self, encoded: list[tuple[list[int], bool]]) -> list[float]:
        import torch

        self.last_truncated = [cut for _, cut in encoded]
        out = [0.0] * len(encoded)
        budget = getattr(self, "max_batch_tokens", MAX_BATCH_TOKENS)
        with torch.inference_mode():
            for idx, ids, mask in padded_batches([e[0] for e in encoded], self.batch_size, self.tokenizer.pad_token_id, budget):
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits[:, 0]
                for row, i in enumerate(idx):
                    out[i] = float(logits[row])
        return out
