"""Training data: cases, rules demonstrations, SFT conversations and the GRPO prompt dataset.

* `load_cases`: the cases of a registered benchmark task (the synthetic set is generated on first
  use), sliced into training and held-out cases by the config.
* `demonstrations`: `RulesBackend` episodes on the cases through `mmreason.loop`, in the image
  frame of the model being trained (captions and boxes in the frame it will see), optionally only
  those whose answer scores correct.
* `trace_messages` / `sft_dataset`: any `Trace` as a chat conversation in TRL's vision format
  (``messages`` with ``{"type": "image"}`` placeholders, ``images`` in order), tool calls kept as
  the raw ``<tool_call>`` text the model writes, tool results as ``role: tool`` messages with
  their images.
* `AssistantOnlyCollator`: renders a batch with the processor's chat template and the tool
  schemas, and masks every token outside the assistant turns (loss only on what the model writes).
* `grpo_dataset`: one prompt per case (system + first user turn with its images, exactly as the
  loop builds them), with the columns the rewards and ``reset`` need.
"""

from __future__ import annotations

import glob
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from grounding.evidence import b64_to_image
from grounding.tool import ToolRegistry
from imaging.errors import MMReasonError
from mmreason.case import Case
from mmreason.loop import LoopConfig, run_episodes
from mmreason.prompts import TOOLS_HEADER
from mmreason.trace import Trace, Turn

from train.config import DataConfig
from train.env import FramedBackend, VolumeCache, start_episode


class DataError(MMReasonError):
    """Training data cannot be built (no cases, unreadable trace, template unsuitable for masking)."""


# -- cases -------------------------------------------------------------------------------------
def load_cases(data: DataConfig, split: str = "train") -> list[Case]:
    """The training (``split="train"``) or held-out (``"eval"``) cases of ``data.task``.

    Training cases are ``[start, start + limit)`` after the family filter; held-out cases are
    ``[eval_start, eval_start + eval_limit)``, by default right after the training cases.
    """
    from benchmarks.core.tasks import load_task

    overrides = {data.task: data.data_dir} if data.data_dir else None
    if data.task == "synthetic" and data.data_dir and not (Path(data.data_dir) / "synthetic.json").exists():
        from benchmarks.core.synthetic import make_synthetic

        make_synthetic(Path(data.data_dir), n=data.synthetic_n, seed=data.synthetic_seed)
    cases = load_task(data.task, overrides).cases
    if data.families:
        cases = [c for c in cases if c.subgroups.get("family") in data.families]
    end = len(cases) if data.limit is None else data.start + data.limit
    if split == "train":
        chosen = cases[data.start:end]
    else:
        first = end if data.eval_start is None else data.eval_start
        chosen = cases[first:first + data.eval_limit]
    if not chosen:
        raise DataError(f"no {split} cases: task '{data.task}' has {len(cases)} cases after the family filter; "
                        f"check data.start/limit/eval_start/eval_limit")
    return chosen


# -- demonstrations ----------------------------------------------------------------------------
@dataclass
class DemoSummary:
    """What `demonstrations` produced: episodes run, kept, and the reasons for dropping the rest."""

    episodes: int
    kept: int
    dropped: dict[str, int]
    kept_by_family: dict[str, int]


def demonstrations(cases: Sequence[Case], backend: FramedBackend, registry: ToolRegistry, config: LoopConfig,
                   only_correct: bool = True, batch_size: int = 8) -> tuple[list[Trace], DemoSummary]:
    """Rules-backend episodes on ``cases`` (``backend`` wraps a `RulesBackend` in the model's frame).

    Returns the kept traces (each with ``meta["case_id"]``) and a summary. With ``only_correct``
    an episode is kept only when it answered and its answer scores correct.
    """
    from benchmarks.core.scoring import score_response
    from mmreason.loop import EpisodeRequest

    volumes = VolumeCache()
    kept: list[Trace] = []
    dropped: dict[str, int] = {}
    families: dict[str, int] = {}
    for start in range(0, len(cases), batch_size):
        batch = list(cases[start:start + batch_size])
        requests = [EpisodeRequest(inputs=volumes.get(c.images), question=c.question, options=c.options,
                                   meta={"case_id": c.id, "task": c.task}) for c in batch]
        traces = run_episodes(requests, backend, config=config, registry=registry)
        for case, trace in zip(batch, traces, strict=True):
            reason = None
            if trace.status != "answered":
                reason = trace.status
            elif only_correct and not score_response(_last_assistant(trace), case).correct:
                reason = "wrong_answer"
            if reason:
                dropped[reason] = dropped.get(reason, 0) + 1
                continue
            kept.append(trace)
            family = case.subgroups.get("family", case.answer_type)
            families[family] = families.get(family, 0) + 1
    return kept, DemoSummary(len(cases), len(kept), dropped, families)


#: tools whose calls only elaborate on a finding already in hand (sizes, zoomed views); a short
#: demonstration drops those that follow the last finding call
ELABORATING_TOOLS = ("measure", "crop", "view")
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)
_CITED = re.compile(r"\s*\[([^\]]*)\]\s*$")


def short_demonstration(trace: Trace) -> Trace:
    """``trace`` cut to the calls its answer needs, ending in the bare ``<answer>`` tag.

    For tiny-model runs (``data.short_demos``): the rules backend follows a finding with measure and
    crop calls and ends with a long, number-heavy explanation, which a tiny model garbles. Here the
    episode ends right after the tool result of its last non-elaborating call (e.g. ``segment``
    for the presence questions, whose result already says found / nothing found), and the final
    assistant turn is only the answer tag, citing the evidence ids still in the trace (e.g.
    ``<answer>Yes [E1]</answer>``). A trace whose calls are all elaborating keeps its calls; one
    without an answer tag is returned unchanged.
    """
    final = _last_assistant(trace)
    match = _ANSWER.search(final)
    if not match:
        return trace
    tag = match.group(1).strip()
    cited_match = _CITED.search(tag)
    answer = tag[:cited_match.start()].strip() if cited_match else tag
    cited = [c.strip() for c in cited_match.group(1).split(",") if c.strip()] if cited_match else []
    last_answer = max(i for i, t in enumerate(trace.turns) if t.role == "assistant")
    finding = [i for i, t in enumerate(trace.turns[:last_answer])
               if t.role == "assistant" and any(c.name not in ELABORATING_TOOLS for c in t.tool_calls)]
    end = last_answer
    if finding:
        end = finding[-1] + 1
        while end < last_answer and trace.turns[end].role == "tool":
            end += 1
    turns = trace.turns[:end]
    kept_ids = [e for t in turns if t.role == "tool" for e in t.evidence_ids]
    # an answer must cite evidence the conversation shows; failing that, the last finding
    cites = [c for c in cited if c in kept_ids] or kept_ids[-1:]
    text = f"<answer>{answer} [{', '.join(cites)}]</answer>" if cites else f"<answer>{answer}</answer>"
    return replace(trace, turns=[*turns, Turn(role="assistant", text=text)])


def _last_assistant(trace: Trace) -> str:
    return next((t.text for t in reversed(trace.turns) if t.role == "assistant"), "")


def read_traces(patterns: Sequence[str]) -> list[Trace]:
    """Traces from JSON files or globs (a pattern matching nothing is an error)."""
    traces = []
    for pattern in patterns:
        paths = sorted(glob.glob(str(Path(pattern).expanduser())))
        if not paths:
            raise DataError(f"no trace files match {pattern!r}")
        for path in paths:
            try:
                raw = json.loads(Path(path).read_text())
                views = raw.get("meta", {}).get("views", []) + [v for e in raw.get("evidence", [])
                                                                 for v in e.get("views", [])]
                trace = Trace.from_dict(raw)
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise DataError(f"cannot read trace {path}: {exc}") from None
            if any("image_png_b64" not in v for v in views):
                # Evidence.from_dict would stand in blank images: training on them would teach nonsense
                raise DataError(f"trace {path} was saved without images; save traces with images "
                                f"(Trace.save(path, with_images=True), mmreason bench --trace-images)")
            traces.append(trace)
    return traces


# -- conversations -----------------------------------------------------------------------------
def trace_messages(trace: Trace) -> tuple[list[dict[str, Any]], list[Any], bool]:
    """A trace as (messages with image placeholders, images in order, tools listed in the system turn).

    Turn texts hold ``<image>`` where an image was shown (`mmreason.loop`); the images come from
    the trace's initial views (``meta["views"]``) and its evidence views, so the trace must have
    been saved with images. The third value is True when the system turn already lists the tools
    (a trace from a backend without native tools); the chat template must then not add them again.
    """
    images_by_view = {}
    for d in trace.meta.get("views", []):
        if "image_png_b64" in d:
            images_by_view[d["view_id"]] = b64_to_image(d["image_png_b64"])
    for ev in trace.evidence:
        for view in ev.views:
            images_by_view[view.view_id] = view.image
    messages: list[dict[str, Any]] = []
    images: list[Any] = []
    for turn in trace.turns:
        pieces = turn.text.split("<image>")
        if len(pieces) - 1 != len(turn.images):
            raise DataError(f"a {turn.role} turn has {len(pieces) - 1} <image> marks but {len(turn.images)} images; "
                            f"the trace is not a mmreason loop trace")
        content: list[dict[str, Any]] = []
        for i, piece in enumerate(pieces):
            if piece:
                content.append({"type": "text", "text": piece})
            if i < len(turn.images):
                ref = turn.images[i]
                if ref.view_id not in images_by_view:
                    raise DataError(f"image of view {ref.view_id} is missing from the trace; save traces with "
                                    f"images (Trace.save(path, with_images=True), mmreason bench --trace-images)")
                content.append({"type": "image"})
                images.append(images_by_view[ref.view_id])
        messages.append({"role": turn.role, "content": content or [{"type": "text", "text": ""}]})
    inline = bool(trace.turns) and trace.turns[0].role == "system" and TOOLS_HEADER in trace.turns[0].text
    return messages, images, inline


def sft_dataset(traces: Sequence[Trace]) -> Any:
    """A `datasets.Dataset` with ``messages``, ``images``, ``tools_inline`` and ``case_id`` per trace."""
    from datasets import Dataset

    rows: dict[str, list[Any]] = {"messages": [], "images": [], "tools_inline": [], "case_id": []}
    for trace in traces:
        messages, images, inline = trace_messages(trace)
        rows["messages"].append(messages)
        rows["images"].append(images)
        rows["tools_inline"].append(inline)
        rows["case_id"].append(str(trace.meta.get("case_id", "")))
    if not rows["messages"]:
        raise DataError("no SFT conversations: no demonstration was kept and no trace was given "
                        "(check data.only_correct, data.families and data.traces)")
    return Dataset.from_dict(rows)


def fill_images(messages: list[dict[str, Any]], images: list[Any]) -> list[dict[str, Any]]:
    """Messages with each ``{"type": "image"}`` placeholder (any role, tool results included) given
    its image, in order; text parts drop the null ``image``/``text`` keys Arrow adds."""
    it = iter(images)
    out = []
    for message in messages:
        parts = []
        for part in message["content"]:
            if part.get("type") == "image":
                parts.append({"type": "image", "image": part.get("image") or next(it)})
            else:
                parts.append({"type": "text", "text": part.get("text") or ""})
        out.append({"role": message["role"], "content": parts})
    if next(it, None) is not None:
        raise DataError("more images than image placeholders in a conversation")
    return out


class AssistantOnlyCollator:
    """Batches conversations for SFT with loss only on the assistant turns.

    Each conversation is rendered by the processor's chat template with ``tools`` (the schemas TRL
    renders for the environment's tools, so SFT and GRPO prompts agree), unless the example lists
    them in its system turn. Assistant spans are found by rendering each prefix of the
    conversation (``messages[:k]`` with the generation prompt, then ``messages[:k + 1]``), which
    needs a prefix-preserving template (TRL's multi-turn training needs the same); the span
    includes the end-of-turn token so the model learns to stop. The span mask is mapped onto the
    processor's tokens, where each image placeholder token expands into a run of image tokens.
    Sequences are not truncated: cutting through an image's tokens would break the batch.
    """

    def __init__(self, processor: Any, tools: list[dict[str, Any]] | None) -> None:
        self.processor = processor
        self.tools = tools
        self.tokenizer = getattr(processor, "tokenizer", processor)
        image_token = getattr(processor, "image_token", "<|image_pad|>")
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(image_token)

    def _render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                generation_prompt: bool = False) -> str:
        return self.processor.apply_chat_template(messages, tools=tools, tokenize=False,
                                                  add_generation_prompt=generation_prompt)

    def spans(self, messages: list[dict[str, Any]],
              tools: list[dict[str, Any]] | None) -> tuple[str, list[tuple[int, int]]]:
        """The rendered conversation and the character spans of its assistant turns."""
        full = self._render(messages, tools)
        spans = []
        for k, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before = self._render(messages[:k], tools, generation_prompt=True)
            through = self._render(messages[:k + 1], tools)
            if not (full.startswith(before) and full.startswith(through) and len(through) > len(before)):
                raise DataError("the chat template is not prefix-preserving (an earlier turn renders differently "
                                "once later turns follow), so assistant tokens cannot be located; use a template "
                                "that renders each turn independently")
            spans.append((len(before), len(through)))
        return full, spans

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        texts, masks, images = [], [], []
        for ex in examples:
            messages = fill_images(ex["messages"], list(ex.get("images") or []))
            tools = None if ex.get("tools_inline") else self.tools
            text, spans = self.spans(messages, tools)
            enc = self.tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
            masks.append([int(any(a <= start < b for a, b in spans)) for start, _ in enc["offset_mapping"]])
            texts.append(text)
            images += [p["image"] for m in messages for p in m["content"] if p["type"] == "image"]
        batch = self.processor(text=texts, images=images or None, padding=True, padding_side="right",
                               return_tensors="pt", add_special_tokens=False)
        labels = batch["input_ids"].clone()
        labels[batch["attention_mask"] == 0] = -100
        for row, mask in enumerate(masks):
            expanded = self._expand(mask, batch["input_ids"][row].tolist(), int(batch["attention_mask"][row].sum()))
            for j, keep in enumerate(expanded):
                if not keep:
                    labels[row, j] = -100
        batch["labels"] = labels
        return dict(batch)

    def _expand(self, mask: list[int], expanded_ids: list[int], length: int) -> list[int]:
        """The per-token mask of the unexpanded text carried onto the processor's expanded tokens."""
        out: list[int] = []
        j = 0
        for keep in mask:
            if j < length and expanded_ids[j] == self.image_token_id:
                while j < length and expanded_ids[j] == self.image_token_id:
                    out.append(0)
                    j += 1
                continue
            out.append(keep)
            j += 1
        if j != length:
            raise DataError(f"token alignment failed ({j} of {length} tokens mapped); the processor changes "
                            f"the text in a way other than expanding image tokens")
        return out + [0] * (len(expanded_ids) - length)


# -- GRPO prompts ------------------------------------------------------------------------------
def grpo_dataset(cases: Sequence[Case], backend: FramedBackend, registry: ToolRegistry, config: LoopConfig,
                 volumes: VolumeCache | None = None) -> Any:
    """One prompt per case, in TRL's conversational vision format.

    Columns: ``prompt`` (system + first user turn, images as placeholders), ``images``,
    ``case_id``, ``answer``, ``answer_type``, ``boxes`` / ``masks`` / ``reference_steps`` (JSON,
    the ground truth the rewards check against) and ``case`` (the whole `Case` as JSON, read by
    `train.env.GroundingEnv.reset`).
    """
    from datasets import Dataset

    volumes = volumes or VolumeCache()
    rows: dict[str, list[Any]] = {k: [] for k in ("prompt", "images", "case_id", "answer", "answer_type", "boxes",
                                                  "masks", "reference_steps", "case")}
    for case in cases:
        episode = start_episode(case, backend, registry, config, volumes)
        prompt, images = [], []
        for message in episode.conversation[:2]:
            parts = []
            for part in message["content"]:
                if part.get("type") == "image":
                    parts.append({"type": "image"})
                    images.append(part["image"])
                else:
                    parts.append({"type": "text", "text": part["text"]})
            prompt.append({"role": message["role"], "content": parts})
        rows["prompt"].append(prompt)
        rows["images"].append(images)
        rows["case_id"].append(case.id)
        rows["answer"].append(case.answer)
        rows["answer_type"].append(case.answer_type)
        rows["boxes"].append(json.dumps(case.boxes))
        rows["masks"].append(json.dumps(case.masks))
        rows["reference_steps"].append(json.dumps(case.reference_steps))
        rows["case"].append(json.dumps(case.to_dict(), default=str))
    if not rows["prompt"]:
        raise DataError("no GRPO prompts: the case list is empty")
    return Dataset.from_dict(rows)
