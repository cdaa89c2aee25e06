// spadekit painting app: paint label ids on an offscreen buffer, send them as a colour PNG, show the image.
// Plain JavaScript, no build step, no network access beyond this server.
"use strict";

(() => {
  const $ = (selector) => document.querySelector(selector);
  const DEBOUNCE_MS = 300;
  const MAX_HISTORY = 60;

  const app = {
    info: null, W: 0, H: 0,
    ids: null,                 // Int32Array(W*H): the label id of every pixel (the truth; the canvas only shows it)
    lut: new Uint8Array(65536 * 3), // id -> colour
    idOfColour: new Map(),     // 0xRRGGBB -> id
    labels: [],
    tool: "brush", brush: 12, current: null, eraser: null,
    undo: [], redo: [],
    seed: 0, style: null, styleUrl: null,
    timer: null, controller: null, requestSeq: 0, lastMs: 800, busySince: 0,
    generation: 0, resultUrl: null, resultHash: null, lastRequestBytes: 0,
  };
  window.spadekitApp = app; // for tests and the curious

  const canvas = $("#label-canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  let imageData = null;

  // ---- helpers ---------------------------------------------------------------------------------
  const hexToRgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const labelById = (id) => app.labels.find((l) => l.id === id);
  const nameOf = (id) => (labelById(id) || { name: `id ${id}` }).name;

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

  // ---- drawing ---------------------------------------------------------------------------------
  let renderQueued = false;
  function render() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => { renderQueued = false; renderNow(); });
  }
  function renderNow() {
    const px = imageData.data, ids = app.ids, lut = app.lut;
    for (let i = 0, j = 0; i < ids.length; i++, j += 4) {
      const k = ids[i] * 3;
      px[j] = lut[k]; px[j + 1] = lut[k + 1]; px[j + 2] = lut[k + 2]; px[j + 3] = 255;
    }
    ctx.putImageData(imageData, 0, 0);
  }

  function stamp(cx, cy, id) {
    const r = (app.brush - 1) / 2, W = app.W, H = app.H;
    const x0 = Math.max(0, Math.floor(cx - r)), x1 = Math.min(W - 1, Math.ceil(cx + r));
    const y0 = Math.max(0, Math.floor(cy - r)), y1 = Math.min(H - 1, Math.ceil(cy + r));
    const rr = (r + 0.5) * (r + 0.5);
    for (let y = y0; y <= y1; y++) {
      const dy = y - cy;
      for (let x = x0; x <= x1; x++) {
        const dx = x - cx;
        if (dx * dx + dy * dy <= rr) app.ids[y * W + x] = id;
      }
    }
  }

  function line(a, b, id) {
    const dist = Math.hypot(b.x - a.x, b.y - a.y);
    const steps = Math.max(1, Math.ceil(dist / Math.max(0.5, app.brush / 4)));
    for (let s = 1; s <= steps; s++) {
      const t = s / steps;
      stamp(Math.round(a.x + (b.x - a.x) * t), Math.round(a.y + (b.y - a.y) * t), id);
    }
  }

  function floodFill(x, y, id) {
    const W = app.W, H = app.H, ids = app.ids;
    const target = ids[y * W + x];
    if (target === id) return false;
    const stack = [y * W + x];
    while (stack.length) {
      const p = stack.pop();
      if (ids[p] !== target) continue;
      // walk left and right along the row, filling, and push the rows above and below
      let left = p, right = p;
      const rowStart = p - (p % W), rowEnd = rowStart + W - 1;
      while (left > rowStart && ids[left - 1] === target) left--;
      while (right < rowEnd && ids[right + 1] === target) right++;
      for (let q = left; q <= right; q++) {
        ids[q] = id;
        if (q >= W && ids[q - W] === target) stack.push(q - W);
        if (q < W * (H - 1) && ids[q + W] === target) stack.push(q + W);
      }
    }
    return true;
  }

  // ---- history ---------------------------------------------------------------------------------
  function pushUndo() {
    app.undo.push(app.ids.slice());
    if (app.undo.length > MAX_HISTORY) app.undo.shift();
    app.redo = [];
    updateHistoryButtons();
  }
  function sameAsLastUndo() {
    const last = app.undo[app.undo.length - 1];
    if (!last) return false;
    for (let i = 0; i < last.length; i++) if (last[i] !== app.ids[i]) return false;
    return true;
  }
  function step(from, to) {
    if (!from.length) return;
    to.push(app.ids.slice());
    app.ids = from.pop();
    render(); updateHistoryButtons(); schedule();
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
  function paintId() { return app.tool === "eraser" ? app.eraser : app.current; }

  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || !app.ids) return;
    event.preventDefault();
    const p = toBuffer(event);
    pushUndo();
    if (app.tool === "fill") {
      if (floodFill(p.x, p.y, app.current)) { render(); schedule(); } else { app.undo.pop(); updateHistoryButtons(); }
      return;
    }
    canvas.setPointerCapture(event.pointerId);
    stroke = { last: p, id: paintId() };
    stamp(p.x, p.y, stroke.id);
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
      line(stroke.last, q, stroke.id);
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
    $("#hover-label").textContent = `${nameOf(id)} (id ${id}) at ${p.x}, ${p.y}`;
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
    renderNow(); // the canvas holds exactly the palette colours of app.ids (never antialiased strokes)
    return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  }

  let progressTimer = null;
  function setBusy(on) {
    $("#busy").hidden = !on;
    $("#progress").hidden = !on;
    clearInterval(progressTimer);
    if (on) {
      app.busySince = performance.now();
      const tick = () => {
        const elapsed = performance.now() - app.busySince;
        $("#busy-text").textContent = `generating… ${(elapsed / 1000).toFixed(1)} s`;
        $("#progress-bar").style.width = `${Math.min(95, (100 * elapsed) / Math.max(100, app.lastMs))}%`;
      };
      tick();
      progressTimer = setInterval(tick, 100);
    }
  }

  async function generate() {
    clearTimeout(app.timer);
    app.timer = null;
    if (!app.ids) return;
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
      form.append("seed", String(app.seed));
      if (app.style) form.append("style_image", app.style, app.style.name || "style.png");
      const response = await fetch("/api/generate", { method: "POST", body: form, signal: controller.signal });
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
      const url = URL.createObjectURL(new Blob([buffer], { type: "image/png" }));
      const img = $("#result");
      await new Promise((resolve) => { img.onload = resolve; img.onerror = resolve; img.src = url; });
      if (app.resultUrl) URL.revokeObjectURL(app.resultUrl);
      app.resultUrl = url;
      app.resultHash = fnv1a(buffer);
      app.lastMs = performance.now() - started;
      app.generation += 1;
      img.dataset.generation = String(app.generation);
      img.dataset.hash = app.resultHash;
      const link = $("#download-result");
      link.href = url;
      link.download = `spadekit_seed${app.seed}.png`;
      if (upToDate()) $("#result-frame").classList.remove("stale");
      const server = response.headers.get("X-Inference-Ms");
      $("#status").textContent = `seed ${app.seed} · ${Math.round(app.lastMs)} ms` + (server ? ` (model ${Math.round(Number(server))} ms)` : "");
      showError(null);
    } catch (error) {
      if (error.name !== "AbortError") showError(`could not reach the server: ${error.message}`);
    } finally {
      if (seq === app.requestSeq) { setBusy(false); app.controller = null; }
    }
  }

  // ---- label maps in and out ---------------------------------------------------------------------
  async function loadLabelBlob(blob) {
    const bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    const off = document.createElement("canvas");
    off.width = app.W; off.height = app.H;
    const octx = off.getContext("2d", { willReadFrequently: true });
    octx.imageSmoothingEnabled = false; // nearest neighbour: colours stay exact
    octx.drawImage(bitmap, 0, 0, app.W, app.H);
    const px = octx.getImageData(0, 0, app.W, app.H).data;
    const ids = new Int32Array(app.W * app.H);
    let unknown = 0;
    const fallback = app.eraser;
    for (let i = 0, j = 0; i < ids.length; i++, j += 4) {
      const id = app.idOfColour.get((px[j] << 16) | (px[j + 1] << 8) | px[j + 2]);
      if (id === undefined) { unknown++; ids[i] = fallback; } else ids[i] = id;
    }
    pushUndo();
    app.ids = ids;
    render();
    if (unknown) showError(`${unknown} pixel(s) had colours outside the palette and became ${nameOf(fallback)}`);
    generate();
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

  function download(url, name) {
    const a = document.createElement("a");
    a.href = url; a.download = name;
    document.body.appendChild(a); a.click(); a.remove();
  }

  function defaultScene() {
    const names = app.labels.map((l) => l.name);
    const top = names.includes("sky") ? labelById(app.labels[names.indexOf("sky")].id).id : app.labels[0].id;
    const pick = (n, k) => (names.includes(n) ? app.labels[names.indexOf(n)].id : app.labels[Math.min(k, app.labels.length - 1)].id);
    const ids = new Int32Array(app.W * app.H).fill(top);
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

  // ---- setup -----------------------------------------------------------------------------------
  function buildLabelUi() {
    const palette = $("#palette");
    palette.innerHTML = "";
    const eraser = $("#eraser-label"), from = $("#replace-from"), to = $("#replace-to");
    [eraser, from, to].forEach((s) => { s.innerHTML = ""; });
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
      for (const select of [eraser, from, to]) select.add(new Option(label.name, label.id));
    });
    const names = app.labels.map((l) => l.name);
    const idFor = (name, k) => (names.includes(name) ? app.labels[names.indexOf(name)].id : app.labels[Math.min(k, app.labels.length - 1)].id);
    app.eraser = idFor("sky", 0);
    eraser.value = app.eraser;
    from.value = idFor("grass", 0);
    to.value = idFor("snow", 1);
    setLabel(idFor("mountain", Math.min(2, app.labels.length - 1)));
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
      button.title = `load the starter scene “${scene.name}”`;
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

  function bindControls() {
    document.querySelectorAll(".tool").forEach((b) => b.addEventListener("click", () => setTool(b.dataset.tool)));
    $("#brush-size").addEventListener("input", (e) => setBrush(Number(e.target.value)));
    document.querySelectorAll(".sizes button").forEach((b) => b.addEventListener("click", () => setBrush(Number(b.dataset.size))));
    $("#eraser-label").addEventListener("change", (e) => { app.eraser = Number(e.target.value); });
    $("#undo").addEventListener("click", undo);
    $("#redo").addEventListener("click", redo);
    $("#clear").addEventListener("click", () => { pushUndo(); app.ids.fill(app.eraser); render(); schedule(); });
    $("#seed").addEventListener("change", (e) => {
      const v = Math.floor(Number(e.target.value));
      app.seed = Number.isFinite(v) && v >= 0 ? Math.min(v, 4294967295) : 0;
      e.target.value = app.seed;
      schedule(0);
    });
    $("#new-style").addEventListener("click", newStyle);
    $("#style-image").addEventListener("change", (e) => {
      const file = e.target.files[0];
      if (!file) return;
      app.style = file;
      if (app.styleUrl) URL.revokeObjectURL(app.styleUrl);
      app.styleUrl = URL.createObjectURL(file);
      $("#style-thumb").src = app.styleUrl;
      $("#style-thumb").hidden = false;
      $("#style-clear").hidden = false;
      e.target.value = "";
      generate();
    });
    $("#style-clear").addEventListener("click", () => {
      app.style = null;
      $("#style-thumb").hidden = true;
      $("#style-clear").hidden = true;
      generate();
    });
    $("#replace").addEventListener("click", replaceLabel);
    $("#upload-label").addEventListener("change", (e) => { const f = e.target.files[0]; e.target.value = ""; if (f) uploadLabelMap(f); });
    $("#download-label").addEventListener("click", async () => {
      const blob = await labelPng();
      const url = URL.createObjectURL(blob);
      download(url, "label_map.png");
      setTimeout(() => URL.revokeObjectURL(url), 5000);
    });
    document.addEventListener("keydown", onKey);
  }

  function newStyle() {
    app.seed = Math.floor(Math.random() * 2147483647);
    $("#seed").value = app.seed;
    generate();
  }

  function replaceLabel() {
    const a = Number($("#replace-from").value), b = Number($("#replace-to").value);
    if (a === b) { $("#replace-note").textContent = "pick two different labels"; return; }
    pushUndo();
    let count = 0;
    for (let i = 0; i < app.ids.length; i++) if (app.ids[i] === a) { app.ids[i] = b; count++; }
    if (!count) {
      app.undo.pop(); updateHistoryButtons();
      $("#replace-note").textContent = `no ${nameOf(a)} in the painting`;
      return;
    }
    $("#replace-note").textContent = `${count} px of ${nameOf(a)} → ${nameOf(b)}`;
    render();
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
    else if (/^[1-9]$/.test(key) && app.labels[Number(key) - 1]) setLabel(app.labels[Number(key) - 1].id);
    else return;
    event.preventDefault();
  }

  async function init() {
    bindControls();
    setTool("brush");
    setBrush(12);
    updateHistoryButtons();
    let response;
    try {
      response = await fetch("/api/info");
    } catch (error) {
      showError(`cannot reach the server: ${error.message}`);
      return;
    }
    app.info = await response.json();
    app.labels = app.info.labels;
    app.W = app.info.width; app.H = app.info.height;
    canvas.width = app.W; canvas.height = app.H;
    imageData = ctx.createImageData(app.W, app.H);
    document.querySelectorAll(".frame").forEach((f) => {
      f.style.setProperty("--aspect", `${app.W} / ${app.H}`);
      f.style.setProperty("--ar", String(app.W / app.H));
    });
    $("#banner").hidden = !app.info.random_model;
    $("#model-chip").textContent = `${app.info.model || "model"} · ${app.info.label_set} · ${app.labels.length} labels · ${app.W}×${app.H}`;
    buildLabelUi();
    if (!app.info.multimodal) {
      $("#seed").disabled = true; $("#new-style").disabled = true;
      $("#style-hint").textContent = "This model has no style input: the image depends on the labels only.";
    }
    if (!app.info.style_image) {
      $("#style-row").hidden = true;
      if (app.info.multimodal) $("#style-hint").textContent = "This model has no image encoder, so it takes no style image.";
    }
    app.ids = defaultScene();
    render();
    const scenes = await loadScenes().catch(() => []);
    if (scenes.length) await loadScene(scenes[0].name);
    else generate();
    document.body.dataset.ready = "1";
  }

  init();
})();
