"""Latency of the web app on this machine: click -> first live preview on screen, click -> finished images
on screen (in Debian's chromium, driven by Playwright), and 10 concurrent API requests with their seeds checked.

    python benchmarks/webapp_latency.py runs/demo [--reps 7] [--n 4] [--screenshot docs/webapp.png]

The app runs as `noisecraft serve RUN --port P` in a process of its own (127.0.0.1, 2 requests at a time,
one torch thread each), so the browser and the API clients measured here do not share its interpreter. Times are wall-clock seconds measured in the page (performance.now() from the click
to the first frame where the new picture is loaded); the first click (weights warm-up, browser caches) is
reported apart and left out of the median; it comes 1 s after the page has loaded. Each repetition uses another seed, so no result is cached.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from noisecraft.runs import Run
from noisecraft.web import run_names

# Resolves {preview, done} in ms after the click: the first loaded live picture that differs from the
# one before the click, and the first frame where the gallery shows n new, loaded pictures.
_MEASURE = """async (n) => {
  const liveSrc = () => { const i = document.querySelector('#live img'); return i && i.complete ? i.src : null; };
  const gallery = () => Array.from(document.querySelectorAll('#gallery img'));
  const before = liveSrc(), old = new Set(gallery().map(i => i.src));
  const t0 = performance.now();
  document.querySelector('#generate-btn').click();
  let preview = null;
  return await new Promise(resolve => {
    const tick = () => {
      const now = performance.now() - t0;
      const s = liveSrc();
      if (preview === null && s && s !== before) preview = now;
      const g = gallery();
      if (g.length >= n && g.every(i => i.complete && i.naturalWidth > 0 && !old.has(i.src)))
        return resolve({preview, done: now});
      if (now > 60000) return resolve({preview, done: null});
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _browser_latency(url: str, reps: int, n: int, screenshot: str | None) -> dict:
    from playwright.sync_api import sync_playwright

    out = {"preview": [], "done": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.wait_for_selector("#generate-btn")
        page.wait_for_function("document.querySelector('#status').innerText.includes('press Generate')")
        page.wait_for_timeout(1000)  # a person reads the page before the first click
        page.get_by_label("How many").first.fill(str(n))
        page.get_by_label("How many").first.press("Enter")
        for rep in range(reps + 1):
            seed = page.get_by_label("Seed (sample i uses seed + i)")
            seed.fill(str(1000 + 10 * rep))
            seed.press("Tab")
            page.wait_for_timeout(300)
            r = page.evaluate(_MEASURE, n)
            if r["done"] is None:
                raise RuntimeError(f"repetition {rep}: no result on screen within 60 s")
            key = "warmup" if rep == 0 else None
            if key:
                out["warmup"] = r
            else:
                out["preview"].append(r["preview"] / 1000)
                out["done"].append(r["done"] / 1000)
            page.wait_for_timeout(300)
        if screenshot:
            page.screenshot(path=screenshot, full_page=True)
        browser.close()
    return out


def _concurrent(url: str, run: Run, k: int) -> dict:
    """k requests at once (seeds 500.., classes in turn); each result's PNG compared with Run.generate's."""
    from gradio_client import Client

    clients = [Client(url, verbose=False) for _ in range(k)]
    reqs = [(500 + i, str(i % max(1, run.num_classes))) for i in range(k)]
    spec = run.spec()

    def call(i):
        seed, cls = reqs[i]
        t = time.perf_counter()
        res = clients[i].predict(next(iter(run_names([run.path]))), cls if run.num_classes else "any (classes in turn)",
                                 "", spec.solver, spec.nfe, spec.guidance, seed, 1, api_name="/generate")
        return res, time.perf_counter() - t

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=k) as pool:
        results = list(pool.map(call, range(k)))
    wall = time.perf_counter() - t0
    ok = 0
    modality = run.get_modality()
    with tempfile.TemporaryDirectory() as d:
        for (seed, cls), (res, _) in zip(reqs, results):
            x = run.generate(run.spec(seed=seed), 1, **({"class_labels": cls} if run.num_classes else {}))
            want = modality.write(x[0].clamp(-1, 1), Path(d) / f"{seed}.png", scale=run.config.sample.scale)
            ok += Path(res[2][0]).read_bytes() == want.read_bytes()
    server = [float(m.group(1)) for res, _ in results if (m := re.search(r"done in ([0-9.]+) s", res[4]))]
    return {"wall": wall, "latencies": sorted(t for _, t in results), "correct": ok, "k": k, "server": sorted(server)}


def _serve(run: str, port: int) -> subprocess.Popen:
    """`noisecraft serve RUN --port PORT` in its own process, once it answers."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                        os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "noisecraft", "serve", run, "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"noisecraft serve ended: {proc.stderr.read()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("noisecraft serve did not answer within 120 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--n", type=int, default=4, help="samples per click (the page's default is 4)")
    ap.add_argument("--concurrent", type=int, default=10)
    ap.add_argument("--screenshot", help="save the page after the last click here (docs/webapp.png)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # as `noisecraft serve` (--threads 1)
    run = Run.open(args.run)
    port = _free_port()
    server = _serve(args.run, port)
    url = f"http://127.0.0.1:{port}/"
    try:
        _report(args, run, url)
    finally:
        server.terminate()
        server.wait(30)


def _report(args, run: Run, url: str) -> None:
    print(f"run {args.run}: solver {run.config.sample.solver}, NFE {run.config.sample.nfe}, n = {args.n}; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    b = _browser_latency(url, args.reps, args.n, args.screenshot)
    w = b["warmup"]
    print(f"first click (warm-up): preview {w['preview'] / 1000:.3f} s, done {w['done'] / 1000:.3f} s")
    for key, goal in (("preview", 1.0), ("done", 3.0)):
        v = b[key]
        print(f"click -> {key:7s}: median {statistics.median(v):.3f} s, min {min(v):.3f}, max {max(v):.3f} "
              f"over {len(v)} clicks (goal <= {goal} s)")
    c = _concurrent(url, run, args.concurrent)
    lat = c["latencies"]
    print(f"{c['k']} concurrent requests (n = 1): all done in {c['wall']:.2f} s, per request median "
          f"{statistics.median(lat):.2f} s, max {lat[-1]:.2f} s (server's own time per request: median "
          f"{statistics.median(c['server']):.2f} s); {c['correct']}/{c['k']} equal to Run.generate with their own "
          "seed (same PNG bytes)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
