// spadekit painting app: paint label ids on layers, send their composite as a colour PNG, show the image.
// Plain JavaScript, no build step, no network access beyond this server.
"use strict";

(() => {
  const $ = (selector) => document.querySelector(selector);
  const DEBOUNCE_MS = 300;
  const MAX_HISTORY = 60;
  const EMPTY = -1;            // a transparent layer pixel: the layer below (then the background) shows

  const app = {
    info: null, canvasInfo: null, W: 0, H: 0, sizeName: "square",
    layers: [],                // bottom first: {key, name, visible, ids: Int32Array(W*H), EMPTY where transparent}
    active: 0,                 // index of the layer being painted
    background: null,          // the label where every visible layer is empty
    ids: null,                 // Int32Array(W*H): the composite label map (what is shown and sent)
    lut: new Uint8Array(65536 * 3), // id -> colour
    idOfColour: new Map(),     // 0xRRGGBB -> id
    labels: [],
    tool: "brush", brush: 12, current: null,
    undo: [], redo: [],
    seed: 0, styleId: null, styles: [],
    timer: null, controller: null, requestSeq: 0, lastMs: 800, busySince: 0,
    generation: 0, resultUrl: null, resultBlob: null, resultHash: null, resultSize: null, upscaled: 0,
    lastRequestBytes: 0, layerCounter: 0, projectsOpened: 0,
  };
  window.spadekitApp = app; // for tests and the curious

  const canvas = $("#label-canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  let imageData = null;

  // ---- helpers ---------------------------------------------------------------------------------
  const hexToRgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const labelById = (id) => app.labels.find((l) => l.id === id);
  const nameOf = (id) => (id === EMPTY ? "empty" : (labelById(id) || { name: `id ${id}` }).name);
  const activeLayer = () => app.layers[app.active];

  function showError(message) {
    const box = $("#error");
    if (!message) { box.hidden = true; box.textContent = ""; return; }
    box.textContent = message;
    box.hidden = false;
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      if (typeof body.detail === "string") return body.detail;
      return JSON.stringify(body.detail || body);
    } catch (_) {
      return `${response.status} ${response.statusText}`;
    }
  }

  function fnv1a(bytes) {
    let h = 0x811c9dc5;
    for (let i = 0; i < bytes.length; i++) { h ^= bytes[i]; h = Math.imul(h, 0x01000193) >>> 0; }
    return h.toString(16).padStart(8, "0");
  }

  function download(blob, name) {
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url; a.download = name;
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  // An id buffer of sw x sh refitted to dw x dh: scaled to the new height, centred, and where the new
  // aspect is wider each row's edge pixel continues outward (sky, ground and horizon carry on); where it
  // is narrower the sides are cropped. Nearest neighbour, so ids stay exact.
  function fitIds(src, sw, sh, dw, dh) {
    const out = new Int32Array(dw * dh);
    const s = dh / sh, offset = Math.floor((dw - Math.round(sw * s)) / 2);
    const cols = new Int32Array(dw);
    for (let x = 0; x < dw; x++) cols[x] = Math.max(0, Math.min(sw - 1, Math.floor((x - offset) / s)));
    for (let y = 0; y < dh; y++) {
      const row = Math.min(sh - 1, Math.floor(y / s)) * sw, o = y * dw;
      for (let x = 0; x < dw; x++) out[o + x] = src[row + cols[x]];
    }
    return out;
  }

  // ---- layers ----------------------------------------------------------------------------------
  // Undo snapshots share layer buffers with the live state; a buffer is copied before its first
  // change after a snapshot (copy on write), so history costs memory only for what changed.
  const frozen = new WeakSet();
  function own(layer) {
    if (frozen.has(layer.ids)) layer.ids = layer.ids.slice();
    return layer.ids;
  }
  function newLayer(name, fill = EMPTY) {
    app.layerCounter += 1;
    return { key: app.layerCounter, name: name || `Layer ${app.layerCounter}`, visible: true, ids: new Int32Array(app.W * app.H).fill(fill) };
  }

  function compose() {
    const out = app.ids && app.ids.length === app.W * app.H ? app.ids : new Int32Array(app.W * app.H);
    out.fill(app.background);
    for (const layer of app.layers) {
      if (!layer.visible) continue;
      const ids = layer.ids;
      for (let i = 0; i < ids.length; i++) if (ids[i] !== EMPTY) out[i] = ids[i];
    }
    app.ids = out;
    return out;
  }

  function renderLayers() {
    const list = $("#layers");
    list.innerHTML = "";
    for (let index = app.layers.length - 1; index >= 0; index--) {
      const layer = app.layers[index];
      const item = document.createElement("li");
      item.className = "layer" + (index === app.active ? " active" : "") + (layer.visible ? "" : " hidden-layer");
      item.dataset.index = String(index);
      item.setAttribute("aria-selected", String(index === app.active));
      const eye = document.createElement("button");
      eye.type = "button";
      eye.className = "eye";
      eye.title = layer.visible ? "Hide this layer" : "Show this layer";
      eye.setAttribute("aria-pressed", String(layer.visible));
      eye.textContent = layer.visible ? "●" : "○";
      eye.addEventListener("click", (event) => { event.stopPropagation(); setVisible(index, !layer.visible); });
      const name = document.createElement("span");
      name.className = "lname";
      name.textContent = layer.name;
      name.title = "double-click to rename";
      name.addEventListener("dblclick", () => renameLayer(index));
      item.append(eye, name);
      item.addEventListener("click", () => selectLayer(index));
      list.appendChild(item);
    }
    const n = app.layers.length, max = app.canvasInfo ? app.canvasInfo.limits.max_layers : 8;
    $("#layer-add").disabled = n >= max;
    $("#layer-delete").disabled = n <= 1;
    $("#layer-merge").disabled = app.active === 0;
    $("#layer-down").disabled = app.active === 0;
    $("#layer-up").disabled = app.active === n - 1;
    $("#layer-hint").textContent = activeLayer() && !activeLayer().visible ? "painting on a hidden layer" : `${n} of ${max}`;
  }

  function selectLayer(index) { app.active = index; renderLayers(); }

  function setVisible(index, visible) {
    pushUndo();
    app.layers[index].visible = visible;
    changed();
  }

  function renameLayer(index) {
    const name = window.prompt("Layer name", app.layers[index].name);
    if (name === null || !name.trim()) return;
    pushUndo();
    app.layers[index].name = name.trim().slice(0, 40);
    renderLayers();
  }

  function addLayer() {
    if (app.layers.length >= app.canvasInfo.limits.max_layers) return;
    pushUndo();
    app.layers.splice(app.active + 1, 0, newLayer());
    app.active += 1;
    renderLayers();
  }

  function deleteLayer() {
    if (app.layers.length <= 1) return;
    pushUndo();
    app.layers.splice(app.active, 1);
    app.active = Math.max(0, app.active - 1);
    changed();
  }

  function moveLayer(delta) {
    const to = app.active + delta;
    if (to < 0 || to >= app.layers.length) return;
    pushUndo();
    [app.layers[app.active], app.layers[to]] = [app.layers[to], app.layers[app.active]];
    app.active = to;
    changed();
  }

  function mergeDown() {
    if (app.active === 0) return;
    pushUndo();
    const upper = app.layers[app.active], lower = app.layers[app.active - 1];
    const ids = own(lower), top = upper.ids;
    for (let i = 0; i < ids.length; i++) if (top[i] !== EMPTY) ids[i] = top[i];
    app.layers.splice(app.active, 1);
    app.active -= 1;
    changed();
  }

  // Layers, composite and the image after an edit.
  function changed(delay = DEBOUNCE_MS) { renderLayers(); render(); schedule(delay); }

  // ---- drawing ---------------------------------------------------------------------------------
  let renderQueued = false;
  function render() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => { renderQueued = false; renderNow(); });
  }
  function renderNow() {
    const ids = compose(), px = imageData.data, lut = app.lut;
    for (let i = 0, j = 0; i < ids.length; i++, j += 4) {
      const k = ids[i] * 3;
      px[j] = lut[k]; px[j + 1] = lut[k + 1]; px[j + 2] = lut[k + 2]; px[j + 3] = 255;
    }
    ctx.putImageData(imageData, 0, 0);
  }

  function stamp(ids, cx, cy, id) {
    const r = (app.brush - 1) / 2, W = app.W, H = app.H;
    const x0 = Math.max(0, Math.floor(cx - r)), x1 = Math.min(W - 1, Math.ceil(cx + r));
    const y0 = Math.max(0, Math.floor(cy - r)), y1 = Math.min(H - 1, Math.ceil(cy + r));
    const rr = (r + 0.5) * (r + 0.5);
    for (let y = y0; y <= y1; y++) {
      const dy = y - cy;
      for (let x = x0; x <= x1; x++) {
        const dx = x - cx;
        if (dx * dx + dy * dy <= rr) ids[y * W + x] = id;
      }
    }
  }

  function line(ids, a, b, id) {
    const dist = Math.hypot(b.x - a.x, b.y - a.y);
    const steps = Math.max(1, Math.ceil(dist / Math.max(0.5, app.brush / 4)));
    for (let s = 1; s <= steps; s++) {
      const t = s / steps;
      stamp(ids, Math.round(a.x + (b.x - a.x) * t), Math.round(a.y + (b.y - a.y) * t), id);
    }
  }

  // Fills the region of the composite (what is shown) under (x, y) on the active layer.
  function floodFill(x, y, id) {
    const W = app.W, H = app.H, shown = compose().slice(), target = shown[y * W + x];
    const ids = activeLayer().ids;
    if (target === id && ids[y * W + x] === id) return false;
    const layer = own(activeLayer());
    const stack = [y * W + x];
    while (stack.length) {
      const p = stack.pop();
      if (shown[p] !== target) continue;
      // walk left and right along the row, filling, and push the rows above and below
      let left = p, right = p;
      const rowStart = p - (p % W), rowEnd = rowStart + W - 1;
      while (left > rowStart && shown[left - 1] === target) left--;
      while (right < rowEnd && shown[right + 1] === target) right++;
      for (let q = left; q <= right; q++) {
        shown[q] = -2; layer[q] = id;
        if (q >= W && shown[q - W] === target) stack.push(q - W);
        if (q < W * (H - 1) && shown[q + W] === target) stack.push(q + W);
      }
    }
    return true;
  }

  // ---- history ---------------------------------------------------------------------------------
  function snapshot() {
    for (const layer of app.layers) frozen.add(layer.ids);
    return { W: app.W, H: app.H, sizeName: app.sizeName, active: app.active, background: app.background,
             layers: app.layers.map((l) => ({ ...l })) };
  }
  function restore(state) {
    const resized = state.W !== app.W || state.H !== app.H;
    app.layers = state.layers.map((l) => ({ ...l }));
    app.active = state.active;
    app.background = state.background;
    $("#background-label").value = app.background;
    if (resized) applySize(state.sizeName, state.W, state.H);
  }
  function pushUndo() {
    app.undo.push(snapshot());
    if (app.undo.length > MAX_HISTORY) app.undo.shift();
    app.redo = [];
    updateHistoryButtons();
  }
  function sameAsLastUndo() {
    const last = app.undo[app.undo.length - 1];
    if (!last || last.layers.length !== app.layers.length) return false;
    return last.layers.every((l, i) => l.ids === app.layers[i].ids || l.ids.every((v, k) => v === app.layers[i].ids[k]));
  }
  function step(from, to) {
    if (!from.length) return;
    to.push(snapshot());
    restore(from.pop());
    updateHistoryButtons();
    changed();
  }
  const undo = () => step(app.undo, app.redo);
  const redo = () => step(app.redo, app.undo);
  function updateHistoryButtons() {
    $("#undo").disabled = !app.undo.length;
    $("#redo").disabled = !app.redo.length;
  }

  // ---- tools -----------------------------------------------------------------------------------
  function setTool(tool) {
    app.tool = tool;
    document.querySelectorAll(".tool").forEach((b) => {
      b.classList.toggle("active", b.dataset.tool === tool);
      b.setAttribute("aria-pressed", String(b.dataset.tool === tool));
    });
    $("#brush-cursor").classList.toggle("fill", tool === "fill");
  }
  function setBrush(size) {
    app.brush = Math.max(1, Math.min(96, Math.round(size)));
    $("#brush-size").value = app.brush;
    $("#brush-size-value").textContent = app.brush;
    document.querySelectorAll(".sizes button").forEach((b) => b.classList.toggle("active", Number(b.dataset.size) === app.brush));
  }
  function setLabel(id) {
    app.current = id;
    document.querySelectorAll(".swatch").forEach((b) => {
      const on = Number(b.dataset.id) === id;
      b.classList.toggle("active", on);
      b.setAttribute("aria-selected", String(on));
    });
    $("#current-label").textContent = nameOf(id);
  }

  function toBuffer(event) {
    const rect = canvas.getBoundingClientRect();
    const x = Math.floor(((event.clientX - rect.left) / rect.width) * app.W);
    const y = Math.floor(((event.clientY - rect.top) / rect.height) * app.H);
    return { x: Math.max(0, Math.min(app.W - 1, x)), y: Math.max(0, Math.min(app.H - 1, y)), rect };
  }

  let stroke = null;
  function paintId() { return app.tool === "eraser" ? EMPTY : app.current; }

  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || !app.layers.length) return;
    event.preventDefault();
    const p = toBuffer(event);
    pushUndo();
    if (app.tool === "fill") {
      if (floodFill(p.x, p.y, app.current)) { render(); schedule(); } else { app.undo.pop(); updateHistoryButtons(); }
      return;
    }
    canvas.setPointerCapture(event.pointerId);
    stroke = { last: p, id: paintId(), ids: own(activeLayer()) };
    stamp(stroke.ids, p.x, p.y, stroke.id);
    render();
    markStale();
  });
  canvas.addEventListener("pointermove", (event) => {
    const p = toBuffer(event);
    moveCursor(event, p);
    if (!stroke) return;
    const points = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of points.length ? points : [event]) {
      const q = toBuffer(e);
      line(stroke.ids, stroke.last, q, stroke.id);
      stroke.last = q;
    }
    render();
  });
  const endStroke = () => {
    if (!stroke) return;
    stroke = null;
    if (sameAsLastUndo()) { app.undo.pop(); updateHistoryButtons(); }
    schedule();
  };
  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);
  canvas.addEventListener("pointerleave", () => { $("#brush-cursor").hidden = true; $("#hover-label").innerHTML = "&nbsp;"; });

  function moveCursor(event, p) {
    const cursor = $("#brush-cursor");
    const frame = $("#label-frame").getBoundingClientRect();
    const scale = p.rect.width / app.W;
    const d = app.tool === "fill" ? 10 : Math.max(4, app.brush * scale);
    cursor.style.width = cursor.style.height = `${d}px`;
    cursor.style.left = `${event.clientX - frame.left}px`;
    cursor.style.top = `${event.clientY - frame.top}px`;
    cursor.hidden = false;
    const id = app.ids[p.y * app.W + p.x];
    $("#hover-label").textContent = `${nameOf(id)} (id ${id}) at ${p.x}, ${p.y} · painting on ${activeLayer().name}`;
  }

  // ---- canvas size -----------------------------------------------------------------------------
  function applySize(name, W, H) {
    app.sizeName = name; app.W = W; app.H = H;
    canvas.width = W; canvas.height = H;
    imageData = ctx.createImageData(W, H);
    app.ids = null;
    const ar = W / H;
    document.querySelectorAll(".frame").forEach((f) => {
      f.style.setProperty("--aspect", `${W} / ${H}`);
      f.style.setProperty("--ar", String(ar));
    });
    $("#panels").classList.toggle("stacked", ar >= 3);
    document.querySelectorAll("#canvas-sizes button").forEach((b) => {
      const on = b.dataset.canvasSize === name;
      b.classList.toggle("active", on);
      b.setAttribute("aria-pressed", String(on));
    });
    $("#result-size").textContent = `${W}×${H}`;
    const img = $("#result");
    img.removeAttribute("src");
    app.resultBlob = null; app.upscaled = 0;
  }

  function setCanvasSize(name) {
    const choice = app.canvasInfo.sizes.find((s) => s.name === name);
    if (!choice || (choice.width === app.W && choice.height === app.H)) return;
    pushUndo();
    const { W, H } = app;
    for (const layer of app.layers) layer.ids = fitIds(layer.ids, W, H, choice.width, choice.height);
    applySize(name, choice.width, choice.height);
    changed(0);
  }

  // ---- generation ------------------------------------------------------------------------------
  function markStale() { $("#result-frame").classList.add("stale"); }

  function schedule(delay = DEBOUNCE_MS) {
    markStale();
    clearTimeout(app.timer);
    app.timer = setTimeout(generate, delay);
  }

  // The shown image is current only when no newer request is scheduled (debounce) or running.
  const upToDate = () => app.timer === null;

  function labelPng() {
    renderNow(); // the canvas holds exactly the palette colours of the composite (never antialiased strokes)
    return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  }

  let progressTimer = null;
  function setBusy(on, text = "generating…") {
    $("#busy").hidden = !on;
    $("#progress").hidden = !on;
    clearInterval(progressTimer);
    if (on) {
      app.busySince = performance.now();
      const tick = () => {
        const elapsed = performance.now() - app.busySince;
        $("#busy-text").textContent = `${text} ${(elapsed / 1000).toFixed(1)} s`;
        $("#progress-bar").style.width = `${Math.min(95, (100 * elapsed) / Math.max(100, app.lastMs))}%`;
      };
      tick();
      progressTimer = setInterval(tick, 100);
    }
  }

  async function showResult(buffer, label) {
    const blob = new Blob([buffer], { type: "image/png" });
    const url = URL.createObjectURL(blob);
    const img = $("#result");
    await new Promise((resolve) => { img.onload = resolve; img.onerror = resolve; img.src = url; });
    if (app.resultUrl) URL.revokeObjectURL(app.resultUrl);
    app.resultUrl = url;
    app.resultBlob = blob;
    app.resultHash = fnv1a(buffer);
    app.resultSize = [img.naturalWidth, img.naturalHeight];
    app.generation += 1;
    img.dataset.generation = String(app.generation);
    img.dataset.hash = app.resultHash;
    img.dataset.upscaled = String(app.upscaled);
    $("#result-size").textContent = `${img.naturalWidth}×${img.naturalHeight}` + (label ? ` · ${label}` : "");
    updateUpscaleButton();
  }

  async function generate() {
    clearTimeout(app.timer);
    app.timer = null;
    if (!app.layers.length) return;
    if (app.controller) app.controller.abort(); // never let a stale request hold the queue
    const controller = new AbortController();
    app.controller = controller;
    const seq = ++app.requestSeq;
    setBusy(true);
    const started = performance.now();
    try {
      const png = await labelPng();
      if (seq !== app.requestSeq) return;
      app.lastRequestBytes = png.size;
      const form = new FormData();
      form.append("label_map", png, "label_map.png");
      form.append("size", app.sizeName);
      form.append("seed", String(app.seed));
      if (app.styleId) form.append("style", app.styleId);
      const response = await fetch("/api/render", { method: "POST", body: form, signal: controller.signal });
      if (response.status === 503) {
        const wait = Number(response.headers.get("Retry-After") || "1");
        $("#status").textContent = `server busy; retrying in ${wait} s`;
        if (seq === app.requestSeq) schedule(wait * 1000);
        return;
      }
      if (!response.ok) {
        showError(`could not generate: ${await errorText(response)}`);
        return;
      }
      const buffer = new Uint8Array(await response.arrayBuffer());
      if (seq !== app.requestSeq) return; // a newer request superseded this one
      app.upscaled = 0;
      await showResult(buffer, "");
      app.lastMs = performance.now() - started;
      if (upToDate()) $("#result-frame").classList.remove("stale");
      const server = response.headers.get("X-Inference-Ms");
      const note = response.headers.get("X-Spadekit-Note");
      $("#status").textContent = `seed ${app.seed} · ${Math.round(app.lastMs)} ms` + (server ? ` (model ${Math.round(Number(server))} ms)` : "")
        + (note ? ` · ${note}` : "");
      showError(null);
    } catch (error) {
      if (error.name !== "AbortError") showError(`could not reach the server: ${error.message}`);
    } finally {
      if (seq === app.requestSeq) { setBusy(false); app.controller = null; }
    }
  }

  async function upscale() {
    if (!app.resultBlob || app.upscaled || !app.canvasInfo.upscale.available) return;
    const scale = Number($("#upscale-scale").value);
    const seq = app.requestSeq, generation = app.generation;
    setBusy(true, `upscaling ${scale}×…`);
    try {
      const form = new FormData();
      form.append("image", app.resultBlob, "result.png");
      form.append("scale", String(scale));
      const response = await fetch("/api/upscale", { method: "POST", body: form });
      if (!response.ok) { showError(`could not upscale: ${await errorText(response)}`); return; }
      const buffer = new Uint8Array(await response.arrayBuffer());
      if (seq !== app.requestSeq || generation !== app.generation) return; // the painting changed meanwhile
      app.upscaled = scale;
      await showResult(buffer, `upscaled ${scale}×`);
      showError(null);
    } catch (error) {
      showError(`could not reach the server: ${error.message}`);
    } finally {
      if (seq === app.requestSeq && !app.controller) setBusy(false);
      updateUpscaleButton();
    }
  }
  function updateUpscaleButton() {
    const info = app.canvasInfo && app.canvasInfo.upscale;
    $("#upscale").disabled = !info || !info.available || !!app.upscaled;
  }

  // ---- label maps in ------------------------------------------------------------------------------
  async function idsFromBlob(blob, alpha) {
    const bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    const off = document.createElement("canvas");
    off.width = bitmap.width; off.height = bitmap.height;
    const octx = off.getContext("2d", { willReadFrequently: true });
    octx.drawImage(bitmap, 0, 0);
    const px = octx.getImageData(0, 0, off.width, off.height).data;
    const ids = new Int32Array(off.width * off.height);
    let unknown = 0;
    for (let i = 0, j = 0; i < ids.length; i++, j += 4) {
      if (alpha && px[j + 3] === 0) { ids[i] = EMPTY; continue; }
      const id = app.idOfColour.get((px[j] << 16) | (px[j + 1] << 8) | px[j + 2]);
      if (id === undefined) { unknown++; ids[i] = app.background; } else ids[i] = id;
    }
    return { ids, width: off.width, height: off.height, unknown };
  }

  // A colour label map into the active layer, refitted to the canvas.
  async function loadLabelBlob(blob) {
    const { ids, width, height, unknown } = await idsFromBlob(blob, false);
    pushUndo();
    activeLayer().ids = fitIds(ids, width, height, app.W, app.H);
    if (unknown) showError(`${unknown} pixel(s) had colours outside the palette and became ${nameOf(app.background)}`);
    renderLayers(); render();
    await generate();
  }

  async function loadScene(name) {
    const response = await fetch(`/api/scenes/${encodeURIComponent(name)}`);
    if (!response.ok) { showError(await errorText(response)); return; }
    await loadLabelBlob(await response.blob());
  }

  async function uploadLabelMap(file) {
    const form = new FormData();
    form.append("label_map", file, file.name);
    const response = await fetch("/api/label-map", { method: "POST", body: form });
    if (!response.ok) { showError(`${file.name}: ${await errorText(response)}`); return; }
    showError(null);
    await loadLabelBlob(await response.blob());
  }

  function defaultScene() {
    const names = app.labels.map((l) => l.name);
    const pick = (n, k) => (names.includes(n) ? app.labels[names.indexOf(n)].id : app.labels[Math.min(k, app.labels.length - 1)].id);
    const ids = new Int32Array(app.W * app.H).fill(pick("sky", 0));
    const horizon = Math.round(app.H * 0.55);
    const ground = pick("grass", 1), hills = pick("mountain", 2);
    for (let y = 0; y < app.H; y++) {
      for (let x = 0; x < app.W; x++) {
        const ridge = app.H * (0.42 + 0.08 * Math.sin((x / app.W) * Math.PI * 2.2));
        if (y >= horizon) ids[y * app.W + x] = ground;
        else if (y >= ridge) ids[y * app.W + x] = hills;
      }
    }
    return ids;
  }

  // ---- projects and exports ----------------------------------------------------------------------
  function layerPng(layer) {
    const off = document.createElement("canvas");
    off.width = app.W; off.height = app.H;
    const octx = off.getContext("2d");
    const data = octx.createImageData(app.W, app.H), px = data.data, lut = app.lut, ids = layer.ids;
    for (let i = 0, j = 0; i < ids.length; i++, j += 4) {
      if (ids[i] === EMPTY) continue; // stays 0,0,0,0: transparent
      const k = ids[i] * 3;
      px[j] = lut[k]; px[j + 1] = lut[k + 1]; px[j + 2] = lut[k + 2]; px[j + 3] = 255;
    }
    octx.putImageData(data, 0, 0);
    return new Promise((resolve) => off.toBlob(resolve, "image/png"));
  }

  async function saveProject() {
    const settings = { width: app.W, height: app.H, size: app.sizeName, seed: app.seed, background: app.background,
                       style: app.styleId, layers: app.layers.map((l) => ({ name: l.name, visible: l.visible })) };
    const form = new FormData();
    form.append("project", JSON.stringify(settings));
    for (const layer of app.layers) form.append("layer", await layerPng(layer), `${layer.key}.png`);
    const response = await fetch("/api/projects/save", { method: "POST", body: form });
    if (!response.ok) { showError(`could not save the project: ${await errorText(response)}`); return; }
    download(await response.blob(), `painting_${app.sizeName}${app.canvasInfo.project.suffix}`);
    $("#status").textContent = `saved ${app.layers.length} layer(s) at ${app.W}×${app.H}`;
    showError(null);
  }

  async function openProject(file) {
    const form = new FormData();
    form.append("project", file, file.name);
    const response = await fetch("/api/projects/open", { method: "POST", body: form });
    if (!response.ok) { showError(`${file.name}: ${await errorText(response)}`); return; }
    const project = await response.json();
    const layers = [];
    for (const layer of project.layers) {
      const bytes = Uint8Array.from(atob(layer.png), (c) => c.charCodeAt(0));
      const { ids } = await idsFromBlob(new Blob([bytes], { type: "image/png" }), true);
      app.layerCounter += 1;
      layers.push({ key: app.layerCounter, name: layer.name, visible: layer.visible, ids });
    }
    pushUndo();
    applySize(project.size, project.width, project.height);
    app.layers = layers;
    app.active = layers.length - 1;
    app.background = project.background;
    $("#background-label").value = app.background;
    setSeed(project.seed);
    await loadStyles();
    selectStyle(project.style, false);
    showError(project.notes && project.notes.length ? project.notes.join("; ") : null);
    renderLayers(); render();
    await generate();
    app.projectsOpened += 1;
    $("#status").textContent = `opened ${file.name}: ${layers.length} layer(s) at ${project.width}×${project.height}`;
  }

  function newProject() {
    pushUndo();
    app.layers = [newLayer("Background", EMPTY)];
    app.layers[0].ids.set(defaultScene());
    app.active = 0;
    changed(0);
  }

  async function exportLabelMap(kind) {
    const form = new FormData();
    form.append("label_map", await labelPng(), "label_map.png");
    form.append("format", kind);
    const response = await fetch("/api/export/label-map", { method: "POST", body: form });
    if (!response.ok) { showError(`could not export the label map: ${await errorText(response)}`); return; }
    download(await response.blob(), `label_map_${app.W}x${app.H}${kind === "ids" ? "_ids" : ""}.png`);
  }

  function exportResult() {
    if (!app.resultBlob) { showError("no result to export yet"); return; }
    const [w, h] = app.resultSize;
    download(app.resultBlob, `spadekit_${app.sizeName}_${w}x${h}_seed${app.seed}${app.upscaled ? `_x${app.upscaled}` : ""}.png`);
  }

  // ---- the style gallery -------------------------------------------------------------------------
  async function loadStyles() {
    const response = await fetch("/api/styles");
    if (!response.ok) return;
    app.styles = (await response.json()).styles;
    const box = $("#gallery");
    box.innerHTML = "";
    const tile = (id, name, thumb) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "style-tile";
      button.dataset.style = id || "";
      button.setAttribute("role", "option");
      button.title = id ? `follow the look of “${name}”` : "no photo: the seed alone picks the style";
      if (thumb) { const img = document.createElement("img"); img.src = thumb; img.alt = ""; button.appendChild(img); }
      else { const i = document.createElement("i"); i.textContent = "⚄"; button.appendChild(i); }
      const label = document.createElement("span");
      label.textContent = name;
      button.appendChild(label);
      button.addEventListener("click", () => selectStyle(id));
      box.appendChild(button);
    };
    tile(null, "Seed only", null);
    for (const style of app.styles) tile(style.id, style.name, style.thumbnail);
    const upload = document.createElement("label");
    upload.className = "style-tile upload-tile button";
    upload.title = "add your own photo to the gallery (kept by the server until it restarts)";
    upload.innerHTML = '<i>+</i><span>Your photo</span><input type="file" id="style-upload" accept="image/*" hidden>';
    upload.querySelector("input").addEventListener("change", (e) => { const f = e.target.files[0]; e.target.value = ""; if (f) uploadStyle(f); });
    box.appendChild(upload);
    markStyle();
  }

  function markStyle() {
    document.querySelectorAll(".style-tile[data-style]").forEach((b) => {
      const on = (b.dataset.style || null) === app.styleId;
      b.classList.toggle("active", on);
      b.setAttribute("aria-selected", String(on));
    });
    const style = app.styles.find((s) => s.id === app.styleId);
    $("#style-name").textContent = style ? `style: ${style.name}` : "";
  }

  function selectStyle(id, regenerate = true) {
    app.styleId = id && app.styles.some((s) => s.id === id) ? id : null;
    markStyle();
    if (regenerate) generate();
  }

  async function uploadStyle(file) {
    const form = new FormData();
    form.append("image", file, file.name);
    const response = await fetch("/api/styles", { method: "POST", body: form });
    if (!response.ok) { showError(`${file.name}: ${await errorText(response)}`); return; }
    const entry = await response.json();
    showError(null);
    await loadStyles();
    selectStyle(entry.id);
  }

  // ---- setup -----------------------------------------------------------------------------------
  function buildLabelUi() {
    const palette = $("#palette");
    palette.innerHTML = "";
    const background = $("#background-label"), from = $("#replace-from"), to = $("#replace-to");
    [background, from, to].forEach((s) => { s.innerHTML = ""; });
    app.labels.forEach((label, index) => {
      const [r, g, b] = hexToRgb(label.color);
      app.lut.set([r, g, b], label.id * 3);
      app.idOfColour.set((r << 16) | (g << 8) | b, label.id);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "swatch";
      button.dataset.id = label.id;
      button.setAttribute("role", "option");
      button.title = `${label.name} (id ${label.id}, ${label.color})` + (index < 9 ? ` · key ${index + 1}` : "");
      button.innerHTML = `<span class="chip" style="background:${label.color}"></span><span class="name"></span>`;
      button.querySelector(".name").textContent = label.name;
      button.addEventListener("click", () => { setLabel(label.id); if (app.tool === "eraser") setTool("brush"); });
      palette.appendChild(button);
      for (const select of [background, from, to]) select.add(new Option(label.name, label.id));
    });
    const names = app.labels.map((l) => l.name);
    const idFor = (name, k) => (names.includes(name) ? app.labels[names.indexOf(name)].id : app.labels[Math.min(k, app.labels.length - 1)].id);
    app.background = idFor("sky", 0);
    background.value = app.background;
    from.value = idFor("grass", 0);
    to.value = idFor("snow", 1);
    setLabel(idFor("mountain", Math.min(2, app.labels.length - 1)));
  }

  function buildSizeUi() {
    const box = $("#canvas-sizes");
    box.innerHTML = "";
    const glyph = { square: "□", wide: "▭", panorama: "━" };
    for (const size of app.canvasInfo.sizes) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "small";
      button.dataset.canvasSize = size.name;
      button.title = `${size.name}: ${size.width}×${size.height} (${size.aspect})`;
      button.textContent = `${glyph[size.name] || ""} ${size.name[0].toUpperCase()}${size.name.slice(1)}`;
      button.addEventListener("click", () => setCanvasSize(size.name));
      box.appendChild(button);
    }
  }

  async function loadScenes() {
    const box = $("#scenes");
    const response = await fetch("/api/scenes");
    if (!response.ok) return [];
    const { scenes } = await response.json();
    if (!scenes.length) return [];
    box.innerHTML = "";
    for (const scene of scenes) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "scene";
      button.dataset.scene = scene.name;
      button.title = `load the starter scene “${scene.name}” into the active layer`;
      const img = document.createElement("img");
      img.src = scene.url; img.alt = "";
      const name = document.createElement("span");
      name.textContent = scene.name;
      button.append(img, name);
      button.addEventListener("click", () => loadScene(scene.name));
      box.appendChild(button);
    }
    return scenes;
  }

  function setSeed(value) {
    const v = Math.floor(Number(value));
    app.seed = Number.isFinite(v) && v >= 0 ? Math.min(v, 4294967295) : 0;
    $("#seed").value = app.seed;
  }

  function bindControls() {
    document.querySelectorAll(".tool").forEach((b) => b.addEventListener("click", () => setTool(b.dataset.tool)));
    $("#brush-size").addEventListener("input", (e) => setBrush(Number(e.target.value)));
    document.querySelectorAll(".sizes button").forEach((b) => b.addEventListener("click", () => setBrush(Number(b.dataset.size))));
    $("#background-label").addEventListener("change", (e) => { pushUndo(); app.background = Number(e.target.value); changed(); });
    $("#undo").addEventListener("click", undo);
    $("#redo").addEventListener("click", redo);
    $("#clear").addEventListener("click", () => { pushUndo(); own(activeLayer()).fill(EMPTY); changed(); });
    $("#layer-add").addEventListener("click", addLayer);
    $("#layer-delete").addEventListener("click", deleteLayer);
    $("#layer-up").addEventListener("click", () => moveLayer(1));
    $("#layer-down").addEventListener("click", () => moveLayer(-1));
    $("#layer-merge").addEventListener("click", mergeDown);
    $("#seed").addEventListener("change", (e) => { setSeed(e.target.value); schedule(0); });
    $("#new-style").addEventListener("click", newStyle);
    $("#replace").addEventListener("click", replaceLabel);
    $("#upscale").addEventListener("click", upscale);
    $("#upload-label").addEventListener("change", (e) => { const f = e.target.files[0]; e.target.value = ""; if (f) uploadLabelMap(f); });
    $("#project-open").addEventListener("change", (e) => { const f = e.target.files[0]; e.target.value = ""; if (f) openProject(f); });
    $("#project-save").addEventListener("click", saveProject);
    $("#project-new").addEventListener("click", newProject);
    $("#export-label").addEventListener("click", () => exportLabelMap("color"));
    $("#export-ids").addEventListener("click", () => exportLabelMap("ids"));
    $("#export-result").addEventListener("click", exportResult);
    document.addEventListener("keydown", onKey);
  }

  function newStyle() {
    setSeed(Math.floor(Math.random() * 2147483647));
    generate();
  }

  // Replace A -> B on every layer (and the background), so the whole painting changes class.
  function replaceLabel() {
    const a = Number($("#replace-from").value), b = Number($("#replace-to").value);
    if (a === b) { $("#replace-note").textContent = "pick two different labels"; return; }
    const shown = compose();
    let count = 0;
    for (let i = 0; i < shown.length; i++) if (shown[i] === a) count++;
    if (!count && !app.layers.some((l) => l.ids.includes(a))) {
      $("#replace-note").textContent = `no ${nameOf(a)} in the painting`;
      return;
    }
    pushUndo();
    for (const layer of app.layers) {
      if (!layer.ids.includes(a)) continue;
      const ids = own(layer);
      for (let i = 0; i < ids.length; i++) if (ids[i] === a) ids[i] = b;
    }
    if (app.background === a) { app.background = b; $("#background-label").value = b; }
    $("#replace-note").textContent = `${count} px of ${nameOf(a)} → ${nameOf(b)}`;
    renderLayers(); render();
    generate();
  }

  function onKey(event) {
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA")) return;
    const key = event.key.toLowerCase();
    if (event.ctrlKey || event.metaKey) {
      if (key === "z" && !event.shiftKey) { undo(); event.preventDefault(); }
      else if (key === "y" || (key === "z" && event.shiftKey)) { redo(); event.preventDefault(); }
      return;
    }
    if (event.altKey) return;
    if (key === "b") setTool("brush");
    else if (key === "f") setTool("fill");
    else if (key === "e") setTool("eraser");
    else if (key === "[") setBrush(app.brush > 4 ? app.brush / 1.25 : app.brush - 1);
    else if (key === "]") setBrush(app.brush >= 4 ? app.brush * 1.25 : app.brush + 1);
    else if (key === "n") newStyle();
    else if (key === "l") addLayer();
    else if (key === "u") upscale();
    else if (/^[1-9]$/.test(key) && app.labels[Number(key) - 1]) setLabel(app.labels[Number(key) - 1].id);
    else return;
    event.preventDefault();
  }

  async function init() {
    bindControls();
    setTool("brush");
    setBrush(12);
    updateHistoryButtons();
    let response, canvasResponse;
    try {
      [response, canvasResponse] = await Promise.all([fetch("/api/info"), fetch("/api/canvas")]);
    } catch (error) {
      showError(`cannot reach the server: ${error.message}`);
      return;
    }
    app.info = await response.json();
    app.canvasInfo = await canvasResponse.json();
    app.labels = app.info.labels;
    buildLabelUi();
    buildSizeUi();
    const first = app.canvasInfo.sizes.find((s) => s.name === app.canvasInfo.default_size) || app.canvasInfo.sizes[0];
    applySize(first.name, first.width, first.height);
    $("#banner").hidden = !app.info.random_model;
    $("#model-chip").textContent = `${app.info.model || "model"} · ${app.info.label_set} · ${app.labels.length} labels · ${app.info.width}×${app.info.height}`;
    if (!app.info.multimodal) {
      $("#seed").disabled = true; $("#new-style").disabled = true;
      $("#style-hint").textContent = "This model has no style input: the image depends on the labels only.";
    }
    if (!app.canvasInfo.style_gallery) {
      $("#gallery-card").hidden = true;
      if (app.info.multimodal) $("#style-hint").textContent = "This model has no image encoder, so it takes no style photo.";
    } else {
      await loadStyles().catch(() => {});
    }
    if (!app.canvasInfo.upscale.available) {
      $("#upscale-row").title = "this installation has no upscaler";
    }
    updateUpscaleButton();
    app.layers = [newLayer("Background", EMPTY)];
    app.layers[0].ids.set(defaultScene());
    app.active = 0;
    renderLayers();
    render();
    const scenes = await loadScenes().catch(() => []);
    if (scenes.length) await loadScene(scenes[0].name);
    else generate();
    app.undo = []; updateHistoryButtons(); // the start is not an edit to undo
    document.body.dataset.ready = "1";
  }

  init();
})();
