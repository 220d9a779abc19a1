"""`nksim view` in a real browser: headless Chromium (Debian's package) driven by Playwright.

Starts the server on a free port, loads the page with every request off this machine blocked
(the page must work offline), checks from a screenshot that the tissue shows tumor and CAR-NK
cells, presses Step and reads the simulated time, moves the dose slider and checks the model
was rebuilt (time back to 0, the new dose in the counts). Skips where no browser is installed.
"""
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the Python package) is not installed")
pytest.importorskip("solara", reason="solara is not installed (pip install 'nksim[view]')")
if CHROMIUM is None:
    pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server():
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    log = open(ROOT / ".pytest_cache" / f"view-{port}.log", "w") if (ROOT / ".pytest_cache").is_dir() else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "sim", "view", "scenarios/quickstart.yaml", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 240  # the first run on a fresh checkout compiles the kernels (tens of seconds)
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"nksim view exited with status {proc.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("nksim view did not answer within 240 s")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# the tissue image on the page (Solara puts the class on the <img> or on its wrapper)
TISSUE_IMG = "document.querySelector('.nksim-tissue img, img.nksim-tissue')"


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _time_h(page) -> float:
    text = page.locator(".nksim-time").inner_text()
    m = re.search(r"t = ([0-9.]+) h", text)
    assert m, text
    return float(m.group(1))


@pytest.mark.timeout(420)
def test_page_draws_steps_and_rebuilds(server):
    external = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})

            def route(r):
                if r.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1")):
                    r.continue_()
                else:
                    external.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.goto(server)
            tissue = page.locator(".nksim-tissue")
            tissue.wait_for(state="visible", timeout=90_000)
            page.wait_for_function(f"{TISSUE_IMG} !== null && {TISSUE_IMG}.complete")
            # the page's stylesheet (solara.Style) can arrive after the image: until it does, the browser
            # scales the image smoothly and single-site CAR-NK dots blend into their neighbours' colours
            page.wait_for_function(f"getComputedStyle({TISSUE_IMG}).imageRendering === 'pixelated'")
            # the tissue: a 2000-cell CD19+ nodule (magenta) ringed by 600 CAR-NK cells (cyan, free)
            png = tissue.screenshot()
            img = _pixels(png)
            r, g, b = img[..., 0], img[..., 1], img[..., 2]
            tumor = (r > 150) & (g < 120) & (b > 80)
            nk = (r < 60) & (g > 170) & (b > 220)
            assert tumor.sum() > 20_000, f"only {tumor.sum()} tumor-coloured pixels"
            if nk.sum() <= 1_000:  # keep what the browser showed, for the next person to look at
                shot = ROOT / ".pytest_cache" / "view-first-frame.png"
                if shot.parent.is_dir():
                    shot.write_bytes(png)  # the frame that was measured
                how = page.evaluate(f"(() => {{ const i = {TISSUE_IMG};"
                                    " return [i.naturalWidth, i.width, getComputedStyle(i).imageRendering]; })()")
                pytest.fail(f"only {nk.sum()} CAR-NK-coloured pixels (image natural/display width, rendering: {how})")
            assert _time_h(page) == 0.0

            page.locator(".nksim-step").click()  # one frame: 30 steps of 2 min
            page.wait_for_function("!document.querySelector('.nksim-time').innerText.includes('t = 0.00 h')",
                                   timeout=30_000)
            assert _time_h(page) == pytest.approx(1.0)
            assert "build #1" in page.locator(".nksim-counts").inner_text()

            thumb = page.locator(".nksim-param-nk-dose-cells [role=slider]").first
            thumb.focus()
            for _ in range(3):
                page.keyboard.press("ArrowRight")  # 600 → 672 cells (steps of 24)
            page.wait_for_function("document.querySelector('.nksim-counts').innerText.includes('build #2')",
                                   timeout=30_000)
            counts = page.locator(".nksim-counts").inner_text()
            assert _time_h(page) == 0.0 and "CAR-NK 672" in counts, counts
        finally:
            browser.close()
    assert external == [], f"the page asked for something off this machine: {external[:5]}"
