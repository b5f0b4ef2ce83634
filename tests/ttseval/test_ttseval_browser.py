"""The report page in the real Debian chromium (selenium, file:// URL): the audio players load the linked clips, the
per-prompt drill-down opens, the tables and plots are there."""
from __future__ import annotations

import shutil
import tempfile
import time

import pytest

from tts_helpers import needs_espeak

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [needs_espeak, pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Debian's chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)")]


@pytest.fixture
def browser():
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="paraspeechclap-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--autoplay-policy="
                 "no-user-gesture-required", f"--user-data-dir={profile}", "--window-size=1300,1400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_the_report_page_plays_its_clips_and_opens_a_prompt(bench, mini, tmp_path, browser):
    from selenium.webdriver.common.by import By

    from paraspeechclap.ttseval import evaluate_systems

    result = evaluate_systems(bench / "prompts.jsonl", {"good": bench / "good", "bad": bench / "bad"}, mini,
                              cache_dir=None, n_boot=50, n_permutations=50)
    out = result.write_report(tmp_path / "report")
    browser.get((out / "index.html").as_uri())
    assert "style-adherence benchmark" in browser.title
    assert result.signature in browser.find_element(By.TAG_NAME, "code").text
    players = browser.find_elements(By.TAG_NAME, "audio")
    assert len(players) == 12
    # load every player's linked clip: metadata (duration) arrives only if the relative link resolves to a real file
    browser.execute_script("document.querySelectorAll('audio').forEach(a => { a.preload = 'metadata'; a.load(); });")
    deadline = time.time() + 20
    durations = []
    while time.time() < deadline:
        durations = browser.execute_script("return [...document.querySelectorAll('audio')].map(a => a.duration);")
        if all(d and d > 0.5 for d in durations):
            break
        time.sleep(0.2)
    assert all(d and d > 0.5 for d in durations), durations
    details = browser.find_element(By.ID, "prompt-p0")
    assert details.get_attribute("open") is None
    details.find_element(By.TAG_NAME, "summary").click()
    assert details.get_attribute("open") is not None
    assert "A deep male voice speaks slowly." in details.text and "high-pitched" in details.text
    images = browser.execute_script("return [...document.images].map(i => [i.src, i.naturalWidth]);")
    assert images and all(width > 0 for _, width in images), images
