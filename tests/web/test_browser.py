"""The app in a real browser (pytest-playwright driving Debian's chromium): open the page, generate
digits, watch the live preview change, download a result and compare it with the CLI's bytes.

Skipped where the `chromium` package is not installed (apt-get install chromium), except under
CI=true, where .ci/run installs it and its absence fails. Screenshots go to the test's tmp folder
and, when NOISECRAFT_SCREENSHOTS names a folder, there too."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from web_helpers import cli_run

pytest.importorskip("playwright", reason="the browser tests need the web extra: pip install 'noisecraft[web]'")

pytestmark = pytest.mark.slow  # ~25 s on an idle 2-core machine (a browser start, a tiny run): `make test-slow`

_spec = importlib.util.spec_from_file_location("needs_program", Path(__file__).parents[1] / "data" / "needs_program.py")
needs_program = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(needs_program)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's launch options pointed at the system chromium (Playwright cannot download browsers here)."""
    path = needs_program.require_program("chromium", "chromium")
    return {**browser_type_launch_args, "executable_path": path, "args": ["--no-sandbox", "--disable-gpu"]}


def _shot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    folder = os.environ.get("NOISECRAFT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / path.name)


# Records every picture the live view shows (its <img> src), from before the click on.
_WATCH_LIVE = """() => {
  window.__live = [];
  const root = document.querySelector('#live');
  const note = () => root.querySelectorAll('img').forEach(i => {
    if (i.src && window.__live[window.__live.length - 1] !== i.src) window.__live.push(i.src); });
  new MutationObserver(note).observe(root, {subtree: true, childList: true, attributes: true});
}"""


def test_generate_watch_the_preview_and_download_the_cli_bytes(page, app_url, tiny_run, tmp_path):
    page.goto(app_url)
    page.wait_for_selector("#generate-btn")
    _shot(page, tmp_path, "webapp-main")
    page.evaluate(_WATCH_LIVE)
    page.click("#generate-btn")
    page.wait_for_function("document.querySelectorAll('#gallery img').length >= 4", timeout=60_000)
    page.wait_for_selector("#files a[download]", timeout=30_000)
    _shot(page, tmp_path, "webapp-generated")
    shown = page.evaluate("window.__live")
    assert len(shown) >= 3, shown  # several estimates, then the final grid

    with page.expect_download() as info:
        page.locator('#files a[download="000000.png"]').click()
    got = tmp_path / "downloaded.png"
    info.value.save_as(got)
    # the page's defaults: 4 samples, seed 0, classes in turn, the run's solver, NFE and guidance
    r = cli_run("sample", tiny_run, "--n", 4, "--seed", 0, "--out", tmp_path / "cli")
    assert r.exit_code == 0, r.output
    assert got.read_bytes() == (tmp_path / "cli" / "000000.png").read_bytes()
    assert "seeds 0..3" in page.inner_text("#status")


def test_inpaint_tab_takes_the_newest_result_and_a_painted_mask(page, app_url, tmp_path):
    page.goto(app_url)
    page.wait_for_selector("#generate-btn")
    page.click("#generate-btn")
    page.wait_for_function("document.querySelectorAll('#gallery img').length >= 4", timeout=60_000)
    page.get_by_role("tab", name="Inpaint").click()
    page.get_by_role("button", name="Use my newest result").click()
    canvas = page.locator("#inpaint-editor canvas").first
    canvas.wait_for(timeout=30_000)
    # the editor shows its zoom once the image is in: the tiny 16x16 image is zoomed past 100 %
    page.wait_for_function("/[1-9][0-9]{2,}%/.test(document.querySelector('#inpaint-editor').innerText) && "
                           "!document.querySelector('#inpaint-editor').innerText.includes(' 100%')", timeout=30_000)
    page.wait_for_timeout(300)
    box = canvas.bounding_box()  # the image sits in the middle; a stroke must start on it
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 20, cy)
    page.mouse.down()
    page.mouse.move(cx + 20, cy, steps=8)
    page.mouse.up()
    page.click("#inpaint-btn")
    page.wait_for_function("document.querySelector('#status') && "
                           "document.querySelector('#status').innerText.includes('inpaint: 4 result(s)')"
                           " && document.querySelectorAll('#files a[download]').length >= 5", timeout=60_000)
    _shot(page, tmp_path, "webapp-inpainted")
    assert page.locator("#gallery img").count() >= 4


@pytest.fixture(scope="module")
def two_runs_url(tiny_run, field_run, tmp_path_factory):
    """An app serving the tiny image run (first) and the tiny GRF field run."""
    from web_helpers import served

    with served({"tiny": tiny_run, "grf": field_run}, tmp_path_factory.mktemp("webtwo"), preview_interval=0) as url:
        yield url


def test_switching_the_run_swaps_the_tabs_and_generates_with_the_new_run(page, two_runs_url, tmp_path):
    import numpy as np
    from playwright.sync_api import expect

    page.goto(two_runs_url)
    page.wait_for_selector("#generate-btn")
    tab = lambda name: page.get_by_role("tab", name=name, exact=True)  # noqa: E731
    expect(tab("Inpaint")).to_be_visible(timeout=30_000)  # the image run's tabs, shown when the page loads
    expect(tab("Reconstruct")).to_be_hidden()
    tab("Inpaint").click()
    page.get_by_label("Run").click()
    page.get_by_role("option", name="grf").click()
    expect(page.locator("#run-tasks")).to_contain_text("field run", timeout=30_000)
    expect(tab("Reconstruct")).to_be_visible(timeout=30_000)
    for name in ("Inpaint", "Img2img", "Upscale"):
        expect(tab(name)).to_be_hidden()
    page.click("#generate-btn")  # the switch went back to the Generate tab
    page.wait_for_selector('#files a[download="000000.npz"]', timeout=60_000)  # the field run's files
    tab("Reconstruct").click()
    np.savez(tmp_path / "obs.npz", idx=np.array([[0, 0], [4, 4]]), values=np.array([0.3, -0.2]))
    page.locator("#reconstruct-obs input[type=file]").set_input_files(str(tmp_path / "obs.npz"))
    page.wait_for_selector("#reconstruct-obs a", timeout=30_000)  # the upload finished
    page.click("#reconstruct-btn")
    page.wait_for_selector('#files a[download="posterior.npz"]', timeout=60_000)
    expect(page.locator("#status")).to_contain_text("reconstruct: 4 posterior sample(s)")
    _shot(page, tmp_path, "webapp-reconstruct")
    page.get_by_label("Run").click()
    page.get_by_role("option", name="tiny").click()  # and back: the image run's tabs again
    expect(tab("Inpaint")).to_be_visible(timeout=30_000)
    expect(tab("Reconstruct")).to_be_hidden()
