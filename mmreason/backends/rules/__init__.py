"""`RulesBackend`: a deterministic planner that answers by calling the tools. No weights.

It plans from what the loop holds as objects (`mmreason.loop.EpisodeState`: the volumes, the
views shown and the frame each was shown in, each tool call and its evidence, the tool specs), so
rewording a prompt changes nothing it does; it knows what a model is shown (the evidence's
numbers are those of the tool message's ``Result:`` line, `mmreason.messages.result_payload`).
A conversation that comes without the loop (the served backend) is read from its text instead
(`transcript`). Each call to `generate` returns the next turn - one or more ``<tool_call>``
blocks or an ``<answer>`` - so its traces have exactly the format of model traces and can serve
as SFT demonstrations.

The package: `state` (what the planner knows), `transcript` (the same from a conversation's
text), `question` (the family cues and what a question asks), `planner` (the table of families,
`FAMILIES`, and the next turn), one module per family (`lesion`, `count`, `growth`, `organ`,
`sequence`, `ctr`, `modality`, `threshold`, `attenuation`; `subject` runs the lesion or organ family's
steps for the last two), `answer` (short answer, option, hedge) and `turn` (an action and its text).

Question families, recognised by keywords (first match wins, case-insensitive; `planner.FAMILIES`):

==============  =======================================================  ==========================
family          recognised by                                            tool calls
==============  =======================================================  ==========================
growth          two or more volumes and grow/change/compare/prior/...    segment + measure per volume
                                                                         (a nodule not found on the
                                                                         current study is looked for
                                                                         where it was: view, box)
ctr             cardiothoracic / CTR / cardiomegaly / heart size         segment lungs, measure,
                (on the first 2-D volume, e.g. a radiograph beside a CT) segment heart, measure
sequence        which sequence ... brightest / hyperintense (MR)         segment the lesion; per
                                                                         sequence view its slice,
                                                                         measure lesion and brain
threshold       a value to compare with ("larger than 10 mm", "over 8    as the lesion or organ family
                mm", "above 2000 mL", "below 40 HU") + a lesion or an    (measure with its interior for
                organ; or two organs compared by size ("the right lung   HU); both organs for a pair
                larger than the left", "which kidney is bigger")
attenuation     attenuation / density / HU / intensity + a lesion or an  as the lesion or organ family,
                organ (CT only; MR and X-ray are declined: no absolute   measure with its interior
                units)
count           how many / number of / multiple / solitary + a lesion    the lesion search (within the
                word (3-D CT, MR)                                        organ named); its connected
                                                                         components are the count
organ lesion    lesion/mass/... + liver, spleen or kidney (3-D CT)       segment organ, segment
                                                                         lesion within it, measure, crop
lesion          nodule / mass / lesion / tumour / opacity (3-D CT, MR)   segment, (select), measure, crop
organ volume    volume/size/how large + an organ (lungs, liver ...)      segment organ, measure (each
                                                                         kidney for "kidneys")
modality/plane  modality / what kind of image / which plane              view
==============  =======================================================  ==========================

The final turn explains the finding in prose, with evidence citations, and then gives the answer
in ``<answer>...</answer>`` in the form the question asks for (`short_answer`): ``yes``/``no``
first for a closed question, the option letter and text for a multiple-choice one, the number
with its unit for a numeric one (in the unit the question names: "in mL", "(mm)"), followed by
the cited evidence ids, e.g. ``<answer>12.9 mm [E1, E2]</answer>``; a question that asks several
things ("Is there a nodule? Where is it and how large?") gets each part, separated by
semicolons. `mmreason.parsing` reads the cited ids from the answer tag.

On MR studies with several sequences the lesion is searched on the FLAIR, then the T2, then the
others, as the question names them ("volume 1 is the FLAIR"); the next one is tried when a
search finds nothing. When the segmenter returns several candidates, the planner points
(``point_2d``) at the largest 3-D component of the segment's mask by volume, on a view showing it
(`imaging.locate.voxels_on_view`; an axial slice through it is viewed first when no image shown
does), and segments again, which keeps that one component; a served conversation, which has no
mask, points at the largest red region of the overlay image. Laterality questions ("which
side/lung ...") about a lesion are answered by the lesion family (the side comes from ``measure``;
a region at the midline is given the side most of it lies on when options force a side;
candidates on both sides, each side holding one of at least `lesion.SIDE_SHARE` of the largest,
are answered "both sides", naming the side of the measured one). Any other question gets an answer saying it cannot be
answered by this backend, with a pointer to ``--model`` (the loop marks the episode ``abstained``);
so does a question its family cannot ground: one asking what the tools do not measure (a tissue
character such as hypodense or fat, a comparison outside the threshold family, a lobe, what a lesion
is; `question.BEYOND`) or about a site its search
does not cover ("a lesion in the pancreas" is not answered by the lung search).

A multiple-choice question is answered with the option that states what the question asks for
(`answer.option_hint`): a count picks only the option with that number ("at least N", from a
doubtful search, only the one option it implies), a measured number only the nearest option of
the same dimension and within `answer.OPTION_TOLERANCE`, a side only when the side is asked. A
finding that matches no option is declined with what the tools found, never the nearest guess.

A threshold question is answered yes or no with the measured value against the one named ("Yes;
12.9 mm against 10 mm"): a lesion's longest axial diameter or volume, an organ's volume (an organ's
length is declined: ``measure`` gives no craniocaudal span), a mean HU; two organs are compared by
volume. A value within the measurement's own uncertainty of the cut-off (a diameter: one pixel plus
how much wider the lesion may be than a section half a slice off its widest level; a volume: half a
voxel over its surface; a mean HU: calibration plus two standard errors) is answered "Borderline:
9.6 mm against 10 mm" with why, never a bare yes or no, and picks no multiple-choice option. The
attenuation answer is the mean and SD in HU over the mask with its voxel count; when the mask's
interior (its edge layer left out) differs by more than that uncertainty, partial volume is its
caveat. Mean-HU options are picked only when exactly one lies within that uncertainty.

The cardiothoracic ratio rests on two segmentations of the radiograph: the lung fields, whose
left-right width (``measure``'s ``width_mm``) is the internal thoracic diameter between the inner
rib margins, and the cardiac silhouette, whose width is the cardiac diameter; the ratio is
computed from those two evidence items in millimetres.

The sequence comparison segments the hyperintense lesion on every sequence (a sequence where
none is found does not show it bright) and divides its mean intensity by that of the whole axial
slice through it (a box over the image: head and background; the dark background air scales
every sequence's ratio alike, so the ranking is that against the head); the sequence with the
highest ratio is the one on which the lesion is brightest relative to the brain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmreason.backends.base import DEFAULT_STOP
from mmreason.backends.rules.answer import choose_option
from mmreason.backends.rules.lesion import largest_overlay_blob
from mmreason.backends.rules.planner import decide
from mmreason.backends.rules.state import from_episode
from mmreason.backends.rules.transcript import from_conversation
from mmreason.backends.rules.turn import render

if TYPE_CHECKING:
    from mmreason.loop import EpisodeState

__all__ = ["RulesBackend", "choose_option", "largest_overlay_blob"]


class RulesBackend:
    """Deterministic planner (see the package docstring); a `Backend` with an identity image frame."""

    name = "rules"
    native_tools = False
    #: the loop passes each conversation's `EpisodeState` (``generate(states=...)``)
    reads_state = True

    def __init__(self, model_id: str = "mmreason-rules-v1", **_: Any) -> None:
        self.model_id = model_id

    def model_image_size(self, width: int, height: int) -> tuple[int, int]:
        return width, height

    def generate(self, conversations: list[list[dict]], *, tools: list[dict] | None = None,
                 max_new_tokens: int = 512, temperature: float = 0.0, seed: int | None = None,
                 stop: tuple[str, ...] = DEFAULT_STOP, states: list[EpisodeState] | None = None) -> list[str]:
        """The next turn of each conversation (sampling settings do not apply: it is deterministic).

        ``states``: the loop's objects of each conversation, planned from when given; without them
        (a served request) the conversation's text is read.
        """
        if states is not None:
            return [render(decide(from_episode(state))) for state in states]
        return [render(decide(from_conversation(conv, tools))) for conv in conversations]
