// The page: controls built from the API's own OpenAPI schema (the CLI's options, their choices and defaults),
// the state in the URL's query string, and a debounced update (no reload) that asks /api/<mode> and
// /api/charts/<mode> for the numbers and the chart data.
(() => {
"use strict";

const { drawChart, GIB } = window.llmplanCharts;
const DEBOUNCE_MS = 250;
const FIELDS = {
  // the options shown for each mode, grouped (every other option keeps the CLI's default)
  train: {
    job: ["method", "lora_rank", "lora_targets", "precision", "optimizer", "micro_batch", "seq_len", "grad_accum",
      "recompute", "attention"],
    layout: ["gpu", "gpus", "gpus_per_node", "dp", "tp", "pp", "cp", "zero", "fsdp", "offload", "stack"],
    run: ["tokens", "price"],
  },
  serve: {
    job: ["quant", "kv_dtype", "context", "batch", "engine", "attention", "gpu_memory_utilization"],
    layout: ["gpu", "tp", "pp"],
  },
  plan: {
    job: ["method", "precision", "seq_len", "lora_rank"],
    cluster: ["gpu", "gpus", "gpus_per_node", "tp", "pp", "cp", "no_offload"],
    run: ["tokens", "price", "top"],
  },
};
const SCHEMA = { train: "TrainRequest", serve: "ServeRequest", plan: "PlanRequest" };
let openapi = null, gpuIds = [], uploaded = null, timer = null, seq = 0;

const $ = (sel) => document.querySelector(sel);
const gib = (b) => (b / GIB).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

function resolve(prop) {
  // {type, enum, nullable, default} of one property of the OpenAPI schema
  const out = { nullable: false, default: prop.default };
  let p = prop;
  if (prop.anyOf) {
    out.nullable = prop.anyOf.some((x) => x.type === "null");
    p = prop.anyOf.find((x) => x.type !== "null");
  }
  if (p.$ref) p = openapi.components.schemas[p.$ref.split("/").pop()];
  out.type = p.type;
  out.enum = p.enum;
  return out;
}

function control(name, prop) {
  const r = resolve(prop);
  const label = document.createElement("label");
  label.textContent = name.replace(/_/g, " ") + " ";
  let input;
  if (r.enum || name === "gpu") {
    input = document.createElement("select");
    const choices = name === "gpu" ? gpuIds : r.enum;
    if (r.nullable) input.append(new Option("—", ""));
    for (const v of choices) input.append(new Option(v, v));
  } else if (r.type === "boolean") {
    input = document.createElement("input");
    input.type = "checkbox";
  } else {
    input = document.createElement("input");
    input.type = r.type === "integer" || r.type === "number" ? "number" : "text";
    if (r.type === "number") input.step = "any";
    if (r.nullable) input.placeholder = "default";
  }
  input.id = `f-${name}`;
  input.dataset.field = name;
  input.dataset.kind = r.type || "string";
  input.dataset.default = r.default === undefined || r.default === null ? "" : String(r.default);
  setValue(input, input.dataset.default);
  label.append(input);
  return label;
}

function setValue(input, v) {
  if (input.type === "checkbox") input.checked = v === "true" || v === true;
  else input.value = v;
}

function valueOf(input) {
  if (input.type === "checkbox") return input.checked ? "true" : "false";
  return input.value.trim();
}

function buildControls(mode) {
  const box = $("#fields");
  box.textContent = "";
  const props = openapi.components.schemas[SCHEMA[mode]].properties;
  for (const [group, names] of Object.entries(FIELDS[mode])) {
    const fs = document.createElement("fieldset");
    fs.innerHTML = `<legend>${group}</legend>`;
    for (const n of names) if (props[n]) fs.append(control(n, props[n]));
    box.append(fs);
  }
  $("#emit-box").hidden = mode !== "train";
}

function inputs() {
  return [...document.querySelectorAll("#fields [data-field]")];
}

function body() {
  const out = uploaded ? { config: uploaded.text } : { model: $("#model").value.trim() };
  for (const input of inputs()) {
    const v = valueOf(input);
    if (v === input.dataset.default || v === "") continue;
    const k = input.dataset.kind;
    out[input.dataset.field] = k === "integer" ? Number(v) : k === "number" ? Number(v) : k === "boolean" ? v === "true" : v;
  }
  return out;
}

function saveState() {
  const q = new URLSearchParams();
  q.set("mode", $("#mode").value);
  if (!uploaded) q.set("model", $("#model").value.trim());
  for (const input of inputs()) {
    const v = valueOf(input);
    if (v !== input.dataset.default && v !== "") q.set(input.dataset.field, v);
  }
  history.replaceState(null, "", `${location.pathname}?${q}`);
}

function restoreState() {
  const q = new URLSearchParams(location.search);
  $("#mode").value = SCHEMA[q.get("mode")] ? q.get("mode") : "train";
  $("#model").value = q.get("model") || "llama-3.1-8b";
  buildControls($("#mode").value);
  for (const input of inputs()) if (q.has(input.dataset.field)) setValue(input, q.get(input.dataset.field));
}

async function post(path, payload) {
  const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify(payload) });
  const doc = await r.json();
  if (!r.ok) throw Object.assign(new Error(doc.message || r.statusText), { doc, status: r.status });
  return doc;
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(update, DEBOUNCE_MS);
}

async function update() {
  saveState();
  const mode = $("#mode").value, payload = body(), mine = ++seq;
  $("#status").textContent = mode === "plan" ? "searching layouts…" : "estimating…";
  try {
    const [out, charts] = await Promise.all([post(`/api/${mode}`, payload), post(`/api/charts/${mode}`, payload)]);
    if (mine !== seq) return; // a newer state was asked for meanwhile
    $("#error").hidden = true;
    render(mode, out, charts);
    const st = $("#status");
    st.dataset.updates = String(Number(st.dataset.updates) + 1);
    st.textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    if (mine !== seq) return;
    $("#error").hidden = false;
    $("#error").textContent = `${e.status || ""} ${e.message}`;
    $("#status").textContent = "error";
  }
}

function render(mode, out, charts) {
  const sum = $("#summary");
  if (mode === "plan") {
    const best = out.plan.layouts[0];
    sum.innerHTML = `<b>${out.model}</b> on ${out.plan.gpus} × ${out.plan.accelerator}: searched
      ${out.plan.searched.toLocaleString()} layouts; best: <code>${best.command}</code>
      <br>step <span id="step-s">${best.step_s.toFixed(3)}</span> s, device
      <span id="device-gib">${gib(best.device_bytes)}</span> GiB per GPU`;
  } else {
    const verdict = out.fits ? '<span class="fits">FITS</span>' : '<span class="oom">DOES NOT FIT</span>';
    sum.innerHTML = `<b>${out.model}</b> on ${out.accelerator}: ${verdict} —
      <span id="device-gib">${gib(out.device_bytes)}</span> GiB per GPU (device counter) of
      <span id="capacity-gib">${gib(out.capacity_bytes)}</span> GiB; headroom ${gib(out.headroom_bytes)} GiB`;
    if (mode === "train" && out.time) {
      sum.innerHTML += `<br>step ${Number(out.time.step_s).toFixed(4)} s, ${Math.round(out.time.tokens_per_s).toLocaleString()} tokens/s`;
    }
    if (mode === "train" && out.suggestions.length) {
      sum.innerHTML += `<br>what fits instead: <code>${out.suggestions[0].command}</code>`;
    }
  }
  const box = $("#charts");
  box.textContent = "";
  for (const c of charts.charts) box.append(drawChart(c));
  box.dataset.version = String(seq);
  explain(mode, out);
}

function rows(out, mode) {
  if (mode === "plan") {
    return out.plan.layouts.map((l, i) => ({ name: `#${i + 1} ${l.command}`, value: l.step_s, unit: "s",
      formula: "step time of the layout; why it ranks here:", source: "plan.training", parts: l.why }));
  }
  if (mode === "serve") return [...out.memory.terms, ...out.speed];
  const phases = out.phases.map((p) => ({ name: `phase.${p.phase}`, value: p.total, unit: "bytes",
    formula: "", source: "estimate/training.py (the peak is the maximum over phases)" }));
  return [...out.counts, ...out.memory.terms, ...phases, ...out.counters];
}

function shown(t) {
  if (t.unit === "bytes") return `${Math.round(t.value).toLocaleString("en-US")} B (${gib(t.value)} GiB)`;
  if (t.unit === "s") return `${(t.value * 1e3).toLocaleString("en-US", { maximumFractionDigits: 3 })} ms`;
  return `${Number(t.value).toLocaleString("en-US")} ${t.unit}`;
}

function explain(mode, out) {
  const tb = $("#explain tbody");
  tb.textContent = "";
  const add = (t, depth) => {
    const tr = tb.insertRow();
    tr.insertCell().textContent = `${"  ".repeat(depth)}${t.name}`;
    const v = tr.insertCell();
    v.className = "num";
    v.textContent = shown(t);
    tr.insertCell().textContent = t.formula || "";
    tr.insertCell().textContent = t.source || "";
    for (const p of t.parts || []) add(p, depth + 1);
  };
  for (const t of rows(out, mode)) add(t, 0);
}

async function emit(target) {
  try {
    const doc = await post("/api/emit", { ...body(), target });
    $("#emit-text").textContent = doc.text;
    $("#emit-launch").textContent = `launch: ${doc.launch}`;
    const a = $("#emit-download");
    a.href = URL.createObjectURL(new Blob([doc.text], { type: "application/json" }));
    a.download = doc.filename;
    a.hidden = false;
    a.textContent = `download ${doc.filename}`;
    $("#emit-copy").disabled = false;
  } catch (e) {
    $("#emit-text").textContent = e.message;
  }
}

async function start() {
  const [spec, models, gpus] = await Promise.all(["/openapi.json", "/api/models", "/api/gpus"].map(
    (u) => fetch(u).then((r) => r.json())));
  openapi = spec;
  gpuIds = gpus.gpus.map((g) => g.id);
  const dl = $("#model-ids");
  for (const m of models.models) dl.append(new Option(`${m.id} (${(m.params / 1e9).toFixed(2)}B)`, m.id));
  restoreState();
  $("#mode").addEventListener("change", () => { buildControls($("#mode").value); schedule(); });
  $("#model").addEventListener("change", () => { uploaded = null; $("#config-name").textContent = ""; schedule(); });
  $("#fields").addEventListener("input", schedule);
  $("#fields").addEventListener("change", schedule);
  $("#config-file").addEventListener("change", async (ev) => {
    const f = ev.target.files[0];
    if (!f) return;
    uploaded = { name: f.name, text: await f.text() };
    $("#config-name").textContent = `using ${f.name} (parsed as data on the server)`;
    schedule();
  });
  for (const b of document.querySelectorAll(".emit-buttons button")) b.addEventListener("click", () => emit(b.dataset.target));
  $("#emit-copy").addEventListener("click", () => navigator.clipboard.writeText($("#emit-text").textContent));
  update();
}

start();
})();
