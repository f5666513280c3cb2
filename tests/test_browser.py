"""The search page in a real headless Chromium (Debian's chromium + chromium-driver, via Selenium).

Real default encoder over a slice of the demo corpus: an English query must show a Chinese hit,
the hit must open, the summary must cite hits that exist on the page. Screenshots are saved to
test-artifacts/ (English query → Chinese hits, Chinese query → English hits, phone width).
scripts/test.sh installs chromium, chromium-driver and fonts-noto-cjk; without them these tests
are skipped with that reason.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "demo" / "corpus"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# Answers that exist only in the other language (see demo/queries.tsv), plus neighbours.
FILES = [
    "zh/ch01-how_to_shutdown_the_system.md", "zh/ch04-good_password.md", "zh/ch01-tmpfs.md",
    "zh/ch03-the_hostname.md", "zh/ch02-proxy_server_for_apt.md", "zh/ch01-regular_expressions.md",
    "en/ch04-sudo.md", "en/ch06-setting_up_ssh_agent.md", "en/ch09-disk_space_usage.md",
    "en/ch10-the_md5_sum.md", "en/ch09-scheduling_tasks_regularly.md", "en/ch12-shell_conditionals.md",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver (scripts/test.sh installs them)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory, default_model_dir):
    import uvicorn

    from web.app import create_app

    docs = tmp_path_factory.mktemp("browser-docs")
    picked = set(FILES)
    # enough background chunks per language for balanced ranking: a fixed slice of the corpus
    for lang in ("en", "zh"):
        picked.update(f"{lang}/{p.name}" for p in sorted((CORPUS / lang).glob("ch0[1-3]-*.md"))[:20])
    for rel in sorted(picked):
        (docs / rel).parent.mkdir(exist_ok=True)
        shutil.copy(CORPUS / rel, docs / rel)
    db = docs.parent / (docs.name + "-idx")
    result = CliRunner().invoke(cli, ["-q", "index", str(docs), "--db", str(db), "--model", str(default_model_dir)])
    assert result.exit_code == 0, result.output
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(db), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(5)
    ARTIFACTS.mkdir(exist_ok=True)
    yield driver
    driver.quit()


def search(browser, server, query, summary=False):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    box = browser.find_element(By.NAME, "q")
    box.clear()
    box.send_keys(query)
    if summary:
        browser.find_element(By.NAME, "summary").click()
    browser.find_element(By.CSS_SELECTOR, "form.search button").click()
    return browser.find_elements(By.CSS_SELECTOR, "li.hit")


def test_english_query_shows_a_chinese_hit_that_opens(browser, server):
    from selenium.webdriver.common.by import By

    hits = search(browser, server, "how do I shut down the system")
    assert hits, "no hits rendered"
    langs = [h.get_attribute("data-lang") for h in hits]
    titles = [h.find_element(By.CSS_SELECTOR, "a.title").text for h in hits]
    browser.save_screenshot(str(ARTIFACTS / "en-query-zh-hits.png"))
    assert "zh" in langs[:3], list(zip(langs, titles))
    first_zh = hits[langs.index("zh")].find_element(By.CSS_SELECTOR, "a.title")
    title = first_zh.text
    first_zh.click()
    assert browser.find_element(By.CSS_SELECTOR, "article.document h1").text.startswith(title)
    assert browser.find_element(By.ID, "hit").text.strip(), "the matching chunk is marked in context"


def test_chinese_query_shows_english_hits(browser, server):
    hits = search(browser, server, "如何配置 sudo")
    browser.save_screenshot(str(ARTIFACTS / "zh-query-en-hits.png"))
    assert "en" in [h.get_attribute("data-lang") for h in hits][:3]


def test_summary_citations_link_to_hits_on_the_page(browser, server):
    from selenium.webdriver.common.by import By

    search(browser, server, "how do I shut down the system", summary=True)
    cites = browser.find_elements(By.CSS_SELECTOR, "section.summary a.cite")
    assert cites, "summary has citations"
    for cite in cites:
        target = cite.get_attribute("href").rsplit("#", 1)[1]
        assert browser.find_elements(By.ID, target), f"citation {target} points at a hit on the page"
    cites[0].click()
    assert browser.current_url.endswith("#" + cites[0].get_attribute("href").rsplit("#", 1)[1])
    browser.save_screenshot(str(ARTIFACTS / "summary.png"))


def test_phone_width_and_script_injection(browser, server):
    from selenium.webdriver.common.by import By

    browser.set_window_size(390, 844)
    try:
        hits = search(browser, server, '<script>window.pwned=1</script>"><img src=x onerror="window.pwned=2">')
        assert browser.execute_script("return window.pwned === undefined")
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390 + 1, "no horizontal scrolling on a phone"
        browser.save_screenshot(str(ARTIFACTS / "phone.png"))
        assert hits is not None and browser.find_elements(By.NAME, "q")
    finally:
        browser.set_window_size(1280, 1000)
