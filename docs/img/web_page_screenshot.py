"""Take docs/img/web_page.png: the page in headless Chromium, a real face of a trained run's test split uploaded.

    python docs/img/web_page_screenshot.py RUN_DIR [docs/img/web_page.png]

RUN_DIR is a `train` run with `test=true` (its `checkpoints/best.ckpt` and `splits.csv`); the face is the first
real image of its test split, so the model never trained on it. Same browser and viewport as
tests/test_web_page.py (Debian's chromium through Playwright); prints the file and the API's and the page's p_fake.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from deepfake_lightning.inference.server_process import ServerProcess

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]


def main(run: Path, out: Path) -> dict:
    with (run / "splits.csv").open() as rows:
        test_real = [r["path"] for r in csv.DictReader(rows) if r["split"] == "test" and r["label"] == "0"]
    face = Path(sorted(test_real)[0])
    with ServerProcess(run / "checkpoints" / "best.ckpt", []) as server:
        api = httpx.post(
            f"{server.url}/v1/predict", files={"file": (face.name, face.read_bytes())}, timeout=60
        ).json()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_context(viewport={"width": 1100, "height": 820}).new_page()
            page.goto(server.url + "/")
            page.wait_for_selector("#card-body dl")
            page.set_input_files("#file", str(face))
            page.wait_for_selector("#image-result:not([hidden])", timeout=60_000)
            shown = page.inner_text("#p-fake")
            page.screenshot(path=str(out), full_page=True)
            browser.close()
    return {"face": str(face), "api_p_fake": api["p_fake"], "page_p_fake": shown, "screenshot": str(out)}


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    target = Path(sys.argv[2] if len(sys.argv) == 3 else "docs/img/web_page.png")
    print(json.dumps(main(Path(sys.argv[1]), target)))
