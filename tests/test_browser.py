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
    (docs / "copies").mkdir()
    shutil.copy(CORPUS / "zh/ch01-tmpfs.md", docs / "copies" / "tmpfs.md")  # the same page under a second path
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


def test_home_page_says_what_is_indexed_and_offers_a_query_per_language(browser, server):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    home = browser.find_element(By.CSS_SELECTOR, "section.home").text
    assert "files indexed" in home and "English document" in home and "Chinese document" in home
    assert "Model: xlsearch-e5-small-distill" in home
    examples = browser.find_elements(By.CSS_SELECTOR, ".examples a")
    assert sorted(a.get_attribute("lang") for a in examples) == ["en", "zh"]
    query = examples[1].text
    examples[1].click()
    assert browser.find_element(By.NAME, "q").get_attribute("value") == query
    assert browser.find_elements(By.CSS_SELECTOR, "li.hit")
    browser.get(server + "/")
    browser.save_screenshot(str(ARTIFACTS / "home.png"))


def test_scores_shown_follow_the_order_and_say_what_they_are(browser, server):
    import re

    from selenium.webdriver.common.by import By

    hits = search(browser, server, "how do I shut down the system")
    scores = [float(h.find_element(By.CSS_SELECTOR, ".score").text) for h in hits]
    assert scores == sorted(scores, reverse=True), "the number shown is the one the list is ordered by"
    tip = hits[0].find_element(By.CSS_SELECTOR, ".score").get_attribute("title")
    assert tip.startswith("Relevance, the number the results are ordered by") and "cosine" in tip
    stats = browser.find_element(By.CSS_SELECTOR, "p.stats").text
    assert re.fullmatch(rf"Results 1–{len(hits)}( \(more on the next page\))? in \d+ ms", stats), stats


def test_paths_are_relative_to_the_indexed_folder_with_the_full_path_on_hover(browser, server):
    from selenium.webdriver.common.by import By

    for hit in search(browser, server, "sudo"):
        path = hit.find_element(By.CSS_SELECTOR, ".path")
        full = path.get_attribute("title")
        assert full.startswith("/") and full.endswith(path.text.split(" · ")[0].split(" [")[0])
        assert not path.text.startswith("/") and path.text.split("/")[0] in ("en", "zh", "copies")


def test_identical_files_are_one_hit_with_the_other_path(browser, server):
    from selenium.webdriver.common.by import By

    hits = search(browser, server, "tmpfs")
    also = [h.find_element(By.CSS_SELECTOR, ".also").text for h in hits if h.find_elements(By.CSS_SELECTOR, ".also")]
    paths = [h.find_element(By.CSS_SELECTOR, ".path").text for h in hits]
    assert len(also) == 1 and also[0] in ("also at copies/tmpfs.md", "also at zh/ch01-tmpfs.md")
    assert not ({"copies/tmpfs.md", "zh/ch01-tmpfs.md"} <= set(paths)), "the copy is not a second hit"


def test_per_page_and_bad_language_are_honoured(browser, server):
    from selenium.webdriver.common.by import By

    browser.get(server + "/?q=system&k=3")
    assert len(browser.find_elements(By.CSS_SELECTOR, "li.hit")) == 3
    browser.find_element(By.CSS_SELECTOR, "a[rel=next]").click()
    assert "k=3" in browser.current_url and len(browser.find_elements(By.CSS_SELECTOR, "li.hit")) == 3
    assert browser.find_element(By.CSS_SELECTOR, "li.hit").get_attribute("id") == "hit-4"
    browser.get(server + "/?q=system&lang=fr")
    assert browser.find_element(By.CSS_SELECTOR, "p.error").text == "lang must be one of any, en, zh, other, not 'fr'"
    assert not browser.find_elements(By.CSS_SELECTOR, "li.hit")


def test_chinese_snippets_are_glossed_word_by_word_with_tone_marks(browser, server):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    hits = search(browser, server, "how do I shut down the system")
    snippet = next(h for h in hits if h.get_attribute("data-lang") == "zh").find_element(By.CSS_SELECTOR, ".snippet")
    ActionChains(browser).move_to_element(snippet).perform()
    WebDriverWait(browser, 10).until(lambda b: snippet.find_elements(By.CSS_SELECTOR, "span.gloss"))
    glossed = snippet.find_elements(By.CSS_SELECTOR, "span.gloss")
    assert any(len(g.text) >= 2 for g in glossed), "words, not only single characters"
    assert any(set(g.get_attribute("title")) & set("āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜ") for g in glossed), "pinyin with tone marks"
    browser.save_screenshot(str(ARTIFACTS / "gloss.png"))


def test_the_summary_says_what_kind_of_summary_it_is(browser, server):
    from selenium.webdriver.common.by import By

    search(browser, server, "如何关闭系统", summary=True)
    how = browser.find_element(By.CSS_SELECTOR, "section.summary .how").text
    assert how.startswith("摘录式") and "原文" in how
    search(browser, server, "how do I shut down the system", summary=True)
    assert browser.find_element(By.CSS_SELECTOR, "section.summary .how").text.startswith("Extractive: sentences quoted")


def test_api_docs_render_offline(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/docs")
    WebDriverWait(browser, 20).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".opblock"))
    assert any("/api/search" in op.text for op in browser.find_elements(By.CSS_SELECTOR, ".opblock"))
    browser.save_screenshot(str(ARTIFACTS / "docs.png"))
