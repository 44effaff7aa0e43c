"""The command-line side of `mmreason.run_spec.RunSpec`: one set of options, one builder.

Every command that runs episodes or reads a study adds its options from here under the same names
(``--backend`` ..., ``--segmenter`` ..., ``--max-turns`` ..., ``--series`` ...) and turns the parsed
arguments into a `RunSpec` with `run_spec_from_args`. ``--config FILE`` (YAML or JSON, the
sections of `RunSpec.from_dict`) sets the same things from a file; a flag given on the command
line overrides the file. Flags therefore default to None here and the defaults shown in
``--help`` are those of the spec's parts (`mmreason.loop.LoopConfig`, `imaging.io.load`).

Help texts name loader options that their error messages ask for: ``--series``, ``--frame``,
``--allow-uneven``, ``--pixel-spacing``, ``--assume-orientation``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from mmreason.run_spec import BackendOptionError, BackendSpec, RunSpec

__all__ = ["BackendOptionError", "add_backend_arguments", "add_config_argument", "add_image_arguments",
           "add_loader_arguments", "add_loop_arguments", "add_run_arguments", "add_segmenter_arguments", "backend_from_args",
           "hide_input_names", "load_image", "loader_options", "parse_key_values", "run_spec_from_args", "segmenter_spec",
           "shown_name"]

#: what outputs call the input when ``--show-paths`` is not given (a file or folder name is often
#: the patient's name)
HIDDEN_NAME = "input"

SEGMENTER_HELP = (
    "segmentation backend of the segment tool: auto (per target, the best one whose weights are present, "
    "saying which and why; classical when none), classical (no weights; the offline default), totalseg "
    "(TotalSegmentator), monai (a MONAI bundle, e.g. wholeBody_ct_segmentation or VISTA3D), sam, medsam, "
    "reference (the oracle: a benchmark case's reference masks, or --weights <folder of <target>.nii.gz>)"
)


def add_run_arguments(parser: argparse.ArgumentParser, *, loader: bool = True) -> None:
    """Every option of a `RunSpec`: ``--config``, the backend, the loop, (``loader``) the image
    loading options and the segmenter, each in its own help group."""
    add_config_argument(parser)
    add_backend_arguments(parser)
    add_loop_arguments(parser)
    if loader:
        add_loader_arguments(parser)
    add_segmenter_arguments(parser)


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="run settings from a YAML or JSON file (sections backend, segmenter, loop, loader, "
                             "tools, seed); options given on the command line override it")


# --------------------------------------------------------------------------- backend

def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--backend``, ``--model``, ``--base-url``, ``--backend-option`` and the image options."""
    from mmreason.backends.base import BOX_FORMATS
    from mmreason.backends.hf import THINKING_MODES
    from mmreason.backends.openai_compat import IMAGE_RESIZE_CHOICES

    g = parser.add_argument_group("model backend")
    g.add_argument("--backend", help="rules, hf, openai, or module:attr of a backend factory "
                                     "(default: rules, or hf when --model is given)")
    g.add_argument("--model", help="hub id or local checkpoint directory (hf), or served model name (openai)")
    g.add_argument("--base-url", action="append", default=[], metavar="URL",
                   help="OpenAI-compatible server URL ending in /v1 (openai backend); repeat to spread requests "
                        "over several servers of the same model")
    g.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE",
                   help="extra backend constructor option, repeatable; VALUE is read as JSON when it parses "
                        "(e.g. dtype=bfloat16, timeout=300, concurrency=16)")
    g.add_argument("--min-pixels", type=int, help="smallest image area in pixels the model sees (Qwen processors)")
    g.add_argument("--max-pixels", type=int, help="largest image area in pixels the model sees (Qwen processors)")
    g.add_argument("--image-resize", choices=IMAGE_RESIZE_CHOICES,
                   help="openai: the served model's image resize rule, so boxes are read in the frame the model "
                        "saw (qwen2_5_vl for Qwen2.5-VL behind vLLM; with --min/--max-pixels as the server's "
                        "--mm-processor-kwargs)")
    g.add_argument("--box-format", choices=BOX_FORMATS,
                   help="the model's box coordinates: pixels of the resized image (Qwen2.5-VL) or relative 0-1000 "
                        "(Qwen2-VL, Qwen3-VL, Qwen3.5, InternVL); default auto: from the model type (hf), from "
                        "--image-resize (openai)")
    g.add_argument("--thinking", choices=THINKING_MODES,
                   help="hf: reasoning of thinking templates (Qwen3.5): auto (the template's default), on, or off "
                        "(enable_thinking=False)")
    g.add_argument("--thinking-tokens", type=int,
                   help="hf: tokens granted on top of --max-new-tokens when the prompt opens <think> (default 1024)")


def parse_key_values(items: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> dict; a value is read as JSON when it parses, else kept as text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BackendOptionError(f"--backend-option expects KEY=VALUE, got '{item}'")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _backend(args: argparse.Namespace, base: BackendSpec) -> BackendSpec:
    given = {k: getattr(args, k, None) for k in ("model", "min_pixels", "max_pixels", "image_resize", "box_format",
                                                 "thinking", "thinking_tokens")}
    changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if getattr(args, "backend", None):
        changes["name"] = args.backend
    if getattr(args, "base_url", None):
        changes["base_url"] = list(args.base_url)
    extra = parse_key_values(getattr(args, "backend_option", None) or [])
    if extra:
        changes["options"] = {**base.options, **extra}
    return dataclasses.replace(base, **changes)


def backend_from_args(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """``(backend name, constructor options)`` of the arguments `add_backend_arguments` added."""
    return _backend(args, BackendSpec()).resolve()


# --------------------------------------------------------------------------- segmenter

def add_segmenter_arguments(p: argparse.ArgumentParser, default: str = "classical") -> None:
    """Add ``--segmenter``, ``--weights``, ``--segmenter-device`` and the precision / sliding-window options."""
    from grounding.segmenters import SEGMENTERS
    from grounding.segmenters.device import DEVICES

    g = p.add_argument_group("segmenter")
    g.add_argument("--segmenter", choices=SEGMENTERS, help=f"{SEGMENTER_HELP} (default: {default})")
    g.add_argument("--weights", action="append", default=[], metavar="PATH",
                   help="model weights: a TotalSegmentator folder (holding nnunet/results), a MONAI bundle folder, "
                        "or a SAM/MedSAM .pth; repeat for --segmenter auto (default for totalseg: "
                        "TOTALSEG_HOME_DIR or ~/.totalsegmentator)")
    g.add_argument("--checkpoint", help=argparse.SUPPRESS)  # the older spelling of --weights for sam/medsam
    g.add_argument("--segmenter-device", metavar="DEVICE",
                   help=f"where model segmenters run: {', '.join(DEVICES)} or cuda:N (default auto: the GPU when "
                        "present, else the CPU)")
    g.add_argument("--no-half", action="store_true", default=None,
                   help="full precision on the GPU (default: float16 autocast)")
    g.add_argument("--sw-batch-size", type=int, help="sliding-window batch of MONAI bundles (default: the bundle's)")
    g.add_argument("--sw-overlap", type=float, help="sliding-window overlap of MONAI bundles, 0-1 (default: the bundle's)")
    g.add_argument("--fast", action="store_true", default=None,
                   help="TotalSegmentator's 3 mm model (default: full resolution when its weights are present)")
    p.set_defaults(segmenter_default=default)


def _segmenter(args: argparse.Namespace, base: Any) -> Any:
    from grounding.segmenters.spec import SegmenterSpec

    changes: dict[str, Any] = {}
    name = getattr(args, "segmenter", None)
    if name:
        changes["name"] = name
    weights = list(getattr(args, "weights", None) or []) + ([args.checkpoint] if getattr(args, "checkpoint", None) else [])
    if weights:
        changes["weights"] = weights
    for key, attr in (("device", "segmenter_device"), ("sw_batch_size", "sw_batch_size"),
                      ("sw_overlap", "sw_overlap"), ("fast", "fast")):
        if getattr(args, attr, None) is not None:
            changes[key] = getattr(args, attr)
    if getattr(args, "no_half", None):
        changes["half"] = False
    return SegmenterSpec(**{**base.to_dict(), **changes})


def segmenter_spec(args: argparse.Namespace) -> Any:
    """The `SegmenterSpec` the parsed arguments describe (over ``--config``, when given)."""
    return run_spec_from_args(args).segmenter


# --------------------------------------------------------------------------- loop

def add_loop_arguments(parser: argparse.ArgumentParser, *, sampling: bool = True) -> None:
    """The loop's settings (turns, tokens, temperature, image budget) and work limits."""
    from mmreason.loop import LoopConfig

    d = LoopConfig()
    g = parser.add_argument_group("reasoning loop")
    g.add_argument("--max-turns", type=int, help=f"bound on model turns per episode (default {d.max_turns})")
    g.add_argument("--max-new-tokens", type=int, help=f"tokens per model turn (default {d.max_new_tokens})")
    if sampling:
        g.add_argument("--temperature", type=float,
                       help=f"sampling temperature; 0 = greedy (default {d.temperature:g})")
    g.add_argument("--max-images", type=int,
                   help=f"images kept in the conversation; older crops are dropped first (default {d.max_images})")
    g.add_argument("--max-initial-images", type=int,
                   help=f"images in the first user turn (default {d.max_initial_images})")
    limits = parser.add_argument_group("limits (a hit limit is reported, never a crash)")
    limits.add_argument("--max-tool-calls", type=int,
                        help=f"tool calls run per model turn (default {d.max_tool_calls})")
    limits.add_argument("--max-echo-chars", type=int,
                        help=f"characters of a bad call quoted back to the model (default {d.max_echo_chars})")
    limits.add_argument("--max-prompt-chars", type=int,
                        help=f"conversation text an episode may reach (default {d.max_prompt_chars})")
    limits.add_argument("--max-seconds", type=float, help=f"wall time of one episode (default {d.max_seconds:g} s)")


LOOP_FLAGS = ("max_turns", "max_new_tokens", "temperature", "max_images", "max_initial_images", "max_tool_calls",
              "max_echo_chars", "max_prompt_chars", "max_seconds")


# --------------------------------------------------------------------------- loader

def add_loader_arguments(parser: argparse.ArgumentParser) -> None:
    """The `imaging.io.load` options, under the names its error messages use."""
    from imaging.io import DEFAULT_MAX_VOXELS, NONFINITE_POLICIES
    from imaging.io.sequence import SEQUENCES
    from imaging.volume import MODALITIES

    loading = parser.add_argument_group("image loading")
    loading.add_argument("--series", default=None, help="series index or token (DICOM folders holding several)")
    loading.add_argument("--frame", type=int, default=None, help="frame of a 4-D NIfTI or multi-frame file")
    loading.add_argument("--modality", default=None, choices=MODALITIES, help="override the detected modality")
    loading.add_argument("--sequence", default=None, type=str.upper, choices=SEQUENCES,
                         help="the MR sequence, when the files do not name it (the lesion search reads lesions as "
                              "bright on FLAIR/T2 and declines on T1)")
    loading.add_argument("--max-voxels", type=int, help=f"refuse larger images (default {DEFAULT_MAX_VOXELS:.2g})")
    loading.add_argument("--nonfinite", choices=NONFINITE_POLICIES, help="NaN/inf voxels policy (default error)")
    loading.add_argument("--allow-uneven", action="store_true", default=None,
                         help="resample a DICOM series with uneven slice spacing instead of failing")
    loading.add_argument("--pixel-spacing", type=float, nargs=2, metavar=("ROW_MM", "COL_MM"), default=None,
                         help="pixel size for images that lack one (PNG/JPEG/TIFF, DICOM without PixelSpacing); "
                              "without it 1.0 mm is assumed and every size is flagged as assumed")
    loading.add_argument("--assume-orientation", action="store_true", default=None,
                         help="accept an orientation the file does not state (NIfTI with sform/qform codes 0, "
                              "images without patient axes) and report left/right from it; you take responsibility")


def _loader(args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key in ("series", "frame", "modality", "sequence", "max_voxels", "nonfinite", "allow_uneven", "assume_orientation"):
        if getattr(args, key, None) is not None:
            out[key] = getattr(args, key)
    if getattr(args, "pixel_spacing", None):
        out["spacing"] = tuple(args.pixel_spacing)
    return out


def add_show_paths_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--show-paths", action="store_true",
                        help="show file and folder names in the output (hidden by default: they often hold "
                             "a patient's name)")


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the positional ``path``, the loader options and ``--show-paths``."""
    parser.add_argument("path", help="a .nii/.nii.gz, .nrrd/.nhdr, .mha/.mhd, .mgz/.mgh, .dcm, .png/.jpg/.tif file "
                                     "or a folder of DICOM files")
    add_loader_arguments(parser)
    add_show_paths_argument(parser)


def loader_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `imaging.io.load` keywords of the arguments (over ``--config``'s ``loader`` section)."""
    config = getattr(args, "config", None)
    return _loader(args, RunSpec.from_file(config).loader if config else {})


def load_image(args: argparse.Namespace) -> Any:
    """`imaging.io.load` of ``args.path`` with the loader options of the arguments."""
    from imaging.io import load

    return load(args.path, **loader_options(args))


# --------------------------------------------------------------------------- the spec

def run_spec_from_args(args: argparse.Namespace) -> RunSpec:
    """The `RunSpec` of ``--config`` (when given) with every option given on the command line over it."""
    config = getattr(args, "config", None)
    base = RunSpec.from_file(config) if config else None
    if base is None:
        default = getattr(args, "segmenter_default", None)
        base = RunSpec()
        if default and default != base.segmenter.name:
            base.segmenter = dataclasses.replace(base.segmenter, name=default)
    loop = {k: getattr(args, k) for k in LOOP_FLAGS if getattr(args, k, None) is not None}
    seed = getattr(args, "seed", None)
    tools = base.tools
    if getattr(args, "no_tools", None):
        tools = dataclasses.replace(tools, enabled=False)
    return dataclasses.replace(
        base, backend=_backend(args, base.backend), segmenter=_segmenter(args, base.segmenter),
        loop=dataclasses.replace(base.loop, **loop), loader=_loader(args, base.loader), tools=tools,
        seed=seed if seed is not None else base.seed)


# --------------------------------------------------------------------------- names in outputs

def hide_input_names(text: str, args: argparse.Namespace) -> str:
    """``text`` (an error message) with the names of the inputs in ``args`` replaced by `HIDDEN_NAME`,
    unless ``--show-paths``: loaders name the file or folder they fail on, which may be a patient's name."""
    if getattr(args, "show_paths", False):
        return text
    paths = [getattr(args, "path", None), getattr(args, "mask", None), *(getattr(args, "image", None) or [])]
    names: set[str] = set()
    for value in paths:
        if value:
            path = Path(value)
            names |= {str(value), str(path.expanduser()), path.name, path.name.split(".")[0]}
    for name in sorted((n for n in names if len(n) > 2), key=len, reverse=True):  # longest first
        text = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", HIDDEN_NAME, text)
    return text


def shown_name(args: argparse.Namespace, name: str | None = None) -> str:
    """``name`` (default: the input path's last part) with ``--show-paths``, else `HIDDEN_NAME`."""
    if getattr(args, "show_paths", False):
        return name if name is not None else Path(args.path).name
    return HIDDEN_NAME
