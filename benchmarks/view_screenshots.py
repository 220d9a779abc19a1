"""Screenshots of `nksim view` for docs/view.md (2D quickstart, 3D HER2 slice), with headless Chromium.

    PYTHONPATH=. python benchmarks/view_screenshots.py   # writes docs/figures/view_2d.png, view_3d.png
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def shoot(scenario: str, out: Path, frames: int, steps_per_frame: int | None = None) -> None:
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "sim", "view", scenario, "--port", str(port)], cwd=ROOT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(480):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
            page = b.new_page(viewport={"width": 1560, "height": 940})
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("http://127.0.0.1") else r.abort())
            page.goto(url)
            page.locator(".nksim-tissue").wait_for(timeout=90_000)
            for i in range(frames):
                before = page.locator(".nksim-time").inner_text()
                page.locator(".nksim-step").click()
                page.wait_for_function(f"document.querySelector('.nksim-time').innerText !== {before!r}", timeout=60_000)
            time.sleep(1.0)
            page.screenshot(path=str(out))
            b.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    print("wrote", out)


if __name__ == "__main__":
    figs = ROOT / "docs" / "figures"
    shoot("scenarios/quickstart.yaml", figs / "view_2d.png", frames=12)
    shoot("scenarios/her2_solid_tgfb.yaml", figs / "view_3d.png", frames=8)
