"""The web page in a real browser (Debian's chromium + chromedriver through selenium, headless) against the real
server (uvicorn on a free loopback port, the mini model, a small real index): scores with signed bars, results
cleared when the input changes, the timeline (axes, hover readout, click-to-seek, playhead, smoothing), search by
text, by an example clip and "more like this", errors in words, the favicon, a phone layout without horizontal
overflow, accessibility basics, recording. Screenshots at 1280 and 375 px go to ``test-artifacts/serve/`` (or
``$PARASPEECHCLAP_TEST_ARTIFACTS/serve``)."""
from __future__ import annotations

import base64
import io
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from serve_helpers import free_port, wav_bytes

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="Debian's chromium and chromium-driver are not installed "
                                       "(apt-get install -y chromium chromium-driver; make test installs them)")
ARTIFACTS = Path(os.environ.get("PARASPEECHCLAP_TEST_ARTIFACTS")
                 or Path(__file__).resolve().parents[2] / "test-artifacts") / "serve"
UP, DOWN = "A person speaks in a high-pitched voice, fast.", "A man speaks slowly in a deep voice."
DESKTOP = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}
PHONE = {"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": True}


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def site(mini, small_index):
    """The service with the small index, served by real uvicorn (the service's own settings) on 127.0.0.1."""
    import uvicorn

    from paraspeechclap.serve.app import create_app
    from paraspeechclap.serve.config import ServeConfig
    from paraspeechclap.serve.http import uvicorn_config

    settings = ServeConfig()
    port = free_port()
    server = uvicorn.Server(uvicorn_config(create_app(mini, settings, index=small_index[0]), settings,
                                           "127.0.0.1", port, "warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert thread.is_alive() and time.time() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="paraspeechclap-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,900",
                 "--autoplay-policy=no-user-gesture-required",
                 # a fake microphone (a beep) that needs no permission prompt, for the recording test
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(chromium, site):
    """The page freshly loaded at desktop width; ``browser.url`` is the server."""
    from selenium.webdriver.support.ui import WebDriverWait

    chromium.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", DESKTOP)
    chromium.get(site + "/")
    WebDriverWait(chromium, 30).until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
    chromium.url = site
    return chromium


def wait_for(driver, condition, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def js(driver, script: str, *args):
    return driver.execute_script(script, *args)


def by_id(driver, name: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, name)


def css(driver, selector: str) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def write_clip(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def two_tones(first: float, second: float, seconds: float = 3.0, rate: int = 16000) -> bytes:
    """``seconds`` of one tone, then as long of another: a recording whose style changes half way."""
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    wave = np.concatenate([0.3 * np.sin(2 * np.pi * f * t) for f in (first, second)]).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format="WAV")
    return buffer.getvalue()


def upload(driver, path: Path, captions: list[str] | None = None) -> None:
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.common.by import By

    by_id(driver, "audio-file").send_keys(str(path))
    wait_for(driver, EC.text_to_be_present_in_element((By.ID, "audio-status"), path.name))
    if captions is not None:
        js(driver, "const box = document.getElementById('captions'); box.value = arguments[0];"
                   "box.dispatchEvent(new Event('input'));", "\n".join(captions))


def score(driver) -> list:
    by_id(driver, "score-btn").click()
    return wait_for(driver, lambda d: css(d, "#score-table:not([hidden]) tr.score-row"))


def draw_timeline(driver, window: str = "2", hop: str = "0.5"):
    for name, value in (("window-seconds", window), ("hop-seconds", hop)):
        by_id(driver, name).clear()
        by_id(driver, name).send_keys(value)
    by_id(driver, "timeline-btn").click()
    return wait_for(driver, lambda d: (css(d, "#timeline-chart:not([hidden]) svg[data-windows]") or [None])[0])


def rect(driver, element) -> dict:
    return js(driver, "const r = arguments[0].getBoundingClientRect();"
                      "return {left: r.left, right: r.right, width: r.width, top: r.top};", element)


def screenshot(driver, name: str) -> Path:
    """The whole page (beyond the viewport) as a PNG under the artifacts folder."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]["height"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": js(driver, "return window.innerWidth"), "height": height, "scale": 1}})
    path = ARTIFACTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


# ---------------------------------------------------------------------------------------------- scores
def test_scores_are_signed_bars_on_a_diverging_scale(browser, mini, tmp_path):
    clip = write_clip(tmp_path, "high.wav", wav_bytes(4.0, 300.0))
    upload(browser, clip, [UP, DOWN])
    rows = score(browser)
    expected = mini.similarity(str(clip), [UP, DOWN])[0]
    cosines = [float(row.find_element("css selector", "td.cosine").text) for row in rows]
    np.testing.assert_allclose(cosines, expected, atol=1e-4)
    assert cosines[0] > 0 > cosines[1]          # one caption fits, the other does not: both signs drawn
    colours = set()
    for row, value in zip(rows, cosines):
        box = row.find_element("css selector", ".diverging")
        bar, zero = box.find_element("css selector", ".bar"), box.find_element("css selector", ".zero")
        b, z, whole = rect(browser, bar), rect(browser, zero), rect(browser, box)
        centre = z["left"] + z["width"] / 2
        assert abs(centre - (whole["left"] + whole["width"] / 2)) < 1.5        # zero in the middle
        scale = float(by_id(browser, "scale-high").text)
        assert b["width"] == pytest.approx(abs(value) / scale * whole["width"] / 2, abs=1.5)   # length by value
        if value > 0:
            assert "positive" in bar.get_attribute("class") and b["left"] >= centre - 1.5
        else:
            assert "negative" in bar.get_attribute("class") and b["right"] <= centre + 1.5
        colours.add(bar.value_of_css_property("background-color"))
        assert f"{float(row.get_attribute('data-cosine')):.3f}" in box.get_attribute("aria-label")
    assert len(colours) == 2
    # a probability bar per class of every attribute of the model's table, each attribute summing to one
    wait_for(browser, lambda d: len(css(d, "#attribute-bars .attribute")) > 0)
    names = [h.text for h in css(browser, "#attribute-bars .attribute h4")]
    assert "pitch" in names and "rate" in names
    for attribute in css(browser, "#attribute-bars .attribute"):
        widths = [rect(browser, b)["width"] for b in attribute.find_elements("css selector", ".bar.probability")]
        track = rect(browser, attribute.find_element("css selector", ".track"))["width"]
        assert sum(widths) == pytest.approx(track, abs=len(widths) + 1)


def test_a_new_input_clears_the_results_and_late_answers_are_dropped(browser, tmp_path):
    first = write_clip(tmp_path, "first.wav", wav_bytes(4.0, 300.0))
    second = write_clip(tmp_path, "second.wav", wav_bytes(4.0, 120.0))
    upload(browser, first, [UP, DOWN])
    score(browser)
    wait_for(browser, lambda d: css(d, "#attribute-bars .attribute"))
    draw_timeline(browser)
    upload(browser, second)                      # a new clip: every result of the old one goes at once
    assert by_id(browser, "score-table").get_attribute("hidden") is not None
    assert not css(browser, "tr.score-row") and not css(browser, "#attribute-bars .attribute")
    assert by_id(browser, "timeline-chart").get_attribute("hidden") is not None and not css(browser, "#timeline-svg *")
    assert by_id(browser, "timeline-legend").text == "" and by_id(browser, "timeline-readout").text == ""
    score(browser)
    js(browser, "const box = document.getElementById('captions'); box.value += '\\nA child shouts.';"
                "box.dispatchEvent(new Event('input'));")   # new descriptions: the scores go too
    assert not css(browser, "tr.score-row")
    # an answer that arrives after the input changed is dropped, even if the request was not cancelled
    js(browser, """
        const original = window.fetch; window.lateAnswers = 0;
        window.fetch = (url, options) => original(url, {...options, signal: undefined}).then((r) =>
            new Promise((done) => setTimeout(() => { window.lateAnswers += 1; done(r); }, 1200)));""")
    by_id(browser, "score-btn").click()
    upload(browser, first)
    wait_for(browser, lambda d: js(d, "return window.lateAnswers") >= 1)
    time.sleep(0.3)
    assert not css(browser, "tr.score-row") and by_id(browser, "score-status").text == ""


# ---------------------------------------------------------------------------------------------- timeline
def hover(browser, chart, t: float, seconds: float, click: bool = False) -> float:
    """Move the pointer over time ``t`` of the chart (and click); returns the x it went to."""
    from selenium.webdriver.common.action_chains import ActionChains

    width = float(chart.get_attribute("width"))
    left, plot = map(float, chart.get_attribute("data-plot").split())
    x = left + plot * t / seconds
    actions = ActionChains(browser).move_to_element_with_offset(chart, int(round(x - width / 2)), 0)
    (actions.click() if click else actions).perform()
    return x


def readout(browser) -> dict:
    return js(browser, """const r = document.getElementById('timeline-readout');
        const time = r.querySelector('.time'), win = r.querySelector('.window');
        return {text: r.textContent, time: time ? Number(time.dataset.time) : null,
                window: win ? Number(win.dataset.window) : null,
                values: [...r.querySelectorAll('.value')].map((v) => Number(v.dataset.value))};""")


def test_timeline_axes_hover_readout_seek_playhead_and_smoothing(browser, tmp_path):
    from selenium.webdriver.common.keys import Keys

    data = two_tones(300.0, 120.0)
    clip = write_clip(tmp_path, "changes.wav", data)
    upload(browser, clip, [UP, DOWN])
    chart = draw_timeline(browser)
    expected = httpx.post(browser.url + "/v1/timeline", files={"audio": ("c.wav", data)},
                          data={"captions": [UP, DOWN], "window_seconds": "2", "hop_seconds": "0.5"}).json()
    scores, seconds = np.asarray(expected["scores"]), expected["seconds"]
    centres = (np.asarray(expected["start"]) + np.asarray(expected["end"])) / 2
    assert chart.get_attribute("data-windows") == str(len(centres)) == "9"
    labels = [t.text for t in chart.find_elements("css selector", "text")]
    assert "time (s)" in labels and "score (cosine)" in labels and "0" in labels
    assert [i.text for i in css(browser, "#timeline-legend .legend-item")] == [UP, DOWN]
    assert len(chart.find_elements("css selector", "path.line")) == 2

    hover(browser, chart, 1.6, seconds)            # hover: time, each caption and its value there
    shown = readout(browser)
    i = shown["window"]
    assert shown["time"] == pytest.approx(1.6, abs=0.05) and i == int(np.argmin(abs(centres - shown["time"])))
    np.testing.assert_allclose(shown["values"], scores[i], atol=1e-6)
    assert UP in shown["text"] and f"{scores[i][1]:.3f}" in shown["text"] and "s (window" in shown["text"]

    player = by_id(browser, "player")
    wait_for(browser, lambda d: js(d, "return arguments[0].readyState", player) >= 1)
    x = hover(browser, chart, 4.5, seconds, click=True)        # click-to-seek
    now = js(browser, "return arguments[0].currentTime", player)
    assert now == pytest.approx(4.5, abs=0.05)
    playhead = chart.find_element("css selector", ".playhead")
    assert float(playhead.get_attribute("x1")) == pytest.approx(x, abs=1.5)
    js(browser, "arguments[0].currentTime = 1.25", player)     # the playhead follows the audio element
    wait_for(browser, lambda d: abs(float(playhead.get_attribute("data-time") or -1) - 1.25) < 0.01, 5)

    raw = chart.find_element("css selector", "path.line[data-caption='0']").get_attribute("d")
    by_id(browser, "smoothing").send_keys(Keys.ARROW_RIGHT)     # smoothing: a moving average over 3 windows
    assert "3 windows" in by_id(browser, "smoothing-value").text
    chart = css(browser, "#timeline-chart svg")[0]
    assert chart.find_element("css selector", "path.line[data-caption='0']").get_attribute("d") != raw
    assert chart.find_element("css selector", "path.raw[data-caption='0']").get_attribute("d") == raw
    hover(browser, chart, 1.6, seconds)
    shown = readout(browser)
    j = shown["window"]
    np.testing.assert_allclose(shown["values"], scores[max(0, j - 1):j + 2].mean(axis=0), atol=1e-6)
    assert "(raw " in shown["text"]
    by_id(browser, "show-raw").click()                         # the raw line can be hidden
    assert not css(browser, "#timeline-chart path.raw")

    chart = css(browser, "#timeline-chart svg")[0]             # the keyboard: arrows move, Enter seeks
    chart.send_keys(Keys.ARROW_RIGHT)
    k = readout(browser)["window"]
    chart.send_keys(Keys.ENTER)
    assert js(browser, "return arguments[0].currentTime", player) == pytest.approx(centres[k], abs=0.05)


# ---------------------------------------------------------------------------------------------- search
def hits(browser) -> list[dict]:
    return js(browser, """return [...document.querySelectorAll('#search-results li.hit')].map((li) => ({
        row: Number(li.dataset.row), name: li.querySelector('.hit-name').textContent,
        score: Number(li.querySelector('.score').textContent),
        negative: !!li.querySelector('.bar.negative')}));""")


def searched(browser, words: str) -> list[dict]:
    wait_for(browser, lambda d: words in by_id(d, "search-status").text and "searching" not in by_id(d, "search-status").text)
    assert "error" not in by_id(browser, "search-status").get_attribute("class")
    return hits(browser)


def test_search_by_text_by_an_example_clip_and_more_like_this(browser, small_index):
    index, corpus, rows = small_index
    assert by_id(browser, "search-section").is_displayed()
    by_id(browser, "search-text").send_keys(DOWN)
    by_id(browser, "search-btn").click()
    found = searched(browser, "5 clips")
    assert [h["name"] for h in found] and all(h["negative"] == (h["score"] < 0) for h in found)
    wait_for(browser, lambda d: all((a.get_attribute("src") or "").startswith("blob:")
                                    for a in css(d, "#search-results li audio")))
    duration = browser.execute_async_script(     # a hit really plays: the browser decodes it and reports its length
        "const done = arguments[0]; const a = document.querySelector('#search-results li audio');"
        "a.preload = 'auto'; a.onloadedmetadata = () => done(a.duration); a.onerror = () => done(-1); a.load();")
    assert duration == pytest.approx(1.0, abs=0.05)

    first = found[0]
    css(browser, "#search-results li.hit button.more-like")[0].click()     # more like this: the clip itself left out
    similar = searched(browser, f"like {first['name']}")
    assert len(similar) == 4 and first["row"] not in [h["row"] for h in similar]

    by_id(browser, "like-file").send_keys(str(corpus / "clip2.wav"))     # search by an uploaded example
    by_example = searched(browser, "like clip2.wav")
    assert by_example[0]["name"] == "clip2.wav" and by_example[0]["score"] == pytest.approx(1.0, abs=0.02)

    upload(browser, corpus / "clip3.wav")                                 # the clip of section 1 as the example
    by_id(browser, "like-audio-btn").click()
    assert searched(browser, "like clip3.wav")[0]["name"] == "clip3.wav"


# ---------------------------------------------------------------------------------------------- errors, favicon
def test_errors_are_words_and_the_favicon_is_served(browser, tmp_path):
    broken = write_clip(tmp_path, "broken.wav", b"RIFF" + b"\x00junk" * 40)
    upload(browser, broken, [UP])
    by_id(browser, "score-btn").click()
    wait_for(browser, lambda d: "error" in by_id(d, "score-status").get_attribute("class"))
    message = by_id(browser, "score-status").text
    assert message.startswith("audio could not be decoded: unreadable or corrupt audio (")
    assert "object at" not in message and "[object" not in message and "<" not in message
    by_id(browser, "search-btn").click()                      # an empty search says what to do
    assert "type a style description" in by_id(browser, "search-status").text

    href = js(browser, "return document.querySelector('link[rel=icon]').href")
    assert href == browser.url + "/static/favicon.svg"
    served = browser.execute_async_script(
        "const done = arguments[1]; fetch(arguments[0]).then(async (r) => done([r.status, "
        "r.headers.get('content-type'), await r.text()]), (err) => done([0, '', String(err)]));", href)
    assert served[0] == 200 and served[1].startswith("image/svg+xml") and "<svg" in served[2]
    drawn = browser.execute_async_script(       # and it is an image the browser can draw
        "const done = arguments[1]; const img = new Image(); img.onload = () => done(img.naturalWidth);"
        "img.onerror = () => done(0); img.src = arguments[0];", href)
    assert drawn > 0


# ---------------------------------------------------------------------------------------------- layout
def test_phone_layout_has_no_horizontal_overflow_and_screenshots(browser, small_index, tmp_path):
    from selenium.webdriver.common.keys import Keys

    corpus = small_index[1]
    clip = write_clip(tmp_path, "recording-with-a-rather-long-file-name.wav", two_tones(300.0, 120.0))
    upload(browser, clip, [UP, DOWN])
    score(browser)
    wait_for(browser, lambda d: css(d, "#attribute-bars .attribute"))
    chart = draw_timeline(browser)
    by_id(browser, "smoothing").send_keys(Keys.ARROW_RIGHT)      # the screenshots show a smoothed and a raw line
    hover(browser, chart, 2.0, 6.0)
    js(browser, "arguments[0].currentTime = 3.5", by_id(browser, "player"))
    by_id(browser, "like-file").send_keys(str(corpus / "clip1.wav"))
    searched(browser, "like clip1.wav")
    overflow = "return [document.documentElement.scrollWidth, window.innerWidth]"
    scroll, inner = js(browser, overflow)
    assert inner == 1280 and scroll <= inner
    desktop = screenshot(browser, "page-desktop-1280.png")

    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    wait_for(browser, lambda d: js(d, "return window.innerWidth") == 375)
    wait_for(browser, lambda d: float(css(d, "#timeline-chart svg")[0].get_attribute("width")) <= 375, 5)
    scroll, inner = js(browser, overflow)
    assert inner == 375 and scroll <= inner, f"the page is {scroll} px wide at a {inner} px viewport"
    for selector in ("#search-text", "#search-btn", "#score-table", ".diverging", "#timeline-chart svg",
                     "#attribute-bars .attribute", "#search-results li.hit"):
        for element in css(browser, selector):
            box = rect(browser, element)
            assert box["left"] >= 0 and box["right"] <= inner + 0.5, (selector, box)
    phone = screenshot(browser, "page-phone-375.png")
    for path, width in ((desktop, 1280), (phone, 375)):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert int.from_bytes(path.read_bytes()[16:20], "big") == width * (2 if width == 375 else 1)


# ---------------------------------------------------------------------------------------------- accessibility
CONTRAST = """
const lum = (rgb) => { const c = rgb.map((v) => v / 255).map((v) => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
                       return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]; };
const rgba = (s) => s.match(/[\\d.]+/g).map(Number);
const background = (node) => { for (; node; node = node.parentElement) { const c = rgba(getComputedStyle(node).backgroundColor);
                                 if (c.length < 4 || c[3] > 0) return c.slice(0, 3); } return [255, 255, 255]; };
const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
const worst = [];
for (const node of document.querySelectorAll('body *')) {
  const own = [...node.childNodes].some((c) => c.nodeType === 3 && c.textContent.trim());
  const style = getComputedStyle(node);
  if (!own || !node.getClientRects().length || style.visibility === 'hidden' || node.closest('svg')) continue;
  if (node.closest('.visually-hidden')) continue;
  const r = ratio(rgba(style.color).slice(0, 3), background(node));
  const large = parseFloat(style.fontSize) >= 24 || (parseFloat(style.fontSize) >= 18.66 && Number(style.fontWeight) >= 700);
  if (r < (large ? 3 : 4.5)) worst.push([node.tagName, node.id || node.className, node.textContent.trim().slice(0, 40), r]);
}
const bars = [...document.querySelectorAll('.bar.positive, .bar.negative, .bar.probability')].map(
  (b) => ratio(rgba(getComputedStyle(b).backgroundColor).slice(0, 3), [255, 255, 255]));
return [worst, bars];
"""


def test_accessibility_basics(browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    upload(browser, write_clip(tmp_path, "clip.wav", wav_bytes(3.0, 300.0)), [UP, DOWN])
    score(browser)
    wait_for(browser, lambda d: css(d, "#attribute-bars .attribute"))
    draw_timeline(browser)
    unlabelled = js(browser, """return [...document.querySelectorAll('input, select, textarea')]
        .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map((e) => e.id);""")
    assert unlabelled == []
    for name in ("score-results", "attribute-bars", "timeline-readout", "search-results"):
        assert by_id(browser, name).get_attribute("aria-live") == "polite"
    assert all(by_id(browser, s).get_attribute("role") == "status"
               for s in ("audio-status", "score-status", "timeline-status", "search-status"))
    reached = []                                   # every control is reached with the Tab key
    for _ in range(40):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        reached.append(js(browser, "return document.activeElement.id || document.activeElement.tagName"))
    for name in ("audio-file", "record", "captions", "score-btn", "window-seconds", "hop-seconds", "timeline-btn",
                 "smoothing", "show-raw", "timeline-svg", "search-text", "search-btn", "like-file", "like-audio-btn"):
        assert name in reached, (name, reached)
    worst, bars = js(browser, CONTRAST)
    assert worst == [], worst                      # text at least 4.5:1 (3:1 when large)
    assert bars and min(bars) >= 3.0, bars         # bars at least 3:1 against white


# ---------------------------------------------------------------------------------------------- recording
def test_record_from_the_microphone_and_score_it(browser):
    """MediaRecorder -> WebM -> decoded and re-encoded as WAV in the page -> scored by the server."""
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.common.by import By

    record = by_id(browser, "record")               # 127.0.0.1 is a secure context: getUserMedia is allowed
    record.click()
    wait_for(browser, lambda d: record.text == "Stop")
    time.sleep(1.5)
    record.click()
    wait_for(browser, EC.text_to_be_present_in_element((By.ID, "audio-status"), "recording.wav"))
    cells = [row.find_element("css selector", "td.cosine") for row in score(browser)]
    assert len(cells) == 2 and all(-1.0 <= float(c.text) <= 1.0 for c in cells)
    assert "error" not in by_id(browser, "score-status").get_attribute("class")
