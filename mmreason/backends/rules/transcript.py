"""The planner's `State` read from a conversation's text, for conversations that come without the loop.

The loop gives the backend its objects (`mmreason.backends.rules.state.from_episode`); a request
to the served backend (`mmreason serve --backend rules`, an OpenAI-compatible client running its
own loop) carries only messages. They are read here as `mmreason.prompts` writes them: the study
lines, the image captions, the question and its options, the tool list of the system prompt (or
``tools=``), the assistant turns' ``<tool_call>`` blocks and the tool messages' ``Result:`` lines
(`mmreason.messages.result_text`). The patterns are built from the prompt templates, so the two
cannot drift apart silently.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mmreason import prompts
from mmreason.backends.rules.state import Result, Shown, State, VolumeInfo, segment_targets
from mmreason.messages import parse_result_line
from mmreason.parsing import parse_tool_calls

_ERROR = "Error: "


def _pattern(template: str, **groups: str) -> str:
    """A regex for ``template`` (a `str.format` template of `mmreason.prompts`) whose fields are
    the regex ``groups``; the rest of the template is literal text."""
    parts = re.split(r"\{(\w+)(?::[^}]*)?\}", template)
    return "".join(re.escape(p) if i % 2 == 0 else groups[p] for i, p in enumerate(parts))


def _parts(message: dict) -> list[dict]:
    content = message.get("content")
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])


def _text(parts: list[dict]) -> str:
    return "".join(p.get("text", "") for p in parts if p.get("type", "text") == "text")


def _shown_in(parts: list[dict]) -> list[Shown]:
    """Captioned images of a message: each caption text part is followed by its image part."""
    caption = re.compile(_pattern(prompts.CAPTION, index=r"\d+", width=r"(\d+)", height=r"(\d+)",
                                  view_id=r"(V\d+)", description=r"(.*)"))
    volume = re.compile(r"^volume (\w+) \(")
    shown = []
    for i, part in enumerate(parts):
        m = caption.search(part.get("text", "")) if part.get("type") == "text" else None
        if not m:
            continue
        vm = volume.match(m.group(4).strip())
        image = parts[i + 1].get("image") if i + 1 < len(parts) and parts[i + 1].get("type") == "image" else None
        shown.append(Shown(m.group(3), (int(m.group(1)), int(m.group(2))), vm.group(1) if vm else None, image))
    return shown


def _volumes(user: str) -> list[VolumeInfo]:
    """The study lines: 2-D images give width x height, 3-D volumes z x y x x."""
    # an MR's line names its sequence after the modality ("MR FLAIR"), when the files name it
    line = _pattern(prompts.STUDY_LINE, volume_id=r"(\w+)", modality=r"(\w+)(?: (\w+))?", grid="(.*)", assumed="")
    two_d = re.compile(_pattern(prompts.STUDY_2D, nx=r"(\d+)", ny=r"(\d+)"))
    three_d = re.compile(_pattern(prompts.STUDY_3D, nz=r"(\d+)", ny=r"(\d+)", nx=r"(\d+)"))
    volumes = []
    for m in re.finditer(f"^{line}", user, re.M):
        if g := two_d.match(m.group(4)):
            volumes.append(VolumeInfo(m.group(1), m.group(2), True, (int(g.group(1)), int(g.group(2))),
                                      sequence=m.group(3)))
        elif g := three_d.match(m.group(4)):
            nz, ny, nx = (int(v) for v in g.groups())
            volumes.append(VolumeInfo(m.group(1), m.group(2), False, (nx, ny, nz), sequence=m.group(3)))
    return volumes


def _question(user: str) -> tuple[str, list[str] | None]:
    with_options = _pattern(prompts.QUESTION_WITH_OPTIONS, question="(.*?)", options="(.*?)")
    if m := re.search(with_options, user, re.S):
        return m.group(1).strip(), [re.sub(r"^[A-Z]\. ", "", line) for line in m.group(2).splitlines()]
    m = re.search(_pattern(prompts.QUESTION, question="(.*)"), user, re.S)
    return (m.group(1).strip() if m else user), None


def _tool_specs(system: str, tools: list[dict] | None) -> list[dict[str, Any]]:
    """The tool specs given as ``tools=`` and those listed in the system prompt, one JSON per line."""
    specs = list(tools or [])
    specs += [json.loads(line) for line in system.splitlines() if line.startswith("{") and '"function"' in line]
    return specs


def from_conversation(conversation: list[dict], tools: list[dict] | None = None) -> State:
    """The planner's `State` read from a conversation in the loop's message format."""
    system = _text(_parts(conversation[0]))
    user_parts = _parts(conversation[1])
    user = _text(user_parts)
    question, options = _question(user)
    results: list[Result] = []
    pending: list[tuple[str, dict]] = []
    for msg in conversation[2:]:
        if msg.get("role") == "assistant":
            pending = [(c.name, c.arguments) for c in parse_tool_calls(_text(_parts(msg)))]
        elif msg.get("role") == "tool":
            parts = _parts(msg)
            text = _text(parts)
            name, args = pending.pop(0) if pending else (msg.get("name", ""), {})
            error = text[len(_ERROR):] if text.startswith(_ERROR) else None
            results.append(Result(name, args, error, parse_result_line(text) or {}, _shown_in(parts)))
    specs = _tool_specs(system, tools)
    return State(question, options, _volumes(user), _shown_in(user_parts), results, segment_targets(specs),
                 tools_offered=bool(specs))
