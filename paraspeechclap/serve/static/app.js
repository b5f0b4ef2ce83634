// ParaSpeechCLAP web page: plain JavaScript, no external files. Talks to the same server's /v1 API.
"use strict";
const $ = (id) => document.getElementById(id);
const COLOURS = ["#3b6ea5", "#c4752b", "#2e8b57", "#9b4dca", "#b42318", "#00838f", "#6d6d00", "#d81b60"];
let audioBlob = null;     // the clip to score: an uploaded File or a recorded WAV Blob
let audioName = "clip.wav";
let recorder = null;

function authHeaders() {
  const token = $("token").value || localStorage.getItem("paraspeechclap-token") || "";
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(path, form) {
  const response = await fetch(path, { method: "POST", body: form, headers: authHeaders() });
  let body = null;
  try { body = await response.json(); } catch (e) { body = { error: response.statusText }; }
  if (!response.ok) {
    const wait = response.headers.get("Retry-After");
    throw new Error((body && body.error ? body.error : response.statusText) + (wait ? ` (retry in ${wait} s)` : ""));
  }
  return body;
}

function status(id, text, isError) {
  const el = $(id);
  el.textContent = text;
  el.className = isError ? "error" : "muted";
}

function captions() {
  return $("captions").value.split("\n").map((s) => s.trim()).filter((s) => s.length > 0);
}

function setAudio(blob, name) {
  audioBlob = blob;
  audioName = name;
  $("player").src = URL.createObjectURL(blob);
  status("audio-status", `${name} (${(blob.size / 1024).toFixed(0)} KiB)`);
}

function audioForm() {
  if (!audioBlob) throw new Error("upload or record a clip first");
  const form = new FormData();
  form.append("audio", audioBlob, audioName);
  return form;
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
  if (recorder && recorder.state === "recording") { recorder.stop(); return; }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    status("audio-status", "recording needs a browser with MediaRecorder on localhost or https", true);
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (event) => chunks.push(event.data);
    recorder.onstop = async () => {
      stream.getTracks().forEach((track) => track.stop());
      button.textContent = "Record"; button.classList.remove("recording");
      try {
        const recorded = new Blob(chunks, { type: recorder.mimeType });
        const context = new AudioContext();
        const decoded = await context.decodeAudioData(await recorded.arrayBuffer());
        setAudio(encodeWav(decoded), "recording.wav");   // the server reads WAV, not the browser's webm
      } catch (err) { status("audio-status", "could not read the recording: " + err.message, true); }
    };
    recorder.start();
    button.textContent = "Stop"; button.classList.add("recording");
    status("audio-status", "recording...");
  } catch (err) { status("audio-status", "no microphone: " + err.message, true); }
}

// ------------------------------------------------------------------ scores and attribute bars
function barCell(value, scale) {
  const td = document.createElement("td");
  const bar = document.createElement("div");
  bar.className = "bar" + (value < 0 ? " negative" : "");
  bar.style.width = Math.min(100, (100 * Math.abs(value)) / scale).toFixed(1) + "%";
  td.appendChild(bar);
  return td;
}

async function score() {
  const texts = captions();
  if (!texts.length) { status("score-status", "type at least one description", true); return; }
  $("score-btn").disabled = true;
  status("score-status", "scoring...");
  try {
    const form = audioForm();
    texts.forEach((t) => form.append("captions", t));
    const result = await api("/v1/score", form);
    const body = $("score-results").querySelector("tbody");
    body.innerHTML = "";
    const scale = Math.max(1e-6, ...result.cosines.map(Math.abs));
    result.captions.forEach((caption, i) => {
      const row = document.createElement("tr");
      row.className = "score-row";
      row.dataset.cosine = result.cosines[i];
      for (const text of [caption, result.cosines[i].toFixed(4), result.logits[i].toFixed(2)]) {
        const td = document.createElement("td"); td.textContent = text; row.appendChild(td);
      }
      row.children[1].className = "cosine";
      row.appendChild(barCell(result.cosines[i], scale));
      body.appendChild(row);
    });
    $("score-results").hidden = false;
    status("score-status", `${result.seconds.toFixed(1)} s of audio, model ${result.provenance.model}`);
    await attributes();
  } catch (err) { status("score-status", err.message, true); }
  finally { $("score-btn").disabled = false; }
}

async function attributes() {
  const form = audioForm();
  form.append("attributes", "default");
  const result = await api("/v1/classify", form);
  const box = $("attribute-bars");
  box.innerHTML = "";
  for (const [name, probabilities] of Object.entries(result.attributes || {})) {
    const div = document.createElement("div");
    div.className = "attribute";
    const title = document.createElement("h4"); title.textContent = name; div.appendChild(title);
    const best = Math.max(...Object.values(probabilities));
    for (const [label, p] of Object.entries(probabilities)) {
      const line = document.createElement("div");
      line.className = "line" + (p === best ? " top" : "");
      const l = document.createElement("span"); l.textContent = label;
      const holder = document.createElement("span");
      const bar = document.createElement("div"); bar.className = "bar"; bar.style.width = (100 * p).toFixed(1) + "%";
      holder.appendChild(bar);
      const v = document.createElement("span"); v.textContent = (100 * p).toFixed(0) + "%";
      line.append(l, holder, v);
      div.appendChild(line);
    }
    box.appendChild(div);
  }
}

// ------------------------------------------------------------------ timeline
function drawTimeline(result) {
  const canvas = $("timeline-canvas"), g = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, left = 50, right = 10, top = 10, bottom = 30;
  g.clearRect(0, 0, W, H);
  const centres = result.start.map((s, i) => (s + result.end[i]) / 2);
  const all = result.scores.flat();
  let lo = Math.min(...all), hi = Math.max(...all);
  if (hi - lo < 1e-6) { lo -= 0.05; hi += 0.05; }
  const pad = 0.05 * (hi - lo); lo -= pad; hi += pad;
  const T = Math.max(result.seconds, 1e-6);
  const x = (t) => left + ((W - left - right) * t) / T;
  const y = (v) => top + ((H - top - bottom) * (hi - v)) / (hi - lo);
  g.strokeStyle = "#99a3ad"; g.fillStyle = "#5f6b7a"; g.font = "11px sans-serif"; g.lineWidth = 1;
  g.beginPath(); g.moveTo(left, top); g.lineTo(left, H - bottom); g.lineTo(W - right, H - bottom); g.stroke();
  for (let k = 0; k <= 4; k++) {
    const v = lo + ((hi - lo) * k) / 4;
    g.fillText(v.toFixed(2), 4, y(v) + 4);
    const t = (T * k) / 4;
    g.fillText(t.toFixed(1) + " s", x(t) - 12, H - bottom + 16);
  }
  const legend = $("timeline-legend");
  legend.innerHTML = "";
  result.captions.forEach((caption, c) => {
    g.strokeStyle = COLOURS[c % COLOURS.length]; g.lineWidth = 2; g.beginPath();
    centres.forEach((t, i) => (i ? g.lineTo(x(t), y(result.scores[i][c])) : g.moveTo(x(t), y(result.scores[i][c]))));
    if (centres.length === 1) g.arc(x(centres[0]), y(result.scores[0][c]), 3, 0, 2 * Math.PI);
    g.stroke();
    const item = document.createElement("span");
    const swatch = document.createElement("i"); swatch.style.background = COLOURS[c % COLOURS.length];
    item.append(swatch, caption);
    legend.appendChild(item);
  });
  canvas.dataset.windows = String(centres.length);
}

async function timeline() {
  const texts = captions();
  if (!texts.length) { status("timeline-status", "type at least one description", true); return; }
  $("timeline-btn").disabled = true;
  status("timeline-status", "computing...");
  try {
    const form = audioForm();
    texts.forEach((t) => form.append("captions", t));
    form.append("window_seconds", $("window-seconds").value);
    form.append("hop_seconds", $("hop-seconds").value);
    const result = await api("/v1/timeline", form);
    drawTimeline(result);
    status("timeline-status", `${result.start.length} windows over ${result.seconds.toFixed(1)} s`);
  } catch (err) { status("timeline-status", err.message, true); }
  finally { $("timeline-btn").disabled = false; }
}

// ------------------------------------------------------------------ search (with --index)
async function search() {
  const text = $("search-text").value.trim();
  if (!text) return;
  status("search-status", "searching...");
  try {
    const response = await fetch("/v1/search", {
      method: "POST", headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify({ text: text, k: 10 }),
    });
    const result = await response.json();
    if (!response.ok) throw new Error(result.error || response.statusText);
    const list = $("search-results");
    list.innerHTML = "";
    for (const hit of result.results) {
      const li = document.createElement("li");
      const scoreText = typeof hit.score === "number" ? hit.score.toFixed(3) + "  " : "";
      li.textContent = scoreText + (hit.name || hit.id || hit.row) + (hit.caption ? " - " + hit.caption : "");
      if (hit.audio_url) {
        const player = document.createElement("audio");
        player.controls = true;
        player.preload = "none";
        li.appendChild(player);
        // fetched with the token header (an <audio src> cannot send one), then played from a blob URL
        fetch(hit.audio_url, { headers: authHeaders() })
          .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(r.statusText))))
          .then((blob) => { player.src = URL.createObjectURL(blob); })
          .catch((err) => { li.append(" (audio unavailable: " + err.message + ")"); });
      }
      list.appendChild(li);
    }
    status("search-status", `${result.results.length} results`);
  } catch (err) { status("search-status", err.message, true); }
}

// ------------------------------------------------------------------ start
async function start() {
  $("audio-file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) setAudio(file, file.name);
  });
  $("record").addEventListener("click", toggleRecording);
  $("score-btn").addEventListener("click", score);
  $("timeline-btn").addEventListener("click", timeline);
  $("search-btn").addEventListener("click", search);
  $("token").addEventListener("change", () => localStorage.setItem("paraspeechclap-token", $("token").value));
  try {
    const health = await (await fetch("/health")).json();
    const p = health.provenance;
    $("model-info").textContent = `model ${p.model} · ${p.precision} on ${p.device} · identity ${p.identity}`;
    $("token-box").hidden = !health.auth;
    $("search-section").hidden = !health.index;
    document.body.dataset.ready = "1";
  } catch (err) { $("model-info").textContent = "the server did not answer /health: " + err.message; }
}
start();
