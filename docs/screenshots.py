"""Take the README screenshots from a running `xlsearch serve` (e.g. the one scripts/demo.sh starts).

    python docs/screenshots.py [--url http://127.0.0.1:8000]

Writes docs/home.png, docs/en-query-zh-hits.png and docs/zh-query-en-hits.png with headless Chromium
(Debian's chromium + chromium-driver).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

HERE = Path(__file__).resolve().parent
SHOTS = {
    "home.png": {},
    "en-query-zh-hits.png": {"q": "how do I shut down the system", "summary": "true"},
    "zh-query-en-hits.png": {"q": "如何配置 sudo", "summary": "true"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    args = ap.parse_args()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    with tempfile.TemporaryDirectory() as profile:
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run",
                     "--window-size=1280,1100", f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        try:
            for name, params in SHOTS.items():
                driver.get(f"{args.url}/?{urlencode(params)}" if params else f"{args.url}/")
                driver.save_screenshot(str(HERE / name))
                print(HERE / name)
        finally:
            driver.quit()


if __name__ == "__main__":
    main()
