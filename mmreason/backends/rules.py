"""`RulesBackend`: a deterministic planner that answers by calling the tools. No weights.

It reads only what a model would read: the system prompt (the tool list), the user turn (the
study lines, the image captions, the question) and the ``role: tool`` messages (their text, the
``Result: {...}`` JSON line written by `mmreason.messages.result_text`, and their images). Each
call to `generate` returns the next turn - a ``<tool_call>`` or an ``<answer>`` - so its traces
have exactly the format of model traces and can serve as SFT demonstrations.

Question families, recognised by keywords (first match wins, case-insensitive):

==============  =======================================================  ==========================
family          recognised by                                            tool calls
==============  =======================================================  ==========================
growth          two or more volumes and grow/change/compare/prior/...    segment + measure per volume
ctr             cardiothoracic / CTR / cardiomegaly / heart size (2-D)   segment lungs, measure,
                                                                         segment heart, measure
organ lesion    lesion/mass/... + liver, spleen or kidney (3-D CT)       segment organ, segment
                                                                         lesion within it, measure, crop
lesion          nodule / mass / lesion / tumour / opacity (3-D CT, MR)   segment, (select), measure, crop
organ volume    volume/size/how large + an organ (lungs, liver ...)      segment organ, measure (each
                                                                         kidney for "kidneys")
modality/plane  modality / what kind of image / which plane              view
==============  =======================================================  ==========================

When the segmenter returns several candidates, the planner points (``point_2d``) at the
largest red region of the overlay image and segments again, which keeps that one component.
Laterality questions ("which side/lung ...") about a lesion are answered by the lesion family
(the side comes from ``measure``). Any other question gets an answer saying it cannot be answered
by this backend, with a pointer to ``--model`` (the loop marks the episode ``abstained``). For a
multiple-choice question the answer starts with the option letter that matches the finding.

The cardiothoracic ratio rests on two segmentations of the radiograph: the lung fields, whose
left-right width (``measure``'s ``width_mm``) is the internal thoracic diameter between the inner
rib margins, and the cardiac silhouette, whose width is the cardiac diameter; the ratio is
computed from those two evidence items in millimetres.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from mmreason.backends.base import DEFAULT_STOP
from mmreason.messages import parse_result_line
from mmreason.parsing import parse_tool_calls

#: organ words -> canonical segment targets (checked against the segment tool's target list);
#: longer phrases come first ("left kidney" before "kidney")
ORGANS: dict[str, tuple[str, ...]] = {
    "left lung": ("lung_left",), "right lung": ("lung_right",), "lungs": ("lungs",), "lung": ("lungs",),
    "liver": ("liver",), "spleen": ("spleen",), "left kidney": ("kidney_left",),
    "right kidney": ("kidney_right",), "kidney": ("kidney_left", "kidney_right"), "heart": ("heart",),
    "aorta": ("aorta",), "airway": ("airways",), "trachea": ("airways",), "bone": ("bone",), "body": ("body",),
}
#: organs searched for a focal lesion by segmenting the organ, then a lesion within it
LESION_ORGANS = ("liver", "spleen", "kidney_left", "kidney_right")
_GROWTH = re.compile(r"\b(grow|grew|growth|change[sd]?|compar|prior|previous|interval|progress|follow.?up|"
                     r"increase|decrease|shrink|shrunk|stable)", re.I)
_CTR = re.compile(r"cardio.?thoracic|\bctr\b|cardiomegaly|heart size|enlarged heart|size of the heart", re.I)
_LESION = re.compile(r"\b(nodules?|mass(es)?|lesions?|tumou?rs?|opacit(y|ies)|metastas[ie]s)\b", re.I)
_ORGAN_SIZE = re.compile(r"\b(volume|size|how (large|big)|measure)", re.I)
_MODALITY = re.compile(r"\b(modality|what (kind|type|sort) of (image|scan|study|imaging)|which imaging|"
                       r"imaging technique|is this (an? )?(ct|mri|mr|x-?ray|radiograph))", re.I)
_PLANE = re.compile(r"\b(plane|orientation|axial|coronal|sagittal|view)\b", re.I)
_YES_NO = re.compile(r"(is|are|does|do|has|have|was|were|can|could|any)\b", re.I)
_STUDY = re.compile(r"^- volume (\w+): (\w+), (2-D|3-D) (\d+)x(\d+)(?:x(\d+))?", re.M)
_CAPTION = re.compile(r"Image (\d+) \((\d+)x(\d+)\), view (V\d+): (.*)")
_CAPTION_VOLUME = re.compile(r"^volume (\w+) \(")


@dataclass
class VolumeInfo:
    id: str
    modality: str
    is_2d: bool
    shape_xyz: tuple[int, ...]


@dataclass
class Shown:
    """An image as captioned for the model."""

    index: int
    view_id: str
    size: tuple[int, int]
    description: str
    volume: str | None
    image: Any = None


@dataclass
class Result:
    """One tool call of an earlier turn and what came back."""

    name: str
    arguments: dict[str, Any]
    text: str
    payload: dict[str, Any]
    images: list[Shown]

    @property
    def error(self) -> str | None:
        return self.text[len("Error: "):] if self.text.startswith("Error: ") else None

    @property
    def evidence_id(self) -> str | None:
        return self.payload.get("evidence_id")

    def measure(self, key: str) -> float | None:
        value = self.payload.get("measurements", {}).get(key)
        return float(value[0]) if value else None

    def fact(self, key: str) -> Any:
        return self.payload.get("data", {}).get(key)


@dataclass
class State:
    """What the planner knows: the question, the study, the initial images, the results so far."""

    question: str
    options: list[str] | None
    volumes: list[VolumeInfo]
    shown: list[Shown]
    results: list[Result]
    targets: list[str] = field(default_factory=list)

    def first_view_of(self, volume_id: str) -> Shown | None:
        return next((s for s in self.shown if s.volume == volume_id), None)


@dataclass
class Action:
    """The next turn: a tool call (``tool`` set) or a final answer."""

    thought: str
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    answer: str = ""
    option_hint: dict[str, Any] = field(default_factory=dict)


class RulesBackend:
    """Deterministic planner (see the module docstring); a `Backend` with an identity image frame."""

    name = "rules"
    native_tools = False

    def __init__(self, model_id: str = "mmreason-rules-v1", **_: Any) -> None:
        self.model_id = model_id

    def model_image_size(self, width: int, height: int) -> tuple[int, int]:
        return width, height

    def generate(self, conversations: list[list[dict]], *, tools: list[dict] | None = None,
                 max_new_tokens: int = 512, temperature: float = 0.0, seed: int | None = None,
                 stop: tuple[str, ...] = DEFAULT_STOP) -> list[str]:
        """The next turn of each conversation (sampling settings do not apply: it is deterministic)."""
        return [render(decide(read_state(conv, tools))) for conv in conversations]


# -- reading the conversation ---------------------------------------------------------------
def _parts(message: dict) -> list[dict]:
    content = message.get("content")
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])


def _shown_in(parts: list[dict]) -> list[Shown]:
    """Captioned images of a message: each caption text part is followed by its image part."""
    shown = []
    for i, part in enumerate(parts):
        m = _CAPTION.search(part.get("text", "")) if part.get("type") == "text" else None
        if not m:
            continue
        desc = m.group(5).strip()
        vm = _CAPTION_VOLUME.match(desc)
        image = parts[i + 1].get("image") if i + 1 < len(parts) and parts[i + 1].get("type") == "image" else None
        shown.append(Shown(int(m.group(1)), m.group(4), (int(m.group(2)), int(m.group(3))), desc,
                           vm.group(1) if vm else None, image))
    return shown


def read_state(conversation: list[dict], tools: list[dict] | None = None) -> State:
    system = "".join(p.get("text", "") for p in _parts(conversation[0]))
    user_parts = _parts(conversation[1])
    user = "".join(p.get("text", "") for p in user_parts if p.get("type") == "text")
    qm = re.search(r"Question: (.*?)(?:\nOptions:\n(.*?)\nAnswer with the option letter\.|$)", user, re.S)
    question = qm.group(1).strip() if qm else user
    options = [re.sub(r"^[A-Z]\. ", "", line) for line in qm.group(2).splitlines()] if qm and qm.group(2) else None
    volumes = [VolumeInfo(m.group(1), m.group(2), m.group(3) == "2-D",
                          tuple(int(v) for v in m.groups()[3:] if v)) for m in _STUDY.finditer(user)]
    results: list[Result] = []
    pending: list[tuple[str, dict]] = []
    for msg in conversation[2:]:
        if msg.get("role") == "assistant":
            text = "".join(p.get("text", "") for p in _parts(msg))
            pending = [(c.name, c.arguments) for c in parse_tool_calls(text)]
        elif msg.get("role") == "tool":
            parts = _parts(msg)
            text = "".join(p.get("text", "") for p in parts if p.get("type") == "text")
            name, args = pending.pop(0) if pending else (msg.get("name", ""), {})
            results.append(Result(name, args, text, parse_result_line(text) or {}, _shown_in(parts)))
    return State(question, options, volumes, _shown_in(user_parts), results, _segment_targets(system, tools))


def _segment_targets(system: str, tools: list[dict] | None) -> list[str]:
    specs = list(tools or [])
    for line in system.splitlines():
        if line.startswith("{") and '"function"' in line:
            specs.append(json.loads(line))
    for spec in specs:
        fn = spec.get("function", spec)
        if fn.get("name") == "segment":
            return list(fn.get("parameters", {}).get("properties", {}).get("target", {}).get("enum", []))
    return []


# -- planning -------------------------------------------------------------------------------
def decide(state: State) -> Action:
    """The next action; a multiple-choice answer is prefixed with the matching option letter."""
    action = plan(state)
    if action.tool is None and state.options:
        letter = choose_option(state.options, action.option_hint)
        if letter:
            action.answer = f"{letter}. {action.answer}"
    return action


def choose_option(options: list[str], hint: dict[str, Any]) -> str | None:
    """The letter of the option that matches the finding (``hint``), or None when none does.

    ``hint`` keys: ``yes`` (bool, for yes/no options), ``side`` (left/right), ``trend``
    (grew/shrank/is stable), ``words`` (any of them in the option), ``value`` (the nearest number).
    """
    norm = [re.sub(r"[^a-z0-9.\- ]", "", o.lower()).strip() for o in options]
    letters = [chr(ord("A") + i) for i in range(len(options))]

    def pick(pred: Any) -> str | None:
        hits = [letter for letter, o in zip(letters, norm) if pred(o)]
        return hits[0] if len(hits) == 1 else None

    if "side" in hint and hint["side"] in ("left", "right"):
        other = "left" if hint["side"] == "right" else "right"
        if found := pick(lambda o: hint["side"] in o and other not in o):
            return found
    if "trend" in hint:
        words = {"grew": ("grow", "grew", "increase", "larger", "progress"),
                 "shrank": ("shr", "decrease", "smaller", "regress"), "is stable": ("stable", "unchanged", "no change")}
        if found := pick(lambda o: any(w in o for w in words[hint["trend"]])):
            return found
    if "yes" in hint:
        if found := pick(lambda o: o == ("yes" if hint["yes"] else "no")):
            return found
    if hint.get("words"):
        if found := pick(lambda o: any(re.search(rf"\b{re.escape(w)}\b", o) for w in hint["words"])):
            return found
    if hint.get("value") is not None:
        numbers = [re.search(r"-?\d+(?:\.\d+)?", o) for o in norm]
        if all(numbers):
            dist = [abs(float(m.group(0)) - float(hint["value"])) for m in numbers]  # type: ignore[union-attr]
            return letters[int(np.argmin(dist))]
    return None


def plan(state: State) -> Action:
    q = state.question
    three_d = [v for v in state.volumes if not v.is_2d]
    if len(state.volumes) >= 2 and _GROWTH.search(q):
        return plan_growth(state)
    if _CTR.search(q):
        return plan_ctr(state)
    organs = _organ_in(q)
    if _LESION.search(q):
        modality = three_d[0].modality if three_d else None
        if modality == "CT" and organs and organs[0] in LESION_ORGANS:
            return plan_organ_lesion(state, organs[0])
        return plan_lesion(state) if modality in ("CT", "MR") else cannot(
            state, "lesion questions are answered on 3-D CT and MR only")
    if organs and _ORGAN_SIZE.search(q):
        return plan_organ(state, organs)
    if _MODALITY.search(q) or _PLANE.search(q):
        return plan_modality(state)
    return cannot(state, "it is not one of the question types the rules backend handles (lung nodule or "
                         "lesion presence, side and size; organ volume; lesion growth between two studies; "
                         "cardiothoracic ratio; modality and plane)")


def cannot(state: State, why: str) -> Action:
    return Action(thought="This question is outside what the rules backend can check with the tools.",
                  answer=f"I cannot answer this question with the rules backend: {why}. Run mmreason with "
                         f"--model to use a vision-language model.")


def _failed(state: State) -> Action | None:
    """An answer explaining the last error, when the last tool call failed."""
    last = state.results[-1] if state.results else None
    if last is not None and last.error:
        return Action(thought="The last tool call failed, so the question cannot be answered reliably.",
                      answer=f"I cannot answer: the {last.name} step failed ({last.error}).")
    return None


def _organ_in(question: str) -> tuple[str, ...] | None:
    q = question.lower()
    for word, targets in ORGANS.items():  # longer phrases ("left lung") come before "lung"
        if re.search(rf"\b{word}s?\b", q):
            return targets
    return None


def _fmt_mm(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} mm"


def _fmt_volume(mm3: float | None) -> str:
    if mm3 is None:
        return "n/a"
    return f"{mm3 / 1000:.2f} mL ({mm3:.0f} mm3)" if mm3 >= 1000 else f"{mm3:.0f} mm3 ({mm3 / 1000:.3f} mL)"


def _lesion_target(state: State, question: str) -> str:
    word = "nodule" if re.search(r"nodul|lung|pulmonary", question, re.I) else "lesion"
    return word if not state.targets or word in state.targets else "lesion"


def _is_mr(state: State) -> bool:
    return next((v.modality for v in state.volumes if not v.is_2d), None) == "MR"


def plan_lesion(state: State) -> Action:
    """Segment candidates (3-D); if several, point at the largest on the overlay; measure; crop; answer."""
    r = state.results
    target = _lesion_target(state, state.question)
    mr = _is_mr(state)
    kind = "MR" if mr else "CT"
    if not r:
        return Action(f"I will segment {target} candidates in the whole {kind} volume.", "segment", {"target": target})
    if failed := _failed(state):
        return failed
    seg_all = r[0]
    if not seg_all.fact("voxels"):
        region = "the brain" if mr else "the lungs"
        return Action("The segmenter found no candidate.",
                      answer=f"No. No {target} was found in {region} by the {seg_all.fact('segmenter')} segmenter "
                             f"[{seg_all.evidence_id}].", option_hint={"yes": False})
    n = seg_all.fact("components") or 1
    focus, rest = seg_all, r[1:]
    if n > 1:
        if rest and rest[0].name == "segment":
            focus, rest = rest[0], rest[1:]
        elif not rest and seg_all.images and seg_all.images[0].image is not None:
            point = largest_overlay_blob(np.asarray(seg_all.images[0].image.convert("RGB")))
            if point is not None:
                return Action(f"{n} candidates were found; I will select the largest one, at {point} on the "
                              f"overlay {seg_all.images[0].view_id}.", "segment",
                              {"target": target, "view_id": seg_all.images[0].view_id, "point_2d": point})
    if not rest:
        return Action(f"I will measure {focus.evidence_id}.", "measure", {"evidence_id": focus.evidence_id})
    meas = rest[0]
    if len(rest) == 1 and focus.images and focus.fact("bbox_voxels"):
        box = _overlay_box(state, focus)
        if box is not None:
            return Action("I will zoom into the candidate on the overlay to show it.", "crop",
                          {"view_id": focus.images[0].view_id, "bbox_2d": box})
    side = meas.fact("laterality") or focus.fact("laterality")
    where = "at the midline" if side == "midline" else f"in the {side} {'hemisphere' if mr else 'lung'}"
    if focus is seg_all and n > 1:
        found = f"{n} candidate regions were found, measured together: they lie {where}"
    elif n > 1:
        found = f"{n} candidate regions were found [{seg_all.evidence_id}]; the largest, the {target}, is {where}"
    else:
        found = f"There is one {target} {where}"
    return _lesion_answer(state, found, meas, side)


def _lesion_answer(state: State, found: str, meas: Result, side: str | None) -> Action:
    """The answer about a measured lesion: position, diameters, volume, mean intensity, citations."""
    cx, cy, cz = (meas.measure(f"centroid_{a}_mm") for a in "xyz")
    cites = [x.evidence_id for x in state.results if x.evidence_id]
    mean = meas.measure("mean_intensity")
    unit = "HU" if meas.payload.get("measurements", {}).get("mean_intensity", [0, "HU"])[1] == "HU" else "a.u."
    yes = "Yes. " if _YES_NO.match(state.question.strip()) else ""
    text = (f"{yes}{found}, centred at x={cx:+.1f}, y={cy:+.1f}, z={cz:+.1f} mm (LPS); "
            f"longest axial diameter {_fmt_mm(meas.measure('longest_diameter_mm'))} x "
            f"{_fmt_mm(meas.measure('perpendicular_diameter_mm'))}, volume {_fmt_volume(meas.measure('volume_mm3'))}"
            + (f", mean {mean:.0f} {unit}" if mean is not None else "") + f" [{', '.join(cites)}].")
    return Action("The measurements give the side, position and size.", answer=text,
                  option_hint={"yes": True, "side": side, "value": meas.measure("longest_diameter_mm")})


def plan_organ_lesion(state: State, organ: str) -> Action:
    """Segment the organ, then a lesion within it; measure it, show it, answer."""
    r = state.results
    name = _organ_name(organ)
    if state.targets and organ not in state.targets:
        return cannot(state, f"the segment tool has no '{organ}' target with this segmenter")
    if not r:
        return Action(f"I will segment the {name} first, to search it for a lesion.", "segment", {"target": organ})
    if failed := _failed(state):
        return failed
    if not r[0].fact("voxels"):
        return Action("The organ mask is empty.",
                      answer=f"I cannot answer: the {name} was not found [{r[0].evidence_id}].")
    if len(r) == 1:
        return Action(f"I will segment a focal lesion within the {name} ({r[0].evidence_id}).", "segment",
                      {"target": "lesion", "within": r[0].evidence_id})
    seg = r[1]
    if not seg.fact("voxels"):
        return Action("Nothing in the organ differs from it.",
                      answer=f"No. No focal lesion was found in the {name} [{r[0].evidence_id}, {seg.evidence_id}].",
                      option_hint={"yes": False})
    if len(r) == 2:
        return Action(f"I will measure the lesion ({seg.evidence_id}).", "measure", {"evidence_id": seg.evidence_id})
    meas = r[2]
    if len(r) == 3 and seg.images and seg.fact("bbox_voxels"):
        box = _overlay_box(state, seg)
        if box is not None:
            return Action("I will zoom into the lesion on the overlay to show it.", "crop",
                          {"view_id": seg.images[0].view_id, "bbox_2d": box})
    return _lesion_answer(state, f"There is one lesion in the {name}", meas, meas.fact("laterality"))


def largest_overlay_blob(rgb: np.ndarray) -> list[float] | None:
    """Centre ``[x, y]`` (pixel edge frame) of the largest red region of a segment overlay image.

    The segment tool paints the mask red (fill blends (255, 48, 48) at 40 %, outline opaque), so
    red exceeds green by more than 80 inside the mask and by much less elsewhere.
    """
    red = (rgb[..., 0].astype(np.int16) - rgb[..., 1].astype(np.int16)) >= 60
    labels, n = ndimage.label(red)
    if n == 0:
        return None
    sizes = ndimage.sum(red, labels, range(1, n + 1))
    ys, xs = np.nonzero(labels == int(np.argmax(sizes)) + 1)
    return [round(float(xs.mean()) + 0.5, 1), round(float(ys.mean()) + 0.5, 1)]


def _overlay_box(state: State, seg: Result) -> list[float] | None:
    """Box (overlay pixels) around the segmented region, with a margin, on the axial overlay."""
    vol = next((v for v in state.volumes if v.id == str(seg.fact("volume"))), None)
    if vol is None or vol.is_2d:
        return None
    (_, _), (y0, y1), (x0, x1) = seg.fact("bbox_voxels")
    w, h = seg.images[0].size
    nx, ny = vol.shape_xyz[0], vol.shape_xyz[1]
    sx, sy = w / nx, h / ny
    pad_x, pad_y = max(8.0, (x1 - x0) * sx), max(8.0, (y1 - y0) * sy)
    return [round(max(0.0, x0 * sx - pad_x), 1), round(max(0.0, y0 * sy - pad_y), 1),
            round(min(float(w), x1 * sx + pad_x), 1), round(min(float(h), y1 * sy + pad_y), 1)]


def plan_growth(state: State) -> Action:
    """Segment and measure the lesion on the first two volumes (prior, current); report the change."""
    r = state.results
    target = _lesion_target(state, state.question)
    vols = state.volumes[:2]
    step = len(r)
    if failed := _failed(state):
        return failed
    if step in (0, 2):
        vol = vols[step // 2]
        shown = state.first_view_of(vol.id)
        if shown is None:
            return cannot(state, f"volume {vol.id} has no view to select it with")
        when = "prior (first)" if step == 0 else "current (second)"
        if step == 2 and not r[0].fact("voxels"):
            return Action("Nothing was found on the prior study.",
                          answer=f"I cannot determine the change: no {target} was found on the prior study "
                                 f"[{r[0].evidence_id}].")
        return Action(f"I will segment the {target} on the {when} study, volume {vol.id}.", "segment",
                      {"target": target, "view_id": shown.view_id})
    if step in (1, 3):
        seg = r[step - 1]
        if not seg.fact("voxels"):
            return Action("Nothing was found on this study.",
                          answer=f"I cannot determine the change: no {target} was found on volume "
                                 f"{seg.fact('volume')} [{seg.evidence_id}].")
        return Action(f"I will measure it ({seg.evidence_id}).", "measure", {"evidence_id": seg.evidence_id})
    d0, d1 = r[1].measure("longest_diameter_mm"), r[3].measure("longest_diameter_mm")
    v0, v1 = r[1].measure("volume_mm3"), r[3].measure("volume_mm3")
    dd, pct = d1 - d0, 100.0 * (d1 - d0) / d0 if d0 else float("nan")
    vpct = 100.0 * (v1 - v0) / v0 if v0 else float("nan")
    trend = "grew" if dd >= 1.0 or pct >= 10 else ("shrank" if dd <= -1.0 or pct <= -10 else "is stable")
    side = r[3].fact("laterality")
    text = (f"The {target} ({'in the ' + side + ' lung' if side in ('left', 'right') and target == 'nodule' else side}) "
            f"{trend}: longest axial diameter {d0:.1f} mm -> {d1:.1f} mm ({dd:+.1f} mm, {pct:+.0f}%); volume "
            f"{v0:.0f} -> {v1:.0f} mm3 ({vpct:+.0f}%) [{r[1].evidence_id}, {r[3].evidence_id}].")
    return Action("Both time points are measured.", answer=text,
                  option_hint={"yes": trend == "grew", "trend": trend, "value": dd})


def plan_organ(state: State, organs: tuple[str, ...]) -> Action:
    """Segment and measure each organ (both kidneys for "kidneys"); report volumes and their sum."""
    r = state.results
    missing = [o for o in organs if state.targets and o not in state.targets]
    if missing:
        return cannot(state, f"the segment tool has no '{missing[0]}' target with this segmenter (targets: "
                             f"{', '.join(state.targets)}); an organ segmenter such as --segmenter "
                             f"totalsegmentator provides it")
    if failed := _failed(state):
        return failed
    step = len(r)
    if step < 2 * len(organs):
        organ = organs[step // 2]
        if step % 2 == 0:
            return Action(f"I will segment the {_organ_name(organ)} in 3-D.", "segment", {"target": organ})
        seg = r[step - 1]
        if not seg.fact("voxels"):
            return Action("The mask is empty.", answer=f"I cannot determine it: the {_organ_name(organ)} was not "
                                                       f"found [{seg.evidence_id}].")
        return Action("I will measure the mask.", "measure", {"evidence_id": seg.evidence_id})
    parts, total = [], 0.0
    for k, organ in enumerate(organs):
        seg, meas = r[2 * k], r[2 * k + 1]
        vol_ml = meas.measure("volume_ml")
        size = (f"volume {vol_ml:.1f} mL ({meas.measure('volume_mm3'):.0f} mm3)" if vol_ml is not None
                else f"area {meas.measure('area_mm2'):.0f} mm2")
        total += vol_ml or 0.0
        parts.append(f"the {_organ_name(organ)} {size}; longest axial diameter "
                     f"{_fmt_mm(meas.measure('longest_diameter_mm'))} [{seg.evidence_id}, {meas.evidence_id}]")
    text = "; ".join(parts)
    text = text[0].upper() + text[1:] + (f"; together {total:.1f} mL." if len(organs) > 1 else ".")
    value = total if len(organs) > 1 else r[1].measure("volume_ml")
    return Action("The measurements answer the question.", answer=text, option_hint={"value": value})


def _organ_name(target: str) -> str:
    """``kidney_left`` -> ``left kidney``; ``liver`` -> ``liver``."""
    if target.endswith(("_left", "_right")):
        organ, side = target.rsplit("_", 1)
        return f"{side} {organ}"
    return target.replace("_", " ")


def plan_modality(state: State) -> Action:
    r = state.results
    vol = state.volumes[0]
    if not r:
        args = {} if not vol.is_2d else {"plane": "axial", "mode": "slice"}
        return Action("I will open the image to check its type and plane.", "view", args)
    if failed := _failed(state):
        return failed
    names = {"CT": "a CT scan", "MR": "an MRI", "XR": "an X-ray (radiograph)", "US": "an ultrasound image",
             "PT": "a PET scan"}
    what = names.get(vol.modality, f"a {vol.modality} image")
    if vol.is_2d:
        plane = "a frontal (coronal-plane) projection" if vol.modality == "XR" else "a single 2-D image"
        kind = "2-D"
    else:
        plane = "axial (the volume is shown in axial, coronal and sagittal planes)"
        kind = "3-D volume"
    text = f"This is {what}, {kind}; plane: {plane} [{r[0].evidence_id}]."
    modality_word = {"CT": "ct", "MR": "mri", "XR": "x-ray"}.get(vol.modality, vol.modality.lower())
    return Action("The study header and the view give modality and plane.", answer=text,
                  option_hint={"words": [modality_word, vol.modality.lower(), "axial" if not vol.is_2d else "pa"]})


#: the two segmentations of the cardiothoracic ratio: target, what its width measures
CTR_STEPS = (("lungs", "thoracic width: the lung fields' outer margins, at the inner rib margins"),
             ("heart", "cardiac width: the cardiac silhouette's right and left borders"))


def plan_ctr(state: State) -> Action:
    """Cardiothoracic ratio on a radiograph: segment lungs and heart, measure both widths, divide."""
    r = state.results
    vol = state.volumes[0]
    if not vol.is_2d:
        return cannot(state, "the cardiothoracic ratio is measured on a 2-D chest radiograph")
    missing = [t for t, _ in CTR_STEPS if state.targets and t not in state.targets]
    if missing:
        return cannot(state, f"the segment tool has no '{missing[0]}' target with this segmenter")
    if failed := _failed(state):
        return failed
    step = len(r)
    if step < 2 * len(CTR_STEPS):
        target, what = CTR_STEPS[step // 2]
        if step % 2 == 0:
            return Action(f"I will segment the {target} on the radiograph ({what}).", "segment", {"target": target})
        seg = r[step - 1]
        if not seg.fact("voxels"):
            return Action("The mask is empty.", answer=f"I cannot answer: no {target} was found [{seg.evidence_id}].")
        return Action(f"I will measure the left-right width of {seg.evidence_id}.", "measure",
                      {"evidence_id": seg.evidence_id})
    thor, card = r[1].measure("width_mm"), r[3].measure("width_mm")
    if not thor or not card:
        return cannot(state, "the measurements did not return left-right widths")
    ratio = card / thor
    verdict = "enlarged (cardiomegaly, ratio > 0.5)" if ratio > 0.5 else "within normal limits (ratio <= 0.5)"
    text = (f"The cardiothoracic ratio is {ratio:.2f}: cardiac width {card:.1f} mm [{r[2].evidence_id}, "
            f"{r[3].evidence_id}] / thoracic width {thor:.1f} mm [{r[0].evidence_id}, {r[1].evidence_id}]; "
            f"the heart size is {verdict}.")
    return Action("Both widths are measured.", answer=text, option_hint={"yes": ratio > 0.5, "value": ratio})


# -- rendering a turn -----------------------------------------------------------------------
def render(action: Action) -> str:
    if action.tool:
        call = json.dumps({"name": action.tool, "arguments": action.arguments})
        return f"{action.thought}\n<tool_call>\n{call}\n</tool_call>"
    return f"{action.thought}\n<answer>{action.answer}</answer>"
