"""The text the model reads around the images: the system prompt (role, coordinate conventions,
answer format and, when needed, the tool list), the study lines, the image captions and the question.

The wording lives here as templates, in one place, and can be reworded freely: the ``rules``
planner plans from the loop's objects (`mmreason.loop.EpisodeState`), not from this text; only a
conversation served without the loop is read back, by patterns built from these templates
(`mmreason.backends.rules.transcript`).

When a backend's chat template renders tools itself (``backend.native_tools``: Qwen2.5-VL's
Hermes template, Qwen3-VL, Qwen3.5 ...), the tool specs go to ``generate(tools=...)`` and the
system prompt carries only the instructions. Otherwise the tool list is written into the system
prompt in the Hermes form those models were trained on: one JSON function spec per line inside
``<tools></tools>``, calls as ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imaging.volume import Volume

INSTRUCTIONS = """\
You are a radiology assistant. You answer questions about medical images (CT, MRI, X-ray) by \
looking at them with tools and grounding every claim in the evidence the tools return.

Images. Each image is introduced as "Image N (WxH), view Vk: description". Give boxes \
(bbox_2d = [x1, y1, x2, y2]) and points (point_2d = [x, y]) in absolute pixels of that WxH image, \
with x to the right and y down, and name the view with view_id. In a montage, draw a box inside a \
single panel. Axial and coronal images follow the radiological convention: the patient's right is \
on the image's left.

Evidence. Every tool result has an evidence id (E1, E2, ...), a short text and sometimes new \
images (views). Measurements are in millimetres (mm, mm2, mL) and Hounsfield units (HU) for CT.

Work step by step: call one or more tools, read their results, then give the final answer as
<answer>your answer, citing the evidence ids it rests on, e.g. [E2]</answer>
For a multiple-choice question, begin the answer with the option letter, e.g. <answer>B [E2]</answer>. \
If the images cannot answer the question, say so inside the answer tags."""

DIRECT_INSTRUCTIONS = """\
You are a radiology assistant. You answer questions about medical images (CT, MRI, X-ray) by \
looking at them. No tools are available: answer directly from the images.

Images. Each image is introduced as "Image N (WxH), view Vk: description". Axial and coronal images \
follow the radiological convention: the patient's right is on the image's left.

Give the final answer as
<answer>your answer</answer>
For a multiple-choice question, begin the answer with the option letter, e.g. <answer>B</answer>. \
If the images cannot answer the question, say so inside the answer tags."""

#: the caption introducing each image (`mmreason.messages.caption`); INSTRUCTIONS describe this form
CAPTION = "Image {index} ({width}x{height}), view {view_id}: {description}"
#: the study lines of the first user turn (`study_text`)
STUDY_HEADER = "Study (volumes in the order given; for a follow-up, the prior comes first):"
STUDY_LINE = "- volume {volume_id}: {modality}, {grid}{assumed}"
STUDY_2D = "2-D image {nx}x{ny} px (width x height)"
STUDY_2D_SPACING = ", {sx:.2f}x{sy:.2f} mm/px"
STUDY_3D = "3-D {nz}x{ny}x{nx} voxels (z, y, x)"
STUDY_3D_SPACING = ", spacing {sz:.2f}x{sy:.2f}x{sx:.2f} mm (z, y, x)"
STUDY_ASSUMED = "; NOT from the file: {facts}"
#: the question, and the question with lettered options
QUESTION = "Question: {question}"
QUESTION_WITH_OPTIONS = "Question: {question}\nOptions:\n{options}\nAnswer with the option letter."

TOOLS_HEADER = """\
# Tools

You may call one or more functions. Their signatures are given as JSON inside <tools></tools>:
<tools>"""

TOOLS_FOOTER = """\
</tools>

To call a function, write its name and a JSON object of arguments inside <tool_call></tool_call> tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>"""

FORMAT_REMINDER = (
    "Your last message had neither a tool call nor a final answer. Call a tool with "
    '<tool_call>{"name": ..., "arguments": {...}}</tool_call> or answer with <answer>...</answer>.'
)
#: the reminder for models whose chat template teaches Qwen3.5's function/parameter XML calls
XML_FORMAT_REMINDER = (
    "Your last message had neither a tool call nor a final answer. Call a tool with "
    "<tool_call>\n<function=NAME>\n<parameter=ARGUMENT>\nvalue\n</parameter>\n</function>\n</tool_call> "
    "or answer with <answer>...</answer>."
)
TOOL_CALL_FORMATS = ("json", "xml")


def format_reminder(tool_call_format: str = "json") -> str:
    """The reminder sent after a turn with neither a call nor an answer, in the call syntax the
    model was taught: ``"json"`` (Hermes) or ``"xml"`` (the Qwen3.5 template's own form)."""
    return XML_FORMAT_REMINDER if tool_call_format == "xml" else FORMAT_REMINDER


def render_tools(specs: list[dict[str, Any]]) -> str:
    """The Hermes-form tool block for a system prompt (one compact JSON spec per line)."""
    lines = [TOOLS_HEADER] + [json.dumps(s, ensure_ascii=False) for s in specs] + [TOOLS_FOOTER]
    return "\n".join(lines)


def system_prompt(specs: list[dict[str, Any]], native_tools: bool) -> str:
    """The system prompt text: instructions, plus the tool list unless the template renders it.

    With no tools (a direct-answer run, the baseline of the impact of reasoning) the instructions
    ask for a direct answer.
    """
    if not specs:
        return DIRECT_INSTRUCTIONS
    return INSTRUCTIONS if native_tools else f"{INSTRUCTIONS}\n\n{render_tools(specs)}"


def question_text(question: str, options: list[str] | None = None) -> str:
    """The question as shown to the model; options are listed as ``A. text`` lines."""
    if not options:
        return QUESTION.format(question=question)
    listed = "\n".join(f"{chr(ord('A') + i)}. {opt}" for i, opt in enumerate(options))
    return QUESTION_WITH_OPTIONS.format(question=question, options=listed)


def study_text(volumes: dict[str, Volume]) -> str:
    """One line per volume: id, modality (and an MR's sequence where the files name it), grid and
    spacing, and which of those facts were guessed
    or assumed rather than read from the file (the model must not state them as certain).

    File names are not shown (nor stored): a file stem may be a patient's name. An assumed spacing
    is not stated as a fact: the line gives `imaging.provenance.Fact.describe` instead.
    """
    lines = [STUDY_HEADER]
    for vid, vol in volumes.items():
        nz, ny, nx = vol.shape
        sz, sy, sx = vol.spacing
        # the same (z, y, x) order as the trace, the report and `mmreason inspect`; an assumed
        # spacing is not given as a number, only as the assumption it is
        known = not vol.facts["spacing"].assumed
        if vol.is_2d:
            grid = STUDY_2D.format(nx=nx, ny=ny) + (STUDY_2D_SPACING.format(sx=sx, sy=sy) if known else "")
        else:
            grid = STUDY_3D.format(nz=nz, ny=ny, nx=nx) + (STUDY_3D_SPACING.format(sz=sz, sy=sy, sx=sx)
                                                            if known else "")
        assumed = [f.describe() for f in vol.assumed_facts()]
        # an MR's sequence decides what its tissues look like (lesions bright on FLAIR, dark on T1)
        sequence = vol.facts.get("sequence")
        modality = f"{vol.modality} {sequence.value}" if sequence and not sequence.assumed else vol.modality
        lines.append(STUDY_LINE.format(volume_id=vid, modality=modality, grid=grid,
                                       assumed=STUDY_ASSUMED.format(facts="; ".join(assumed)) if assumed else ""))
    return "\n".join(lines)
