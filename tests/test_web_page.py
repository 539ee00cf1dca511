"""The page at `/` in a real headless Chromium (Debian's `chromium`, driven by Playwright for Python) against the
real server: a real face from ../shared is scored and the page shows the API's own p_fake; a corrupt file, a
too-large file and a video; the model card comes from the model's records.

Set WEB_PAGE_SCREENSHOT=FILE to save the page as this test sees it (its tiny model); the screenshot in
docs/inference.md is a trained run's (docs/img/web_page_screenshot.py).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from deepfake_lightning.inference.server_process import ServerProcess
from tests.conftest import REPO_ROOT, TINY_TRAINER, make_folder_tree
from tests.fixtures_inference import compose_entry, face_like_image, save_image, write_video

pytest_plugins = ("tests.fixtures_inference",)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # runs as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FACES = REPO_ROOT.parent / "shared" / "data" / "ffhq_stylegan" / "real"
UPLOAD_LIMIT = 300_000


@pytest.fixture(scope="module")
def face() -> Path:
    if not FACES.is_dir():
        pytest.skip(f"shared ffhq_stylegan set not found at {FACES} (it lives in ../shared beside the repo)")
    return sorted(FACES.iterdir())[0]


@pytest.fixture(scope="module")
def tested_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run trained *and tested*, so its model card has test metrics with CIs and split counts."""
    from deepfake_lightning.train import train

    base = tmp_path_factory.mktemp("web_run")
    data = make_folder_tree(base / "faces", per_class=15, size=48)
    train(
        compose_entry("train", [*TINY_TRAINER, "data=folder", f"data.root={data}", "test=true"], base / "run")
    )
    return base / "run" / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="module")
def server(tested_ckpt: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tested_ckpt, [f"max_upload_bytes={UPLOAD_LIMIT}"]) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.skip(
            f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium; .ci/run does)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, server: ServerProcess) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 820})
    opened = context.new_page()
    refused: list[str] = []  # the page works under its own Content-Security-Policy: nothing of it is blocked
    opened.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    opened.goto(server.url + "/")
    opened.wait_for_selector("#card-body dl")
    yield opened
    context.close()
    assert refused == []


def test_a_real_face_shows_the_apis_p_fake_crop_overlay_and_card(
    page: Page, server: ServerProcess, face: Path, tmp_path: Path
) -> None:
    api = httpx.post(
        f"{server.url}/v1/predict", files={"file": (face.name, face.read_bytes())}, timeout=60
    ).json()
    page.set_input_files("#file", str(face))
    page.wait_for_selector("#image-result:not([hidden])", timeout=60_000)
    assert page.inner_text("#p-fake") == f"{api['p_fake']:.4f}"
    assert page.inner_text("#verdict") == api["label"].upper()
    assert page.inner_text("#filename") == face.name
    fill = page.eval_on_selector("#bar-fill", "el => parseFloat(el.style.width)")
    marker = page.eval_on_selector("#bar-threshold", "el => el.style.left")
    assert fill == pytest.approx(100 * api["p_fake"], abs=0.051)
    assert f"{100 * api['threshold']:.1f}".rstrip("0").rstrip(".") + "%" in marker
    for image in ("#crop", "#overlay"):  # decoded PNGs, at the model's input size
        assert page.eval_on_selector(image, "img => img.naturalWidth") == 32
    assert page.inner_text("#error") == "" and page.is_hidden("#error")

    card = httpx.get(f"{server.url}/v1/model", timeout=30).json()["card"]
    text = page.inner_text("#card")
    auroc = card["test_metrics"]["auroc"]
    assert f"AUROC\t{auroc['value']:.4f}\t[{auroc['ci_low']:.4f}, {auroc['ci_high']:.4f}]" in text
    assert "32 px (resize)" in text and f"{card['calibration']['threshold']:.3f}" in text
    assert "train\n12 real, 12 fake" in text and "undefined" not in text

    shot = tmp_path / "web_page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("WEB_PAGE_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["WEB_PAGE_SCREENSHOT"])


def test_a_corrupt_file_gives_one_readable_error_line(page: Page, face: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(face.read_bytes()[:600])  # a JPEG cut short
    page.set_input_files("#file", str(corrupt))
    page.wait_for_selector("#error:not([hidden])", timeout=60_000)
    line = page.inner_text("#error")
    assert line.startswith("corrupt.jpg: ") and "\n" not in line and "Traceback" not in line
    assert page.is_hidden("#image-result") and page.is_hidden("#video-result")

    text = tmp_path / "notes.txt"
    text.write_text("not an image\n")
    page.set_input_files("#file", str(text))
    # locators, not wait_for_function: the page's CSP (rightly) forbids the eval that one runs in the page
    page.locator("#error", has_text=re.compile(r"^notes\.txt")).wait_for()
    assert "not an image" in page.inner_text("#error")

    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (UPLOAD_LIMIT + 1))
    page.set_input_files("#file", str(big))
    page.locator("#error", has_text=re.compile(r"^big\.png")).wait_for()
    assert "this server takes at most 0.3 MB per image" in page.inner_text("#error")


def test_a_video_shows_its_timeline(page: Page, tmp_path: Path) -> None:
    clip = write_video(tmp_path / "clip.mp4", frames=30)
    page.set_input_files("#file", str(clip))
    page.wait_for_selector("#video-result:not([hidden])", timeout=60_000)
    assert page.locator("#timeline circle").count() == 16  # video_num_frames
    assert page.inner_text("#video-verdict") in ("FAKE", "REAL")
    assert "16 frames scored" in page.inner_text("#video-details")


def test_the_card_shows_the_live_score_drift(page: Page, server: ServerProcess, tmp_path: Path) -> None:
    """The tiny run's bundle records its validation scores: under the card, the drift window fills as images are
    scored (a value once it holds `drift_min_scores`: tests/test_service_metrics.py)."""
    drift = httpx.get(f"{server.url}/v1/model", timeout=30).json()["drift"]
    assert drift is not None and drift["statistic"] == "psi" and drift["value"] is None
    text = page.inner_text("#drift-body")
    assert "Score drift" in text and f"collecting ({drift['scores']} of {drift['min_scores']} scores)" in text
    assert f"{drift['reference']['n']} valid images, {drift['bins']} bins" in text
    page.set_input_files("#file", str(save_image(tmp_path / "one.png", face_like_image(7, size=96))))
    page.wait_for_selector("#image-result:not([hidden])", timeout=60_000)
    after = f"collecting ({drift['scores'] + 1} of {drift['min_scores']} scores)"
    page.wait_for_function(
        f"document.querySelector('#drift-body').innerText.includes({after!r})", timeout=30_000
    )


def test_every_face_is_listed_with_its_box(
    browser: Browser, tested_ckpt: Path, face: Path, tmp_path: Path
) -> None:
    """A server that crops faces: two faces side by side are both boxed on the image and listed in the table."""
    import numpy as np
    from PIL import Image

    left, right = (np.asarray(Image.open(p).convert("RGB")) for p in sorted(FACES.iterdir())[:2])
    two = tmp_path / "two_faces.png"
    Image.fromarray(np.concatenate([left, right], axis=1)).save(two)
    with ServerProcess(tested_ckpt, ["face_crop=true", "face_detector=centerface"]) as running:
        api = httpx.post(
            f"{running.url}/v1/predict", files={"file": (two.name, two.read_bytes())}, timeout=60
        ).json()
        context = browser.new_context(viewport={"width": 1100, "height": 820})
        page = context.new_page()
        page.goto(running.url + "/")
        page.wait_for_selector("#card-body dl")
        page.set_input_files("#file", str(two))
        page.wait_for_selector("#faces:not([hidden])", timeout=60_000)
        assert api["n_faces"] == 2 and page.inner_text("#p-fake") == f"{api['p_fake']:.4f}"
        assert page.locator("#faces-table tbody tr").count() == 2
        assert page.locator("#faces-boxes rect").count() == 2
        cells = page.locator("#faces-table tbody tr").first.locator("td").all_inner_texts()
        shown = [int(v) for v in cells[1].split(", ")]
        assert all(abs(a - b) <= 0.5 for a, b in zip(shown, api["faces"][0]["box"], strict=True))
        assert cells[4] == f"{api['faces'][0]['p_fake']:.4f}" and cells[3] == "landmarks"
        assert "2 faces found" in page.inner_text("#face-note")
        if os.environ.get("WEB_PAGE_FACES_SCREENSHOT"):
            page.screenshot(path=os.environ["WEB_PAGE_FACES_SCREENSHOT"], full_page=True)
        context.close()
