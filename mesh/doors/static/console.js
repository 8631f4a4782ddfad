// The lanai console: the mesh's nodes, and a way to try each service. It uses only the HTTP
// API this node serves (OpenAI's /v1 endpoints and /lanai/v1 for nodes and vision).
"use strict";

const $ = (id) => document.getElementById(id);
const keyInput = $("key");
keyInput.value = localStorage.getItem("lanai-key") || "";
keyInput.addEventListener("change", () => { localStorage.setItem("lanai-key", keyInput.value.trim()); refresh(); });

function headers(extra = {}) {
  const key = keyInput.value.trim();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function failure(response) {
  try {
    const body = await response.json();
    return `${response.status}: ${body.error?.message || JSON.stringify(body)}`;
  } catch (_) {
    return `${response.status} ${response.statusText}`;
  }
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

// --- the mesh ------------------------------------------------------------------------------
const STATES = ["unspecified", "up", "suspect", "down", "refused", "draining", "untrusted", "foreign", "revoked"];

function stateName(state) {
  if (typeof state === "number") return STATES[state] || String(state);
  return String(state || "").replace("NODE_STATE_", "").toLowerCase();
}

function loadText(entry) {
  const services = entry.last_load?.services || [];
  return services.map((s) => `${s.service} ${s.in_flight || 0}/${s.slots || 0} busy, ${s.queued || 0} queued`).join("\n");
}

function servicesText(entry) {
  const services = entry.description?.services || [];
  return services.map((s) => `${s.name}: ${(s.models || []).map((m) => m.name).join(", ")}`).join("\n");
}

async function refreshNodes() {
  const response = await fetch("/lanai/v1/nodes", { headers: headers() });
  if (!response.ok) throw new Error(await failure(response));
  const { nodes } = await response.json();
  const rows = nodes.map((entry) => {
    const state = stateName(entry.state);
    return el("tr", { className: "node" },
      el("td", { textContent: entry.node_id || "?" }),
      el("td", { className: `state-${state}`, textContent: state, title: entry.state_reason || "" }),
      el("td", { textContent: `${entry.address || "this node"} (${entry.discovered_by || ""})` }),
      el("td", { textContent: servicesText(entry), className: "msg" }),
      el("td", { textContent: loadText(entry), className: "msg" }));
  });
  $("nodes").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colSpan: 5, textContent: "no nodes yet" }))]));
  const up = nodes.filter((n) => stateName(n.state) === "up").length;
  $("summary").textContent = `${nodes.length} node${nodes.length === 1 ? "" : "s"}, ${up} up`;
}

let models = [];
async function refreshModels() {
  const response = await fetch("/v1/models", { headers: headers() });
  if (!response.ok) throw new Error(await failure(response));
  models = (await response.json()).data;
  fill($("chat-model"), models.filter((m) => m.service === "language" && m.task === "generate"));
  fill($("speech-model"), models.filter((m) => m.service === "speech"));
  fill($("voice-model"), models.filter((m) => m.service === "voice"));
}

function fill(select, choices) {
  const current = select.value;
  const names = choices.map((m) => m.id);
  if (names.join() === [...select.options].map((o) => o.value).join()) return;
  select.replaceChildren(...choices.map((m) => el("option", { value: m.id, textContent: m.id + (m.default ? " (default)" : "") })));
  if (names.includes(current)) select.value = current;
  else { const d = choices.find((m) => m.default); if (d) select.value = d.id; }
}

async function refresh() {
  try {
    await Promise.all([refreshNodes(), refreshModels()]);
    $("mesh-error").hidden = true;
  } catch (error) {
    $("mesh-error").textContent = String(error.message || error);
    $("mesh-error").hidden = false;
  }
}
refresh();
setInterval(refresh, 2000);

// --- chat: streamed server-sent events ------------------------------------------------------
const history = [];
$("chat-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("chat-input").value.trim();
  if (!text) return;
  $("chat-input").value = "";
  history.push({ role: "user", content: text });
  $("chat-log").append(el("div", { className: "msg user", textContent: text }));
  const answer = el("div", { className: "msg assistant" });
  $("chat-log").append(answer);
  $("chat-send").disabled = true;
  const started = performance.now();
  let first = 0;
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ model: $("chat-model").value || "default", messages: history, stream: true,
                             max_tokens: 256, stream_options: { include_usage: true } }),
    });
    if (!response.ok) throw new Error(await failure(response));
    let served = null, usage = null;
    for await (const event of events(response)) {
      if (event.error) throw new Error(event.error.message);
      const delta = event.choices?.[0]?.delta?.content;
      if (delta) { if (!first) first = performance.now(); answer.textContent += delta; }
      if (event.served_by) served = event.served_by;
      if (event.usage) usage = event.usage;
      $("chat-log").scrollTop = $("chat-log").scrollHeight;
    }
    history.push({ role: "assistant", content: answer.textContent });
    $("chat-meta").textContent = `${served ? "node " + served.node + ", " + served.model + ", " : ""}` +
      `first token ${first ? Math.round(first - started) : "-"} ms` +
      (usage ? `, ${usage.completion_tokens} tokens` : "");
  } catch (error) {
    answer.classList.add("error");
    answer.textContent = String(error.message || error);
    history.pop();
  } finally {
    $("chat-send").disabled = false;
  }
});

async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of block.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        yield JSON.parse(data);
      }
    }
  }
}

// --- speech: a file or a recording ----------------------------------------------------------
async function transcribe(blob, name) {
  const form = new FormData();
  form.append("file", blob, name);
  form.append("model", $("speech-model").value || "default");
  form.append("response_format", "verbose_json");
  $("speech-status").textContent = "transcribing…";
  const response = await fetch("/v1/audio/transcriptions", { method: "POST", headers: headers(), body: form });
  if (!response.ok) { $("speech-status").textContent = await failure(response); return; }
  const body = await response.json();
  $("speech-text").textContent = body.segments.map((s) => `[${s.start.toFixed(1)}–${s.end.toFixed(1)} s] ${s.text.trim()}`).join("\n") || body.text;
  $("speech-status").textContent = `${body.duration.toFixed(1)} s of ${body.language} audio, node ${response.headers.get("X-Lanai-Node")}`;
}
$("speech-file").addEventListener("change", () => {
  const file = $("speech-file").files[0];
  if (file) transcribe(file, file.name);
});
let recorder = null;
$("speech-record").addEventListener("click", async () => {
  if (recorder) { recorder.stop(); return; }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (e) => chunks.push(e.data);
    recorder.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      recorder = null;
      $("speech-record").textContent = "Record";
      transcribe(new Blob(chunks, { type: chunks[0]?.type || "audio/webm" }), "recording.webm");
    };
    recorder.start();
    $("speech-record").textContent = "Stop";
    $("speech-status").textContent = "recording… press Stop when done";
  } catch (error) {
    $("speech-status").textContent = `no microphone: ${error.message || error} (a page not on localhost needs HTTPS for it)`;
  }
});

// --- vision: labels, faces or text drawn over the image -------------------------------------
$("vision-file").addEventListener("change", see);
$("vision-task").addEventListener("change", see);
async function see() {
  const file = $("vision-file").files[0];
  if (!file) return;
  const task = $("vision-task").value;
  $("vision-status").textContent = "looking…";
  const response = await fetch(`/lanai/v1/vision/${task}?top_k=5`, {
    method: "POST", headers: headers({ "Content-Type": file.type || "application/octet-stream" }), body: file });
  if (!response.ok) { $("vision-status").textContent = await failure(response); return; }
  const body = await response.json();
  const image = await createImageBitmap(file);
  const canvas = $("vision-canvas");
  const scale = Math.min(1, 480 / image.width);
  canvas.width = image.width * scale; canvas.height = image.height * scale;
  const g = canvas.getContext("2d");
  g.drawImage(image, 0, 0, canvas.width, canvas.height);
  g.strokeStyle = "#f04438"; g.lineWidth = 2;
  const items = [];
  for (const face of body.faces || []) {
    const b = face.box;
    g.strokeRect(b.x_min * scale, b.y_min * scale, (b.x_max - b.x_min) * scale, (b.y_max - b.y_min) * scale);
    items.push(`face ${(face.confidence * 100).toFixed(0)}%`);
  }
  for (const line of body.lines || []) {
    const b = line.box;
    if (b) g.strokeRect(b.x_min * scale, b.y_min * scale, (b.x_max - b.x_min) * scale, (b.y_max - b.y_min) * scale);
    items.push(line.text);
  }
  const list = $("vision-list");
  list.replaceChildren(...items.map((t) => el("li", { textContent: t })));
  for (const label of body.labels || []) {
    const bar = el("span", { className: "bar" });
    bar.style.width = `${Math.round(label.score * 120)}px`;
    list.append(el("li", { textContent: `${label.name} ${(label.score * 100).toFixed(1)}%` }, bar));
  }
  if (!list.children.length) list.append(el("li", { textContent: `no ${task === "classify" ? "labels" : task} found` }));
  $("vision-status").textContent = `node ${body.served_by?.node_id || "?"}, ${Math.round(body.served_by?.compute_ms || 0)} ms`;
}

// --- voice ----------------------------------------------------------------------------------
$("voice-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("voice-status").textContent = "synthesising…";
  const response = await fetch("/v1/audio/speech", {
    method: "POST", headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify({ model: "tts-1", voice: $("voice-model").value || "default", input: $("voice-input").value,
                           response_format: "wav" }),
  });
  if (!response.ok) { $("voice-status").textContent = await failure(response); return; }
  const audio = $("voice-audio");
  audio.src = URL.createObjectURL(await response.blob());
  audio.hidden = false;
  audio.play().catch(() => {});
  $("voice-status").textContent = `node ${response.headers.get("X-Lanai-Node")}, voice ${response.headers.get("X-Lanai-Voice")}`;
});
