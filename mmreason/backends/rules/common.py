"""What every planner shares: declining, reporting a failed call, the search order of the study,
selecting a volume, and writing sizes and organ names."""

from __future__ import annotations

from typing import Any

from mmreason.backends.rules.state import State, VolumeInfo
from mmreason.backends.rules.turn import Action

#: MR sequences in the order a hyperintense lesion is searched on (others come after, T1 last)
SEQUENCE_PREFERENCE = ("FLAIR", "T2")


def cannot(why: str) -> Action:
    """A reasoned refusal: the question is outside what the rules backend can check."""
    return Action(thought="This question is outside what the rules backend can check with the tools.",
                  answer=f"I cannot answer this question with the rules backend: {why}. Run mmreason with "
                         f"--model to use a vision-language model.")


def failed(state: State) -> Action | None:
    """An answer explaining the last error, when a tool call of the last turn failed."""
    last = next((x for x in reversed(state.results) if x.error), None)
    if last is not None:
        return Action(thought="A tool call failed, so the question cannot be answered reliably.",
                      answer=f"I cannot answer: the {last.name} step failed ({last.error}).")
    return None


def fmt_mm(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} mm"


def fmt_mm3(mm3: float | None) -> str:
    """A volume in mL and mm3, the larger unit first."""
    if mm3 is None:
        return "n/a"
    return f"{mm3 / 1000:.2f} mL ({mm3:.0f} mm3)" if mm3 >= 1000 else f"{mm3:.0f} mm3 ({mm3 / 1000:.3f} mL)"


def lesion_target(state: State) -> str:
    """``nodule`` (4-30 mm) for a question about nodules only; ``lesion`` (masses up to 100 mm
    too) when it names a mass, tumour or lesion, so "nodule or mass" finds a 5 cm tumour."""
    word = "nodule" if state.q.nodule else "lesion"
    return word if not state.targets or word in state.targets else "lesion"


def is_mr(state: State) -> bool:
    return state.modality() == "MR"


def search_order(state: State) -> list[VolumeInfo]:
    """The 3-D volumes a lesion is searched on, in order: one for CT, every MR sequence for MR
    (FLAIR, then T2, then the unnamed ones, T1 last: the sequences a lesion is brightest on first)."""
    three_d = state.three_d()
    if not is_mr(state) or len(three_d) < 2:
        return three_d[:1]
    names = state.sequence_names()
    rank = {name: i for i, name in enumerate(SEQUENCE_PREFERENCE)}
    return sorted(three_d, key=lambda v: rank.get(names.get(v.id, ""),
                                                  len(rank) + (1 if names.get(v.id) == "T1" else 0)))


def on_volume(state: State, volume: VolumeInfo, arguments: dict[str, Any]) -> dict[str, Any]:
    """``arguments`` with the ``view_id`` that selects ``volume``, when the study has several."""
    shown = state.first_view_of(volume.id)
    return arguments | {"view_id": shown.view_id} if len(state.volumes) > 1 and shown else arguments


def organ_name(target: str) -> str:
    """``kidney_left`` -> ``left kidney``; ``liver`` -> ``liver``."""
    if target.endswith(("_left", "_right")):
        organ, side = target.rsplit("_", 1)
        return f"{side} {organ}"
    return target.replace("_", " ")
