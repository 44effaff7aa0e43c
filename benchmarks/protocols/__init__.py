"""Scoring protocols: ours, and re-implementations of the rules the peers' toolkits apply.

A published figure depends on its scoring rule as much as on the model: the toolkits behind the
Lingshu, MedVLThinker and MedGemma tables extract answers, split closed from open questions,
normalise and guess differently. A protocol here is one such rule set, applied to the raw
responses of a run, so one run can be scored ``--protocol ours`` and ``--protocol medevalkit``
side by side (``bench --rescore RUN --protocol medevalkit,lmms-eval``).

======================  ===================================================================  =====
protocol                rules                                                                judge
======================  ===================================================================  =====
``ours``                `benchmarks.core.scoring`: the extraction cascade, no guessing            no
``strict``              ours with tags, ``\\boxed{}``, "Answer:", "the answer is" and        no
                        option text only (no untagged short answers)
``lmms-eval``           `benchmarks.protocols.lmms_eval`: SLAKE normalised exact match,      no
                        MMMU option parser with a random option when none parses
``medevalkit``          `benchmarks.protocols.medevalkit`: closed = yes/no answer (VQA-RAD,  no
                        PathVQA), yes-xor-no substring rule, open exact match with token
                        P/R/F1, option matching with a most-similar-option fallback
``medevalkit-judge``    the same with open questions (every SLAKE question) judged by an LLM  yes
``vlmevalkit``          `benchmarks.protocols.vlmevalkit`: ``can_infer`` option matching      no
                        (exact_matching: unmatched is wrong)
``vlmevalkit-judge``    the same with an LLM matching unmatched answers to an option (a       yes
                        random option after three failures) and judging PathVQA
``deeptumorvqa``        `benchmarks.protocols.deeptumorvqa`: DeepTumorVQA's letter, number,   no
                        yes/no and text rules, each case grouped by its stage
======================  ===================================================================  =====

Each peer covers only the datasets it ships; `Protocol.covers` says which, and a case a protocol
does not score (MMMU open questions under VLMEvalKit) is left out of that protocol's figures.
Options a peer picks without reading them (a random or most-similar option) are recorded as
``guessed``; the random generator is seeded per case so a rescore reproduces the figure. A judge
is any mmreason backend (``--judge-backend``, ``--judge-model``) and every judged score says so.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

from imaging.errors import MMReasonError
from mmreason.case import Case

from benchmarks.core.scoring import Score, score_response


class ProtocolError(MMReasonError):
    """Unknown protocol, or one that cannot score as asked (no judge, task not covered)."""


@dataclass
class Judge:
    """An LLM judge: any backend, asked one text prompt at a time (temperature 0 where it applies)."""

    backend: Any

    @property
    def name(self) -> str:
        return f"{getattr(self.backend, 'name', '?')}:{getattr(self.backend, 'model_id', '?')}"

    def __call__(self, prompt: str) -> str:
        conversation = [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
        return self.backend.generate([conversation])[0]


#: one protocol's scorer for one task: (response, case, judge) -> Score, or None when the case is outside it
Scorer = Callable[[str, Case, "Judge | None"], "Score | None"]


@dataclass(frozen=True)
class Protocol:
    """A named scoring rule set.

    Attributes:
        name: the ``--protocol`` value.
        title: one line for ``bench --list``.
        scorers: task name -> scorer; ``"*"`` scores any task.
        needs_judge: every score needs an LLM judge (`Judge`).
        source: the peer code re-implemented (repository and file), empty for ours.
    """

    name: str
    title: str
    scorers: dict[str, Scorer]
    needs_judge: bool = False
    source: str = ""

    def covers(self, task: str) -> bool:
        return task in self.scorers or "*" in self.scorers

    @property
    def tasks(self) -> list[str]:
        return sorted(self.scorers)

    def score(self, response: str, case: Case, judge: Judge | None = None) -> Score | None:
        """``response`` scored against ``case``; None when the protocol does not score this case."""
        scorer = self.scorers.get(case.task, self.scorers.get("*"))
        if scorer is None:
            raise ProtocolError(f"protocol '{self.name}' does not cover task '{case.task}' "
                                f"(it covers: {', '.join(self.tasks)})")
        if self.needs_judge and judge is None:
            raise ProtocolError(f"protocol '{self.name}' needs an LLM judge: add --judge-backend openai "
                                "--judge-model NAME --judge-base-url URL (any mmreason backend works)")
        return scorer(response, case, judge if self.needs_judge else None)


def seeded_choice(protocol: str, case: Case, items: list[str]) -> str:
    """The option a peer would pick at random, reproducibly: seeded by protocol, task and case id."""
    return random.Random(f"{protocol}:{case.task}:{case.id}").choice(items)


def letters(case: Case) -> list[str]:
    return [chr(ord("A") + i) for i in range(len(case.options or []))]


def _ours(response: str, case: Case, judge: Judge | None) -> Score:
    return score_response(response, case)


def _strict(response: str, case: Case, judge: Judge | None) -> Score:
    return score_response(response, case, strict=True)


def _registry() -> dict[str, Protocol]:
    from benchmarks.protocols import deeptumorvqa, lmms_eval, medevalkit, vlmevalkit

    protocols = [
        Protocol("ours", "mmreason: extraction cascade (tags, boxed, Answer:, the answer is, short answer, "
                 "yes/no sentence), no guessing", {"*": _ours}),
        Protocol("strict", "mmreason, strict extraction (tags, boxed, Answer:, the answer is, option text)",
                 {"*": _strict}),
        *lmms_eval.PROTOCOLS, *medevalkit.PROTOCOLS, *vlmevalkit.PROTOCOLS, *deeptumorvqa.PROTOCOLS,
    ]
    return {p.name: p for p in protocols}


PROTOCOLS: dict[str, Protocol] = _registry()
DEFAULT_PROTOCOL = "ours"


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ProtocolError(f"unknown protocol '{name}'; choose one of {', '.join(PROTOCOLS)} (see bench --list)")
    return PROTOCOLS[name]
