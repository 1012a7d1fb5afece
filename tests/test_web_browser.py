"""The page in a real browser (Playwright driving Debian's chromium): it loads its state from the URL, draws
the charts, follows a control (debounced, no reload), writes the new state back into the URL, and shows the
same numbers as the API. Saves a screenshot (LLMPLAN_WEB_SCREENSHOT=docs/web.png writes the docs' one).

Skips only when chromium or Playwright cannot be had (scripts/setup.sh installs both)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
playwright_sync = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
if not CHROMIUM.exists():
    pytest.skip("/usr/bin/chromium is missing (apt-get install -y chromium)", allow_module_level=True)

from _web_server import serving  # noqa: E402

from llmplan.units import GIB  # noqa: E402


@pytest.fixture(scope="module")
def server():
    with serving() as url:
        yield url


@pytest.fixture(scope="module")
def page():
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield pg
        browser.close()


def gib(n: int) -> str:
    return f"{n / GIB:,.2f}"


def test_page_follows_a_control_and_shows_the_api_numbers(server, page, tmp_path):
    page.goto(f"{server}/?mode=train&model=llama-3.2-1b&seq_len=2048&micro_batch=2")
    page.wait_for_selector("#status[data-updates='1']", timeout=30000)
    assert page.input_value("#f-micro_batch") == "2"  # restored from the URL
    for chart in ("memory", "memory_vs_seq_len", "memory_vs_micro_batch", "step_time"):
        assert page.locator(f"figure[data-chart='{chart}'] svg").count() == 1
    before = page.inner_text("#device-gib")
    bar_before = page.get_attribute("figure[data-chart='memory'] g.bar >> nth=-1", "data-total")
    page.fill("#f-micro_batch", "8")  # the control moves: the page updates itself, debounced, no reload
    page.wait_for_selector("#status[data-updates='2']", timeout=30000)
    assert "micro_batch=8" in page.url
    after = page.inner_text("#device-gib")
    bar_after = page.get_attribute("figure[data-chart='memory'] g.bar >> nth=-1", "data-total")
    assert after != before and bar_after != bar_before
    api = httpx.post(f"{server}/api/train", json={"model": "llama-3.2-1b", "micro_batch": 8}).json()
    assert after == gib(api["device_bytes"])
    assert page.inner_text("#capacity-gib") == gib(api["capacity_bytes"])
    charts = httpx.post(f"{server}/api/charts/train", json={"model": "llama-3.2-1b", "micro_batch": 8}).json()
    peak = next(c for c in charts["charts"] if c["id"] == "memory")["bars"][-1]["total"]
    assert float(bar_after) == peak
    assert page.locator("#explain tbody tr").count() >= len(api["memory"]["terms"])
    shot = Path(os.environ.get("LLMPLAN_WEB_SCREENSHOT") or tmp_path / "web.png")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000
    page.click("#emit-box summary")
    page.click(".emit-buttons button[data-target='deepspeed']")
    page.wait_for_selector("#emit-download:not([hidden])", timeout=30000)
    assert '"train_micro_batch_size_per_gpu": 8' in page.inner_text("#emit-text")


def test_serve_and_plan_views(server, page):
    page.goto(f"{server}/?mode=serve&model=llama-3.1-8b&gpu=h100-sxm-80gb&batch=16")
    page.wait_for_selector("#status[data-updates='1']", timeout=30000)
    assert page.locator("figure[data-chart='kv_vs_concurrency'] polyline").count() >= 1
    api = httpx.post(f"{server}/api/serve", json={"model": "llama-3.1-8b", "gpu": "h100-sxm-80gb", "batch": 16})
    assert page.inner_text("#device-gib") == gib(api.json()["device_bytes"])
    page.goto(f"{server}/?mode=plan&model=llama-3.2-1b&gpus=8&tp=1&pp=1&cp=1&no_offload=true&top=3")
    page.wait_for_selector("#status[data-updates='1']", timeout=60000)
    assert page.locator("figure[data-chart='plan_layouts'] circle[data-front='true']").count() >= 1


def test_a_bad_value_shows_the_message_not_a_crash(server, page):
    page.goto(f"{server}/?mode=train&model=llama-3.2-1b")
    page.wait_for_selector("#status[data-updates='1']", timeout=30000)
    page.fill("#f-seq_len", "0")
    page.wait_for_selector("#error:not([hidden])", timeout=30000)
    assert "seq" in page.inner_text("#error") and "400" in page.inner_text("#error")
