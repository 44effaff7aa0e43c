"""The web app driven as a person would: over its API with gradio_client, and in headless Chromium.

The app runs on 127.0.0.1 in this process. The browser test uses the system Chromium (Debian's
``chromium``, installed by .ci/run) through Playwright's ``executable_path``; it skips only when
neither is installed and ``MMREASON_REQUIRE_BROWSER`` is unset (.ci/run sets it, so CI fails instead).
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gradio = pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402

from imaging.errors import MMReasonError  # noqa: E402
from mmreason.app import AppError, load_study, parse_spacing, study_inputs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "chest_ct.nii.gz"
XRAY = ROOT / "examples" / "chest_xray.png"
QUESTION = "Is there a lung nodule? Where is it and how large?"  # README's question
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    from mmreason.app import launch

    demo = launch(port=_free_port(), prevent_thread_lock=True, quiet=True)
    assert demo.server_name == "127.0.0.1"  # this machine only, unless the user says otherwise
    yield demo.local_url
    demo.close()


def test_pixel_spacing_field_reaches_the_loader():
    assert parse_spacing("") is None and parse_spacing("0.5") == (0.5, 0.5) and parse_spacing("0.5, 0.6") == (0.5, 0.6)
    with pytest.raises(AppError, match="pixel spacing"):
        parse_spacing("half a mm")
    assumed = load_study([str(XRAY)]).volumes["0"]
    given = load_study([str(XRAY)], "0.5").volumes["0"]
    assert assumed.facts["spacing"].assumed and not given.facts["spacing"].assumed
    assert given.spacing[1:] == (0.5, 0.5)


def test_dicom_zip_loose_files_and_prior_current(tmp_path):
    import zipfile

    from imaging.phantoms import chest_ct
    from imaging.writers import write_dicom_series

    files = write_dicom_series(chest_ct(seed=1, spacing=(8.0, 4.0, 4.0)).volume, tmp_path / "series")
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in files:
            z.write(f, f"study/{f.name}")
    zipped = load_study([str(archive)])
    loose = load_study([str(f) for f in files])  # a series chosen file by file is one study
    assert zipped.volumes["0"].shape == loose.volumes["0"].shape == (len(files),) + zipped.volumes["0"].shape[1:]
    assert load_study([str(files[0])]).volumes["0"].is_2d  # one slice on its own
    both = load_study([str(archive), str(EXAMPLE)])  # prior first, then current
    assert list(both.volumes) == ["0", "1"] and both.volumes["1"].shape == (48, 212, 212)
    assert zipped.folder != loose.folder  # every study in a folder of its own


def test_ask_streams_turn_by_turn_and_saves_the_files():
    from mmreason.app import Ask, ask

    study = load_study([str(EXAMPLE)])
    seen = []  # what each update showed when it came (the trace object is the same one, growing)
    for trace, finished in ask(study, Ask(QUESTION)):
        seen.append((trace.status, len(trace.evidence), sum(t.role == "assistant" for t in trace.turns), finished))
    # the study first, then one update per model turn with the evidence so far, then the finished trace
    assert seen[0] == ("running", 0, 0, False)
    assert [s[2] for s in seen[:-1]] == list(range(len(seen) - 1)) and len(seen) >= 4
    assert [s[1] for s in seen[:-1]] == sorted(s[1] for s in seen[:-1]) and seen[-2][1] >= 2
    assert finished and trace.status == "answered" and trace.meta["verdicts"]
    assert all(Path(f).is_file() and Path(f).is_relative_to(study.folder) for f in trace.meta["files"])
    with pytest.raises(AppError, match="needs a model"):
        next(ask(study, Ask(QUESTION, backend="hf")))
    with pytest.raises(AppError, match="open a study first"):
        next(ask(None, Ask(QUESTION)))


def test_viewer_scrolls_planes_with_presets_and_level_width():
    from mmreason.app import CUSTOM_WINDOW, slice_image

    study = load_study([str(EXAMPLE)])
    lung = np.asarray(slice_image(study, "0", "axial", 28, "lung", 0, 0).convert("L"), dtype=float)
    soft = np.asarray(slice_image(study, "0", "axial", 28, "soft_tissue", 0, 0).convert("L"), dtype=float)
    mine = np.asarray(slice_image(study, "0", "axial", 28, CUSTOM_WINDOW, -600, 1500).convert("L"), dtype=float)
    assert max(lung.shape) == 512 and np.abs(lung - mine).mean() < 1.0  # level/width -600/1500 is the lung preset
    assert lung.mean() > soft.mean() + 10  # soft tissue shows the lungs black
    # coronal: 212 columns of 1.6 mm by 48 slices of 5 mm, square pixels, enlarged; past the end: the last slice
    assert slice_image(study, "0", "coronal", 999, "lung", 0, 0).size == (512, 362)
    xray = load_study([str(XRAY)])
    assert slice_image(xray, "0", "coronal", 5, "auto", 0, 0).size == slice_image(xray, "0", "axial", 0, "auto", 0, 0).size
    assert slice_image(None, "0", "axial", 0, "auto", 0, 0) is None


def test_zip_is_extracted_inside_the_session_folder(tmp_path):
    import zipfile

    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("../escape.dcm", b"x")
    with pytest.raises(AppError, match="unsafe path"):
        study_inputs([str(bad)], tmp_path / "session")


def test_a_study_folder_with_patient_data_does_not_outlive_the_study(tmp_path):
    import gc

    from mmreason.app import Ask, ask

    study = load_study([str(EXAMPLE)])
    *_, (trace, finished) = ask(study, Ask(QUESTION))
    assert finished and all(Path(f).is_file() for f in trace.meta["files"])
    study.close()
    assert not study.folder.exists()
    study.close()  # twice is harmless
    forgotten = load_study([str(EXAMPLE)])
    folder = forgotten.folder
    del forgotten
    gc.collect()
    assert not folder.exists()  # a session that ends without closing its study leaves nothing behind
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti")
    before = set(Path(tempfile.gettempdir()).glob("mmreason-app-*"))
    with pytest.raises(MMReasonError, match="NIfTI"):
        load_study([str(EXAMPLE), str(broken)])
    assert set(Path(tempfile.gettempdir()).glob("mmreason-app-*")) == before  # a failed upload keeps nothing


def test_ask_over_the_api_and_sessions_are_isolated(app_url):
    client = Client(app_url, verbose=False)
    opened = client.predict([handle_file(str(EXAMPLE))], "", api_name="/open")
    assert "48x212x212 voxels (z, y, x)" in opened[0]
    answer, steps, evidence, files = client.predict(QUESTION, "rules", "", "", "classical", 8, 512, "rule",
                                                    api_name="/ask")
    assert "badge answered" in answer and "right lung" in answer
    assert "seed None" not in answer and "Result: {" not in steps
    assert "class='verdict'" in steps and "<img" in steps  # verdicts beside steps, annotated images
    assert "0.87 mL" in evidence and "badge ok" in evidence
    names = sorted(Path(f).name for f in files)
    assert names == ["report.html", "trace.json"]
    # a second user (a new session) has no study: it cannot see the first one's
    other = Client(app_url, verbose=False)
    with pytest.raises(Exception, match="open a study first"):
        other.predict(QUESTION, "rules", "", "", "classical", 8, 512, "rule", api_name="/ask")


def _require_browser():
    try:
        import playwright.sync_api  # noqa: F401
    except ModuleNotFoundError:
        playwright_missing = True
    else:
        playwright_missing = False
    if CHROMIUM is None or playwright_missing:
        what = "chromium" if CHROMIUM is None else "playwright"
        if os.environ.get("MMREASON_REQUIRE_BROWSER"):
            pytest.fail(f"{what} is not installed; .ci/run installs it (apt-get install chromium; pip install -e '.[test]')")
        pytest.skip(f"{what} is not installed")


def _upload(page, path: Path, attempts: int = 3) -> None:
    """Choose ``path`` in the study's file input and wait until the upload shows; a page still
    mounting on a loaded machine can miss the first choice, so it is made again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(attempts):
        page.locator("input[type=file]").first.set_input_files(str(path))
        try:
            page.get_by_text(path.name).first.wait_for(timeout=20_000)
            return
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise


def test_browser_uploads_asks_and_sees_answer_and_overlay(app_url, tmp_path):
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1250})
            page.goto(app_url)
            page.get_by_role("button", name="Open study").wait_for(timeout=30_000)
            _upload(page, EXAMPLE)
            page.get_by_role("button", name="Open study").click()
            page.get_by_text("48x212x212 voxels").first.wait_for(timeout=30_000)
            page.locator("#viewer img").first.wait_for(timeout=30_000)
            page.locator("#question textarea").fill(QUESTION)
            page.locator("#ask").click()
            page.locator("#answer .badge.answered").wait_for(timeout=60_000)
            assert "right lung" in page.locator("#answer .answer").inner_text()
            overlay = page.locator("#steps img[alt*='in red']").first
            overlay.scroll_into_view_if_needed()
            shot = np.asarray(Image.open(io.BytesIO(overlay.screenshot())).convert("RGB")).astype(int)
            red = (shot[..., 0] > 200) & (shot[..., 1] < 90) & (shot[..., 2] < 90)
            assert red.sum() > 20, "the segment overlay shows no red mask"
            page.evaluate("window.scrollTo(0, 0)")
            full = Image.open(io.BytesIO(page.screenshot()))
        finally:
            browser.close()
    # README's docs/app.png is this picture: MMREASON_APP_SCREENSHOT=docs/app.png writes it there
    target = Path(os.environ.get("MMREASON_APP_SCREENSHOT") or tmp_path / "app.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    small = full.convert("RGB").resize((full.width * 2 // 3, full.height * 2 // 3), Image.LANCZOS)
    small.quantize(128).save(target, optimize=True)  # small enough to commit
    assert target.stat().st_size < 400_000 and len(set(small.getdata())) > 50
