"""Which MR sequence an image is (FLAIR, T2, T1, T1 with contrast, ...) and what said so.

Tissue contrast depends on the sequence: a lesion bright on FLAIR and T2 is dark on T1, so a
search for bright lesions must know which one it reads. Loaders record the sequence in
``metadata`` (`SEQUENCE_KEYS`) when something in the file states it, first rule that applies:

1. DICOM: words of SeriesDescription, ProtocolName and SequenceName (`words_sequence`); else the
   timing: an inversion-recovery ``ScanningSequence`` with InversionTime of at least
   `FLAIR_MIN_TI_MS` and EchoTime of at least `FLAIR_MIN_TE_MS` is FLAIR; without inversion,
   EchoTime of at least `T2_MIN_TE_MS` with RepetitionTime of at least `T2_MIN_TR_MS` is T2, and
   EchoTime up to `T1_MAX_TE_MS` with RepetitionTime up to `T1_MAX_TR_MS` is T1;
2. the words of a NIfTI ``descrip`` (our writer notes ``sequence=FLAIR`` there);
3. the words of the file name, BIDS suffixes included (``sub-01_FLAIR``, ``_T2w``, ``_T1w``,
   ``_ce-gadolinium_T1w``, BraTS ``_t1ce``).

Only the sequence's name and the word (or tag values) that gave it are kept: never the free text
around it (a description or a file name may hold a patient's name).
"""

from __future__ import annotations

import re
from typing import Any

from imaging.io.errors import InvalidOptionError

#: the sequences told apart; ``T1C`` is T1 after a contrast agent (gadolinium)
SEQUENCES = ("FLAIR", "T2", "T1", "T1C", "PD", "DWI", "ADC", "SWI")
#: the metadata keys a loader writes: the sequence, the rule's source and the word that said it
SEQUENCE_KEYS = ("sequence", "sequence_source", "sequence_detail")

#: inversion-recovery timings (ms): fluid-attenuated (FLAIR) inverts long and reads late
FLAIR_MIN_TI_MS = 1500.0
FLAIR_MIN_TE_MS = 60.0
#: spin-echo timings (ms) of T2- and T1-weighted images
T2_MIN_TE_MS = 70.0
T2_MIN_TR_MS = 1500.0
T1_MAX_TE_MS = 30.0
T1_MAX_TR_MS = 1000.0

#: words (lower case, after splitting on anything not a letter, digit, '+' or '*') -> sequence;
#: checked in this order of priority, so "T2 FLAIR" is FLAIR and "T1 post gad" is T1C
_WORDS: tuple[tuple[str, frozenset[str]], ...] = (
    ("FLAIR", frozenset({"flair", "tirm", "darkfluid", "t2flair", "flairt2"})),
    ("ADC", frozenset({"adc"})),
    ("DWI", frozenset({"dwi", "diffusion", "trace", "dti"})),
    ("SWI", frozenset({"swi", "t2star", "t2*"})),
    ("T1C", frozenset({"t1ce", "t1c", "t1gd", "t1post", "t1+c", "t1c+", "t1wce"})),
    ("T1", frozenset({"t1", "t1w", "mprage", "spgr", "bravo", "tfl3d", "t1pre", "t1native"})),
    ("T2", frozenset({"t2", "t2w"})),
    ("PD", frozenset({"pd", "pdw"})),
)
#: words that say a T1 was taken after contrast ("ce" is the BIDS contrast-enhancement entity)
_CONTRAST_WORDS = frozenset({"gad", "gd", "gado", "gadolinium", "post", "contrast", "ce", "+c", "c+", "enhanced"})
#: words that say it was taken before: "pre", "precontrast", "non", "nc"
_NO_CONTRAST_WORDS = frozenset({"pre", "precontrast", "native", "non", "nc", "noncon", "plain"})
_SPLIT = re.compile(r"[^a-z0-9+*]+")


def _tokens(text: str) -> list[str]:
    # BIDS entities (``ce-gadolinium``) and CamelCase words split on case changes too (``T2w``
    # stays whole: the lower-case letter follows a digit)
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(text))
    return [t for t in _SPLIT.split(text.lower()) if t]


def words_sequence(text: str) -> tuple[str, str] | None:
    """The sequence a text names and the word that named it, or None: ``"sub-01_ses-1_FLAIR"``
    -> ``("FLAIR", "flair")``, ``"T1 post gad"`` -> ``("T1C", "t1 + gad")``."""
    tokens = _tokens(text)
    present = set(tokens)
    for sequence, words in _WORDS:
        hit = next((t for t in tokens if t in words), None)
        if hit is None:
            continue
        if sequence == "T1":
            agent = next((t for t in tokens if t in _CONTRAST_WORDS), None)
            if agent is not None and not present & _NO_CONTRAST_WORDS:
                return "T1C", f"{hit} + {agent}"
        return sequence, hit
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def timing_sequence(scanning: Any, te_ms: Any, tr_ms: Any, ti_ms: Any) -> tuple[str, str] | None:
    """The sequence implied by DICOM ScanningSequence, EchoTime, RepetitionTime and InversionTime
    (see the module docstring), with the values that implied it, or None."""
    kinds = {str(s).upper() for s in (scanning if isinstance(scanning, (list, tuple)) else str(scanning or "").split("\\"))}
    te, tr, ti = _number(te_ms), _number(tr_ms), _number(ti_ms)
    if te is None:
        return None
    if "IR" in kinds or ti:
        if ti is not None and ti >= FLAIR_MIN_TI_MS and te >= FLAIR_MIN_TE_MS:
            return "FLAIR", f"inversion recovery, TI {ti:g} ms, TE {te:g} ms"
        return None  # STIR, MPRAGE and other inversions: not told apart by timing alone
    if tr is not None and te >= T2_MIN_TE_MS and tr >= T2_MIN_TR_MS:
        return "T2", f"TE {te:g} ms, TR {tr:g} ms"
    if tr is not None and te <= T1_MAX_TE_MS and tr <= T1_MAX_TR_MS and "GR" not in kinds:
        return "T1", f"TE {te:g} ms, TR {tr:g} ms"
    return None


def dicom_sequence(ds: Any) -> dict[str, str]:
    """`SEQUENCE_KEYS` notes from a pydicom dataset of an MR image ({} when nothing states it)."""
    if str(ds.get("Modality", "")).upper() != "MR":
        return {}
    for keyword in ("SeriesDescription", "ProtocolName", "SequenceName"):
        found = words_sequence(str(ds.get(keyword, "") or ""))
        if found:
            return _notes(found[0], "dicom", f"{keyword} word '{found[1]}'")
    found = timing_sequence(ds.get("ScanningSequence", None), ds.get("EchoTime", None),
                            ds.get("RepetitionTime", None), ds.get("InversionTime", None))
    return _notes(found[0], "dicom", f"ScanningSequence/EchoTime/InversionTime: {found[1]}") if found else {}


def named_sequence(header_text: str | None, file_name: str) -> dict[str, str]:
    """`SEQUENCE_KEYS` notes from a NIfTI ``descrip`` (``header_text``), else from the file name."""
    found = words_sequence(header_text or "")
    if found:
        return _notes(found[0], "header", f"NIfTI description word '{found[1]}'")
    found = words_sequence(file_name)
    return _notes(found[0], "file name", f"file name word '{found[1]}'") if found else {}


def check_sequence(sequence: str) -> str:
    """Validate a caller-given MR sequence (case-insensitive) against `SEQUENCES`."""
    name = str(sequence).strip().upper()
    if name not in SEQUENCES:
        raise InvalidOptionError(f"unknown MR sequence {sequence!r}; use one of {', '.join(SEQUENCES)}")
    return name


def stated_sequence(sequence: str) -> dict[str, str]:
    """`SEQUENCE_KEYS` notes for a sequence the user stated (``--sequence``): it wins over the files."""
    return _notes(check_sequence(sequence), "argument", "sequence option")


def _notes(sequence: str, source: str, detail: str) -> dict[str, str]:
    return {"sequence": sequence, "sequence_source": source, "sequence_detail": detail}
