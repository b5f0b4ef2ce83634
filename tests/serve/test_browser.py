"""A real browser (Debian's chromium + chromedriver through selenium) against the real server (uvicorn on a free
loopback port): open the page, upload a clip, enter a caption, read the score back; draw the timeline."""
from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import threading
import time

import pytest

from conftest import wav_bytes

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="Debian's chromium and chromium-driver are not installed "
                                       "(apt-get install -y chromium chromium-driver; make test installs them)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(app):
    """uvicorn serving ``app`` on a free 127.0.0.1 port, in a thread; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert thread.is_alive() and time.time() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def server(mini):
    from paraspeechclap.serve.app import create_app

    with running(create_app(mini)) as url:
        yield url


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="paraspeechclap-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1200,1400",
                 # a fake microphone (a beep) that needs no permission prompt, for the recording test
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_upload_a_clip_enter_a_caption_read_the_score(server, browser, mini, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav_bytes(4.0, 130.0))
    caption = "A man speaks slowly in a deep voice."
    wait = WebDriverWait(browser, 60)
    browser.get(server + "/")
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    assert "mini" in browser.find_element(By.ID, "model-info").text
    browser.find_element(By.ID, "audio-file").send_keys(str(clip))
    wait.until(EC.text_to_be_present_in_element((By.ID, "audio-status"), "clip.wav"))
    box = browser.find_element(By.ID, "captions")
    box.clear()
    box.send_keys(caption)
    browser.find_element(By.ID, "score-btn").click()
    cell = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#score-results td.cosine")))
    expected = float(mini.similarity(str(clip), [caption])[0, 0])
    assert float(cell.text) == pytest.approx(expected, abs=1e-4)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#attribute-bars .attribute")) > 0)
    names = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#attribute-bars .attribute h4")]
    assert "pitch" in names and "rate" in names

    browser.find_element(By.ID, "window-seconds").clear()
    browser.find_element(By.ID, "window-seconds").send_keys("2")
    browser.find_element(By.ID, "timeline-btn").click()
    canvas = browser.find_element(By.ID, "timeline-canvas")
    wait.until(lambda d: canvas.get_attribute("data-windows"))
    assert int(canvas.get_attribute("data-windows")) == 3        # 4 s, 2 s windows, 1 s hop
    assert "error" not in browser.find_element(By.ID, "timeline-status").get_attribute("class")
    browser.save_screenshot(str(tmp_path / "page.png"))


def test_record_from_the_microphone_and_score_it(server, browser):
    """MediaRecorder -> WebM -> decoded and re-encoded as WAV in the page -> scored by the server."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(server + "/")  # 127.0.0.1 is a secure context: getUserMedia is allowed
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    record = browser.find_element(By.ID, "record")
    record.click()
    wait.until(lambda d: record.text == "Stop")
    time.sleep(1.5)
    record.click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "audio-status"), "recording.wav"))
    browser.find_element(By.ID, "score-btn").click()
    cells = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#score-results td.cosine"))
    assert len(cells) == 2 and all(-1.0 <= float(c.text) <= 1.0 for c in cells)
    assert "error" not in browser.find_element(By.ID, "score-status").get_attribute("class")


def test_search_box_returns_playable_clips(mini, browser, tmp_path):
    pytest.importorskip("duckdb", reason="the corpus extra (duckdb, usearch) is not installed")
    pytest.importorskip("usearch", reason="the corpus extra (duckdb, usearch) is not installed")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from paraspeechclap.annotate import annotate
    from paraspeechclap.index import Index
    from paraspeechclap.serve.app import create_app

    corpus = tmp_path / "audio"
    corpus.mkdir()
    for i, freq in enumerate((100, 180, 300)):
        (corpus / f"clip{i}.wav").write_bytes(wav_bytes(1.0, freq))
    annotate(corpus, tmp_path / "ann", workers=1, shard_size=8, device="cpu")
    index = Index.build(tmp_path / "ann")
    with running(create_app(mini, index=Index.open(index.folder))) as url:
        wait = WebDriverWait(browser, 60)
        browser.get(url + "/")
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        assert browser.find_element(By.ID, "search-section").is_displayed()
        browser.find_element(By.ID, "search-text").send_keys("A man speaks in a deep voice.")
        browser.find_element(By.ID, "search-btn").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#search-results li audio")) == 3)
        wait.until(lambda d: all((a.get_attribute("src") or "").startswith("blob:")
                                 for a in d.find_elements(By.CSS_SELECTOR, "#search-results li audio")))
        # the clip really plays: the browser decodes it and reports its length
        duration = browser.execute_async_script(
            "const done = arguments[0]; const a = document.querySelector('#search-results li audio');"
            "a.preload = 'auto'; a.onloadedmetadata = () => done(a.duration); a.onerror = () => done(-1); a.load();")
        assert duration == pytest.approx(1.0, abs=0.05)
