// ParaSpeechCLAP web page: plain JavaScript, no external files. Talks to the same server's /v1 API.
"use strict";
const $ = (id) => document.getElementById(id);
// line colours, each at least 4.5:1 against white
const COLOURS = ["#1f5fa8", "#c2410c", "#2f7d32", "#7b3fa0", "#b3261e", "#00727d", "#6b6b00", "#a3215f"];
const page = {
  audio: null, audioName: "clip.wav", recorder: null,
  version: 0,          // bumped whenever the clip or the descriptions change: older answers are dropped
  tickets: {}, controls: {},
  timeline: null, chart: null, hover: null,
};
const INPUT_KINDS = ["score", "classify", "timeline"];   // requests whose answers belong to the current input

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attributes, parent) {
  const node = document.createElementNS($("timeline-svg").namespaceURI, tag);   // the page's own <svg>
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
  if (parent) parent.appendChild(node);
  return node;
}

// ------------------------------------------------------------------ talking to the server
function authHeaders() {
  const token = $("token").value || localStorage.getItem("paraspeechclap-token") || "";
  return token ? { Authorization: "Bearer " + token } : {};
}

// The answer's JSON; on an error, an Error whose message is the server's own words ({"error": ...}).
async function api(path, { form, json, signal } = {}) {
  const headers = authHeaders();
  if (json !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method: "POST", body: json !== undefined ? JSON.stringify(json) : form,
                                   headers, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new Error("could not reach the server: is it still running?");
  }
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch (err) { body = null; }
  if (!response.ok) {
    const said = body && typeof body.error === "string" ? body.error
      : `the server answered ${response.status} ${response.statusText}` + (text ? `: ${text.slice(0, 200)}` : "");
    const wait = response.headers.get("Retry-After");
    throw new Error(said + (wait ? ` (retry in ${wait} s)` : ""));
  }
  if (body === null) throw new Error(`the server's answer to ${path} was not JSON`);
  return body;
}

// Runs ``request(signal)`` as the newest of its kind; resolves to null when a newer request of the kind started,
// or (for the input's requests) the clip or descriptions changed, before the answer came.
async function latest(kind, request) {
  const version = page.version, ticket = (page.tickets[kind] = (page.tickets[kind] || 0) + 1);
  if (page.controls[kind]) page.controls[kind].abort();
  const control = (page.controls[kind] = new AbortController());
  const fresh = () => ticket === page.tickets[kind] && (!INPUT_KINDS.includes(kind) || version === page.version);
  try {
    const answer = await request(control.signal);
    return fresh() ? answer : null;
  } catch (err) {
    if (!fresh() || err.name === "AbortError") return null;
    throw err;
  } finally {
    if (page.controls[kind] === control) delete page.controls[kind];
  }
}

function status(id, text, isError) {
  const node = $(id);
  node.textContent = text;
  node.className = isError ? "error" : "muted";
}

function captions() {
  return $("captions").value.split("\n").map((s) => s.trim()).filter((s) => s.length > 0);
}

function audioForm() {
  if (!page.audio) throw new Error("upload or record a clip first");
  const form = new FormData();
  form.append("audio", page.audio, page.audioName);
  return form;
}

function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error("the file could not be read"));
    reader.readAsDataURL(blob);
  });
}

// ------------------------------------------------------------------ the input, and clearing what it made
function inputChanged() {
  page.version += 1;
  for (const kind of INPUT_KINDS) if (page.controls[kind]) page.controls[kind].abort();
  $("score-table").hidden = true;
  $("score-table").querySelector("tbody").textContent = "";
  $("attribute-bars").replaceChildren(el("p", "muted", 'probabilities appear here after "Score".'));
  page.timeline = null;
  page.chart = null;
  page.hover = null;
  drawTimeline();
  $("timeline-legend").textContent = "";
  $("timeline-readout").textContent = "";
  status("score-status", "");
  status("timeline-status", "");
}

function setAudio(blob, name) {
  page.audio = blob;
  page.audioName = name;
  $("player").src = URL.createObjectURL(blob);
  status("audio-status", `${name} (${(blob.size / 1024).toFixed(0)} KiB)`);
  inputChanged();
}

// ------------------------------------------------------------------ recording (MediaRecorder -> WAV in the page)
function encodeWav(buffer) {
  const rate = buffer.sampleRate, length = buffer.length, channels = buffer.numberOfChannels;
  const mono = new Float32Array(length);
  for (let c = 0; c < channels; c++) {
    const data = buffer.getChannelData(c);
    for (let i = 0; i < length; i++) mono[i] += data[i] / channels;
  }
  const view = new DataView(new ArrayBuffer(44 + 2 * length));
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * length, true); text(8, "WAVE"); text(12, "fmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, 2 * length, true);
  for (let i = 0; i < length; i++) {
    const s = Math.max(-1, Math.min(1, mono[i]));
    view.setInt16(44 + 2 * i, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([view], { type: "audio/wav" });
}

async function toggleRecording() {
  const button = $("record");
  if (page.recorder && page.recorder.state === "recording") { page.recorder.stop(); return; }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    status("audio-status", "recording needs a browser with MediaRecorder, on localhost or https", true);
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    const recorder = (page.recorder = new MediaRecorder(stream));
    recorder.ondataavailable = (event) => chunks.push(event.data);
    recorder.onstop = async () => {
      stream.getTracks().forEach((track) => track.stop());
      button.textContent = "Record"; button.classList.remove("recording");
      try {
        const recorded = new Blob(chunks, { type: recorder.mimeType });
        const decoded = await new AudioContext().decodeAudioData(await recorded.arrayBuffer());
        setAudio(encodeWav(decoded), "recording.wav");   // the server reads WAV, not the browser's webm
      } catch (err) { status("audio-status", "could not read the recording: " + err.message, true); }
    };
    recorder.start();
    button.textContent = "Stop"; button.classList.add("recording");
    status("audio-status", "recording...");
  } catch (err) { status("audio-status", "no microphone: " + err.message, true); }
}

// ------------------------------------------------------------------ bars
// The smallest of a few round numbers at least as large as every |value|: the half-width of a diverging scale.
function niceScale(values) {
  const top = Math.max(1e-6, ...values.map(Math.abs));
  return [0.05, 0.1, 0.2, 0.25, 0.5, 0.75, 1].find((s) => s >= top) || Math.ceil(top);
}

// A bar on a diverging scale: zero in the middle, negative values to the left in one colour, positive to the right.
function divergingBar(value, scale, label) {
  const box = el("div", "diverging");
  box.setAttribute("role", "img");
  box.setAttribute("aria-label", `${label}: ${value.toFixed(3)} (scale -${scale} to +${scale})`);
  box.dataset.value = String(value);
  const half = Math.min(50, (50 * Math.abs(value)) / scale);
  const bar = el("span", "bar " + (value < 0 ? "negative" : "positive"));
  bar.style.left = (value < 0 ? 50 - half : 50).toFixed(2) + "%";
  bar.style.width = half.toFixed(2) + "%";
  box.append(bar, el("span", "zero"));
  return box;
}

function probabilityLine(label, p, best) {
  const line = el("div", "line" + (p === best ? " top" : ""));
  const holder = el("span", "track");
  const bar = el("span", "bar probability");
  bar.style.width = (100 * p).toFixed(1) + "%";
  holder.setAttribute("aria-hidden", "true");
  holder.appendChild(bar);
  line.append(el("span", "label", label), holder, el("span", "value", (100 * p).toFixed(0) + "%"));
  return line;
}

// ------------------------------------------------------------------ scores and attribute probabilities
function renderScores(result) {
  const body = $("score-table").querySelector("tbody");
  const scale = niceScale(result.cosines);
  $("scale-low").textContent = "-" + scale;
  $("scale-high").textContent = "+" + scale;
  body.replaceChildren(...result.captions.map((caption, i) => {
    const row = el("tr", "score-row");
    const cosine = result.cosines[i];
    row.dataset.cosine = String(cosine);
    row.append(el("td", "caption", caption), el("td", "num cosine", cosine.toFixed(4)),
               el("td", "num logit", result.logits[i].toFixed(2)));
    const cell = el("td", "bar-cell");
    cell.appendChild(divergingBar(cosine, scale, caption));
    row.appendChild(cell);
    return row;
  }));
  $("score-table").hidden = false;
}

function renderAttributes(attributes) {
  const boxes = Object.entries(attributes).map(([name, probabilities]) => {
    const box = el("div", "attribute");
    box.appendChild(el("h4", "", name));
    const best = Math.max(...Object.values(probabilities));
    for (const [label, p] of Object.entries(probabilities)) box.appendChild(probabilityLine(label, p, best));
    return box;
  });
  $("attribute-bars").replaceChildren(...boxes);
}

async function score() {
  const texts = captions();
  if (!texts.length) { status("score-status", "type at least one description", true); return; }
  if (!page.audio) { status("score-status", "upload or record a clip first", true); return; }
  status("score-status", "scoring...");
  try {
    const form = audioForm();
    texts.forEach((t) => form.append("captions", t));
    const result = await latest("score", (signal) => api("/v1/score", { form, signal }));
    if (!result) return;
    renderScores(result);
    status("score-status", `${result.seconds.toFixed(1)} s of audio, model ${result.provenance.model}`);
    const classes = audioForm();
    classes.append("attributes", "default");
    const probabilities = await latest("classify", (signal) => api("/v1/classify", { form: classes, signal }));
    if (probabilities) renderAttributes(probabilities.attributes || {});
  } catch (err) { status("score-status", err.message, true); }
}

// ------------------------------------------------------------------ timeline
// Centred moving average over ``width`` windows (fewer at the ends); width 1 is the raw line.
function smooth(values, width) {
  const half = Math.floor(width / 2);
  return values.map((_, i) => {
    const part = values.slice(Math.max(0, i - half), Math.min(values.length, i + half + 1));
    return part.reduce((a, b) => a + b, 0) / part.length;
  });
}

function niceTicks(lo, hi, count) {
  const raw = (hi - lo) / Math.max(1, count);
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toFixed(10)));
  return { ticks, step };
}

function smoothingWidth() {
  return parseInt($("smoothing").value, 10) || 1;
}

function chartGeometry(data, width) {
  const height = width < 520 ? 230 : 280;
  const margin = { left: 58, right: 14, top: 12, bottom: 46 };
  const all = data.scores.flat();
  let lo = Math.min(...all), hi = Math.max(...all);
  if (hi - lo < 1e-6) { lo -= 0.05; hi += 0.05; }
  const pad = 0.06 * (hi - lo);
  lo -= pad; hi += pad;
  const seconds = Math.max(data.seconds, 1e-6);
  const plotW = width - margin.left - margin.right, plotH = height - margin.top - margin.bottom;
  return {
    width, height, margin, lo, hi, seconds, plotW, plotH,
    x: (t) => margin.left + (plotW * t) / seconds,
    y: (v) => margin.top + (plotH * (hi - v)) / (hi - lo),
    time: (px) => Math.min(seconds, Math.max(0, ((px - margin.left) * seconds) / plotW)),
    centres: data.start.map((s, i) => (s + data.end[i]) / 2),
  };
}

function drawAxes(root, g) {
  const { margin, width, height } = g;
  const axes = svg("g", { class: "axes" }, root);
  const yTicks = niceTicks(g.lo, g.hi, 5).ticks;
  const xTicks = niceTicks(0, g.seconds, Math.max(3, Math.floor(g.plotW / 80))).ticks;
  for (const v of yTicks) {
    svg("line", { class: v === 0 ? "zero" : "grid", x1: margin.left, x2: width - margin.right, y1: g.y(v), y2: g.y(v) }, axes);
    svg("text", { x: margin.left - 6, y: g.y(v) + 4, "text-anchor": "end" }, axes).textContent = v.toFixed(2);
  }
  for (const t of xTicks) {
    svg("line", { class: "tick", x1: g.x(t), x2: g.x(t), y1: height - margin.bottom, y2: height - margin.bottom + 5 }, axes);
    svg("text", { x: g.x(t), y: height - margin.bottom + 18, "text-anchor": "middle" }, axes).textContent = String(t);
  }
  svg("line", { class: "axis", x1: margin.left, x2: margin.left, y1: margin.top, y2: height - margin.bottom }, axes);
  svg("line", { class: "axis", x1: margin.left, x2: width - margin.right, y1: height - margin.bottom,
                y2: height - margin.bottom }, axes);
  svg("text", { class: "axis-label", x: margin.left + g.plotW / 2, y: height - 6, "text-anchor": "middle" }, axes)
    .textContent = "time (s)";
  svg("text", { class: "axis-label", x: -(margin.top + g.plotH / 2), y: 14, "text-anchor": "middle",
                transform: "rotate(-90)" }, axes).textContent = "score (cosine)";
}

function linePath(g, values) {
  return values.map((v, i) => `${i ? "L" : "M"}${g.x(g.centres[i]).toFixed(2)},${g.y(v).toFixed(2)}`).join(" ");
}

function drawLines(root, g, data) {
  const width = smoothingWidth(), showRaw = $("show-raw").checked && width > 1;
  g.raw = data.captions.map((_, c) => data.scores.map((row) => row[c]));
  g.values = g.raw.map((series) => smooth(series, width));
  const lines = svg("g", { class: "lines" }, root);
  data.captions.forEach((caption, c) => {
    const colour = COLOURS[c % COLOURS.length];
    if (showRaw) svg("path", { class: "raw", "data-caption": c, d: linePath(g, g.raw[c]), stroke: colour }, lines);
    svg("path", { class: "line", "data-caption": c, d: linePath(g, g.values[c]), stroke: colour }, lines);
    if (g.centres.length === 1) svg("circle", { cx: g.x(g.centres[0]), cy: g.y(g.values[c][0]), r: 4, fill: colour }, lines);
  });
}

function drawTimeline() {
  const chart = $("timeline-chart"), root = $("timeline-svg"), data = page.timeline;
  root.replaceChildren();
  chart.hidden = !data;
  if (!data) { page.chart = null; delete root.dataset.windows; $("timeline-legend").textContent = ""; return; }
  const g = chartGeometry(data, Math.max(260, chart.clientWidth));
  for (const [name, value] of Object.entries({ width: g.width, height: g.height, viewBox: `0 0 ${g.width} ${g.height}`,
                                               "aria-valuemax": g.seconds.toFixed(2), "aria-valuenow": 0 })) {
    root.setAttribute(name, String(value));
  }
  root.dataset.windows = String(g.centres.length);
  root.dataset.plot = `${g.margin.left} ${g.plotW}`;   // where time 0 and the plot's width are, in px
  drawAxes(root, g);
  drawLines(root, g, data);
  g.guide = svg("line", { class: "guide", y1: g.margin.top, y2: g.height - g.margin.bottom, visibility: "hidden" }, root);
  g.dots = data.captions.map((_, c) => svg("circle", { class: "dot", r: 4, visibility: "hidden",
                                                       fill: COLOURS[c % COLOURS.length] }, root));
  g.playhead = svg("line", { class: "playhead", y1: g.margin.top, y2: g.height - g.margin.bottom }, root);
  svg("rect", { class: "overlay", x: g.margin.left, y: g.margin.top, width: g.plotW, height: g.plotH }, root);
  g.root = root;
  page.chart = g;
  drawLegend(data);
  if (page.hover !== null) hoverAt(page.hover);
  updatePlayhead();
}

function drawLegend(data) {
  $("timeline-legend").replaceChildren(...data.captions.map((caption, c) => {
    const item = el("span", "legend-item");
    const swatch = el("i");
    swatch.style.background = COLOURS[c % COLOURS.length];
    swatch.setAttribute("aria-hidden", "true");
    item.append(swatch, caption);
    return item;
  }));
}

// The time under the pointer.
function pointerTime(event) {
  return page.chart.time(event.clientX - page.chart.root.getBoundingClientRect().left);
}

function listenToTimeline() {
  const root = $("timeline-svg");
  root.addEventListener("pointermove", (event) => { if (page.chart) hoverAt(pointerTime(event)); });
  root.addEventListener("pointerleave", () => showGuide(false));
  root.addEventListener("click", (event) => { if (page.chart) seek(pointerTime(event)); });
  root.addEventListener("keydown", timelineKey);
  root.addEventListener("focus", () => { if (page.chart && page.hover === null) hoverAt(page.chart.centres[0]); });
}

function nearestWindow(g, t) {
  let best = 0;
  g.centres.forEach((c, i) => { if (Math.abs(c - t) < Math.abs(g.centres[best] - t)) best = i; });
  return best;
}

function showGuide(visible) {
  const g = page.chart;
  if (!g) return;
  const state = visible ? "visible" : "hidden";
  g.guide.setAttribute("visibility", state);
  g.dots.forEach((dot) => dot.setAttribute("visibility", state));
}

// The readout at time ``t``: the window nearest to it, and each description's value there (smoothed, and raw).
function hoverAt(t) {
  const g = page.chart, data = page.timeline;
  if (!g || !data) return;
  page.hover = t;
  const i = nearestWindow(g, t);
  g.guide.setAttribute("x1", g.x(t));
  g.guide.setAttribute("x2", g.x(t));
  g.dots.forEach((dot, c) => { dot.setAttribute("cx", g.x(g.centres[i])); dot.setAttribute("cy", g.y(g.values[c][i])); });
  showGuide(true);
  const smoothed = smoothingWidth() > 1;
  const readout = $("timeline-readout");
  const head = el("span", "time", `${t.toFixed(2)} s`);
  head.dataset.time = String(t);
  const span = el("span", "window", ` (window ${data.start[i].toFixed(2)}-${data.end[i].toFixed(2)} s)`);
  span.dataset.window = String(i);
  const values = data.captions.map((caption, c) => {
    const item = el("span", "value");
    item.dataset.caption = String(c);
    item.dataset.value = String(g.values[c][i]);
    const swatch = el("i");
    swatch.style.background = COLOURS[c % COLOURS.length];
    item.append(swatch, caption + " ", el("b", "", g.values[c][i].toFixed(3)),
                smoothed ? ` (raw ${g.raw[c][i].toFixed(3)})` : "");
    return item;
  });
  readout.replaceChildren(head, span, ...values);
  g.root.setAttribute("aria-valuenow", t.toFixed(2));
  g.root.setAttribute("aria-valuetext", readout.textContent);
}

function timelineKey(event) {
  const g = page.chart;
  if (!g) return;
  const i = nearestWindow(g, page.hover === null ? 0 : page.hover);
  const moves = { ArrowRight: i + 1, ArrowUp: i + 1, ArrowLeft: i - 1, ArrowDown: i - 1, Home: 0,
                  End: g.centres.length - 1 };
  if (event.key in moves) {
    hoverAt(g.centres[Math.max(0, Math.min(g.centres.length - 1, moves[event.key]))]);
  } else if (event.key === "Enter" || event.key === " ") {
    seek(page.hover === null ? 0 : page.hover);
  } else {
    return;
  }
  event.preventDefault();
}

function seek(t) {
  const player = $("player");
  if (!player.src) return;
  player.currentTime = t;
  updatePlayhead();
}

function updatePlayhead() {
  const g = page.chart, player = $("player");
  if (!g) return;
  const t = Math.min(g.seconds, player.currentTime || 0);
  g.playhead.setAttribute("x1", g.x(t));
  g.playhead.setAttribute("x2", g.x(t));
  g.playhead.dataset.time = String(t);
}

function followPlayback() {
  updatePlayhead();
  if (!$("player").paused) requestAnimationFrame(followPlayback);
}

async function timeline() {
  const texts = captions();
  if (!texts.length) { status("timeline-status", "type at least one description", true); return; }
  if (!page.audio) { status("timeline-status", "upload or record a clip first", true); return; }
  status("timeline-status", "computing...");
  try {
    const form = audioForm();
    texts.forEach((t) => form.append("captions", t));
    form.append("window_seconds", $("window-seconds").value);
    form.append("hop_seconds", $("hop-seconds").value);
    const result = await latest("timeline", (signal) => api("/v1/timeline", { form, signal }));
    if (!result) return;
    page.timeline = result;
    page.hover = null;
    $("timeline-readout").textContent = "";
    drawTimeline();
    status("timeline-status", `${result.start.length} windows over ${result.seconds.toFixed(1)} s`);
  } catch (err) { status("timeline-status", err.message, true); }
}

function smoothingChanged() {
  const width = smoothingWidth();
  $("smoothing-value").textContent = width > 1 ? `moving average over ${width} windows` : "off (raw)";
  drawTimeline();
}

// ------------------------------------------------------------------ search (with --index)
function playableAudio(url, item) {
  const player = el("audio");
  player.controls = true;
  player.preload = "none";
  // fetched with the token header (an <audio src> cannot send one), then played from a blob URL
  fetch(url, { headers: authHeaders() })
    .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(`the server answered ${r.status}`))))
    .then((blob) => { player.src = URL.createObjectURL(blob); })
    .catch((err) => { item.appendChild(el("span", "error", " audio unavailable: " + err.message)); });
  return player;
}

function renderHit(hit, scale) {
  const item = el("li", "hit");
  item.dataset.row = String(hit.row);
  const name = hit.name || hit.id || `row ${hit.row}`;
  const head = el("div", "hit-head");
  head.append(el("strong", "hit-name", name));
  if (typeof hit.score === "number") {
    head.append(el("span", "num score", hit.score.toFixed(3)), divergingBar(hit.score, scale, name));
  }
  item.appendChild(head);
  if (hit.caption) item.appendChild(el("p", "hit-caption", hit.caption));
  const tags = Array.isArray(hit.tags) ? hit.tags.join(", ") : hit.tags;
  if (tags) item.appendChild(el("p", "muted small", tags));
  const actions = el("div", "row");
  if (hit.audio_url) actions.appendChild(playableAudio(hit.audio_url, item));
  if (hit.row !== undefined && hit.row !== null) {
    const more = el("button", "secondary more-like", "More like this");
    more.type = "button";
    more.setAttribute("aria-label", `More like this: ${name}`);
    more.addEventListener("click", () => runSearch({ like: hit.row, k: 10 }, `like ${name}`));
    actions.appendChild(more);
  }
  item.appendChild(actions);
  return item;
}

async function runSearch(body, what) {
  $("search-results").textContent = "";
  status("search-status", `searching ${what}...`);
  try {
    const result = await latest("search", async (signal) => {
      if (body.like instanceof Blob) body = { ...body, like: { base64: await dataUrl(body.like) } };
      return api("/v1/search", { json: body, signal });
    });
    if (!result) return;
    const scale = niceScale(result.results.map((hit) => (typeof hit.score === "number" ? hit.score : 0)));
    $("search-results").replaceChildren(...result.results.map((hit) => renderHit(hit, scale)));
    status("search-status", `${result.results.length} clips ${what}`);
  } catch (err) { status("search-status", err.message, true); }
}

function searchByText(event) {
  event.preventDefault();
  const text = $("search-text").value.trim();
  if (!text) { status("search-status", "type a style description to search for", true); return; }
  runSearch({ text, k: 10 }, `for "${text}"`);
}

function searchLikeAudio() {
  if (!page.audio) { status("search-status", "upload or record a clip above first", true); return; }
  runSearch({ like: page.audio, k: 10 }, `like ${page.audioName}`);
}

// ------------------------------------------------------------------ start
async function start() {
  $("audio-file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) setAudio(file, file.name);
  });
  $("record").addEventListener("click", toggleRecording);
  $("captions").addEventListener("input", inputChanged);
  $("score-btn").addEventListener("click", score);
  $("timeline-btn").addEventListener("click", timeline);
  $("smoothing").addEventListener("input", smoothingChanged);
  $("show-raw").addEventListener("change", drawTimeline);
  listenToTimeline();
  for (const name of ["timeupdate", "seeked", "loadedmetadata"]) $("player").addEventListener(name, updatePlayhead);
  $("player").addEventListener("play", followPlayback);
  new ResizeObserver(() => {
    if (page.chart && Math.abs(page.chart.width - Math.max(260, $("timeline-chart").clientWidth)) > 1) drawTimeline();
  }).observe($("timeline-chart"));
  $("search-form").addEventListener("submit", searchByText);
  $("like-file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) runSearch({ like: file, k: 10 }, `like ${file.name}`);
  });
  $("like-audio-btn").addEventListener("click", searchLikeAudio);
  $("token").addEventListener("change", () => localStorage.setItem("paraspeechclap-token", $("token").value));
  try {
    const response = await fetch("/health");
    const health = await response.json();
    const p = health.provenance;
    $("model-info").textContent = `model ${p.model} · ${p.precision} on ${p.device} · identity ${p.identity}`;
    $("token-box").hidden = !health.auth;
    $("search-section").hidden = !health.index;
    document.body.dataset.ready = "1";
  } catch (err) { $("model-info").textContent = "the server did not answer /health: is it still running?"; }
}
start();
