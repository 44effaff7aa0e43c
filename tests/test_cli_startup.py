"""The CLI starts at once: no heavy package is imported before a command needs it (issue 20), and
the commands of the packages built on mmreason come from entry points, not from imports."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from mmreason.cli import build_parser, commands, main

HEAVY = ("torch", "transformers", "trl", "scipy", "gradio", "SimpleITK", "numpy", "nibabel", "pydicom",
         "benchmarks", "train")


def _imported_after(code: str) -> list[str]:
    """The `HEAVY` top-level packages in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_cli_and_listing_the_commands_imports_nothing_heavy():
    assert _imported_after("import mmreason.cli") == []
    # the parser of --help: every command module is imported for its summary, none registers options
    # (bench and train come from benchmarks.cli and train.cli, light modules, read for their summaries)
    assert _imported_after("import mmreason.cli as c; c.build_parser('')") == ["benchmarks", "train"]
    # the segmenter registry (read for --segmenter's choices) does not bring the classical one's scipy
    assert "scipy" not in _imported_after("from grounding.segmenters import SEGMENTERS")


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["inspect", "--help"], ["infer", "--help"],
                                  ["bench", "--help"], ["train", "--help"]])
def test_help_and_version_import_no_model_package(argv):
    code = f"import sys, mmreason.cli as c\ntry:\n    c.main({argv!r})\nexcept SystemExit:\n    pass"
    imported = _imported_after(code)
    # (inspect needs the loader: numpy, nibabel and pydicom, which imports scipy.io, are its work)
    assert not {"torch", "transformers", "trl", "gradio", "SimpleITK"} & set(imported), imported
    if argv[0] in ("infer", "bench", "train"):
        # registering the loader options reads their limits, not the loaders
        assert not {"nibabel", "pydicom"} & set(imported), imported


def test_bench_and_train_are_entry_point_commands(capsys):
    found = commands()
    assert found["bench"] == "benchmarks.cli" and found["train"] == "train.cli"
    assert list(found)[:3] == ["inspect", "segment", "measure"]
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and "bench" in out and "evaluate a backend" in out and "train" in out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("mmreason ")


def test_every_command_has_a_description_without_markup():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        text = command.format_help()
        assert command.description, name
        assert "``" not in text and "::\n" not in text, (name, text[:300])


def test_train_accepts_out_and_the_older_output_dir(tmp_path):
    parser = build_parser("train")
    new = parser.parse_args(["train", "sft", "--config", "c.yaml", "--out", str(tmp_path)])
    old = parser.parse_args(["train", "sft", "--config", "c.yaml", "--output-dir", str(tmp_path)])
    assert new.out == str(tmp_path) and old.output_dir == str(tmp_path)
