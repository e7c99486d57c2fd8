"""The demo app end to end: ``cococxr app`` serving, Debian's chromium (Playwright) clicking.

Skips when ``/usr/bin/chromium`` is absent (``tests/install_browser.sh`` installs it where
apt is allowed). Screenshots of both pages go to ``<tmp>/screenshots`` (their paths are
printed), or to ``$COCOCXR_APP_SCREENSHOTS`` when set.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import APP_IMAGE, SAMPLE, build_tiny_models, sample_coco

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SAMPLE_IMAGE = SAMPLE / "images" / APP_IMAGE
START_TIMEOUT = 60  # seconds for the server to answer
RESULT_TIMEOUT = 90_000  # ms for the first result (the server imports TensorFlow then)
STEP_TIMEOUT = 30_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is not installed (tests/install_browser.sh "
                                                      f"installs Debian's chromium where apt is allowed)"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cococxr_command() -> list[str]:
    """The ``cococxr`` console script of this environment (``python -m cococxr`` without it)."""
    script = Path(sys.executable).with_name("cococxr")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "cococxr"]


def wait_until_serving(proc: subprocess.Popen, url: str, timeout: float = START_TIMEOUT) -> None:
    """Poll Streamlit's health endpoint until it answers ``ok``; fail if the server exits or is too slow."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"cococxr app exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"cococxr app did not answer at {url} within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    """Terminate the server by its PID; kill it if it is still running after 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def server(tmp_path):
    """``cococxr app`` with tiny models on a free port; yields its URL, stops it afterwards."""
    seg, cls = build_tiny_models(tmp_path / "models")
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([*cococxr_command(), "app", "--seg-model", str(seg), "--cls-model", str(cls),
                             "--port", str(port), "--max-upload-mb", "1"],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(proc, url)
        yield url
    finally:
        stop(proc)
        log.close()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    folder = Path(os.environ.get("COCOCXR_APP_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_app_in_a_real_browser(server, screenshots, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("a text file renamed .png\n")
    coco = sample_coco(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            page.goto(server)
            expect(page.get_by_text("Chest X-ray: lungs, class and Grad-CAM")).to_be_visible(timeout=STEP_TIMEOUT)

            page.locator("input[type=file]").set_input_files(str(SAMPLE_IMAGE))
            expect(page.get_by_text("Threshold (COVID-19)")).to_be_visible(timeout=RESULT_TIMEOUT)
            expect(page.get_by_text("0.4200", exact=True)).to_be_visible()
            table = page.locator("[data-testid=stTable]")
            expect(table).to_contain_text("COVID-19")
            expect(table).to_contain_text("No Finding")
            expect(table.get_by_text("0.", exact=False).first).to_be_visible()
            expect(page.locator("[data-testid=stImage] img")).to_have_count(2)
            expect(page.get_by_text("Download the result (COCO JSON)")).to_be_visible()
            page.screenshot(path=str(screenshots / "app-predict.png"), full_page=True)

            page.locator("input[type=file]").set_input_files(str(not_an_image))
            alert = page.locator("[data-testid=stAlert]")
            expect(alert).to_contain_text("not a PNG, JPEG or DICOM", timeout=STEP_TIMEOUT)
            expect(page.locator("[data-testid=stException]")).to_have_count(0)
            page.screenshot(path=str(screenshots / "app-bad-upload.png"), full_page=True)

            page.locator("[data-testid=stSidebar]").get_by_text("Browse COCO").click()
            path_box = page.get_by_label("COCO JSON file (a path on the machine running the app)")
            path_box.fill(str(coco))
            path_box.press("Enter")
            expect(page.get_by_text("Image-level labels:")).to_be_visible(timeout=STEP_TIMEOUT)
            expect(page.get_by_text("lung (1)")).to_be_visible()
            expect(page.locator("[data-testid=stImage] img")).to_have_count(1)
            page.screenshot(path=str(screenshots / "app-browse.png"), full_page=True)
        finally:
            browser.close()
    print(f"screenshots: {', '.join(str(p) for p in sorted(screenshots.glob('*.png')))}")
