// The page of 'beit serve': plain JS, no build step. Each result is a panel: Beit.panels.register({ id, title,
// appliesTo(model), run(file, model, element) }) adds one; every panel whose appliesTo returns true runs on each
// image, in its own <section class="panel" id="panel-<id>">, and sets data-state="done" or "error" when finished.
"use strict";
const Beit = (() => {
  const panels = [];
  let model = null;

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k === "style") node.style.cssText = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  };
  const percent = (p) => (100 * p).toFixed(1) + " %";

  /** POSTs the image as its own body; resolves to the Response, or throws the server's JSON error. */
  async function post(path, file) {
    const response = await fetch(path, { method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try { message = (await response.json()).error || message; } catch { /* not JSON */ }
      throw new Error(message);
    }
    return response;
  }

  function register(panel) { panels.push(panel); }

  async function show(file) {
    $("preview").hidden = false;
    const url = URL.createObjectURL(file);
    $("preview-image").src = url;
    $("preview-name").textContent = file.name + " (" + Math.round(file.size / 1024) + " KB)";
    const host = $("panels");
    host.replaceChildren();
    const active = panels.filter((p) => model && p.appliesTo(model));
    if (active.length === 0) { status("This model has no result the page can show.", true); return; }
    status("Scoring…");
    const runs = active.map(async (panel) => {
      const section = el("section", { class: "panel", id: "panel-" + panel.id, "data-state": "running" }, el("h2", {}, panel.title));
      host.append(section);
      try {
        await panel.run(file, model, section);
        section.dataset.state = "done";
      } catch (e) {
        section.dataset.state = "error";
        section.append(el("p", { class: "error" }, String(e.message || e)));
        throw e;
      }
    });
    const results = await Promise.allSettled(runs);
    const failed = results.filter((r) => r.status === "rejected");
    status(failed.length ? "Failed: " + failed[0].reason.message : "Done.", failed.length > 0);
  }

  function status(text, error = false) {
    $("status").textContent = text;
    $("status").classList.toggle("error", error);
  }

  async function init() {
    const zone = $("drop-zone");
    $("file-input").addEventListener("change", (e) => { if (e.target.files[0]) show(e.target.files[0]); });
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("dragging"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("dragging");
      const file = e.dataTransfer.files[0];
      if (file) show(file);
    });
    try {
      model = await (await fetch("/v1/model")).json();
      $("model-info").textContent = `${model.model}: ${model.task}, ${model.labels.length} labels, input ` +
        `${model.inputSize.height}×${model.inputSize.width}, ${model.precision}`;
      document.body.dataset.task = model.task;
    } catch (e) {
      status("Cannot read /v1/model: " + e.message, true);
    }
  }

  return { register, post, el, percent, init, get model() { return model; } };
})();

// Classification: the top five labels as bars.
Beit.register({
  id: "classification",
  title: "Top 5 labels",
  appliesTo: (m) => m.task === "image-classification",
  async run(file, model, section) {
    const answer = await (await Beit.post("/v1/predict?top_k=5", file)).json();
    const list = Beit.el("ol", { class: "bars" });
    for (const p of answer.predictions) {
      list.append(Beit.el("li", { "data-label": p.label },
        Beit.el("span", { class: "label", title: p.label }, p.label),
        Beit.el("span", { class: "track" }, Beit.el("span", { class: "fill", style: `display:block;width:${(100 * p.probability).toFixed(2)}%` })),
        Beit.el("span", { class: "value" }, Beit.percent(p.probability))));
    }
    section.append(list);
  },
});

// Segmentation: the overlay, with a legend of the classes present and their share of the pixels.
Beit.register({
  id: "segmentation",
  title: "Segmentation",
  appliesTo: (m) => m.task === "semantic-segmentation",
  async run(file, model, section) {
    const [summary, overlay] = await Promise.all([
      Beit.post("/v1/segment", file).then((r) => r.json()),
      Beit.post("/v1/segment?format=overlay", file).then((r) => r.blob()),
    ]);
    const img = Beit.el("img", { alt: "segmentation overlay", id: "overlay" });
    const loaded = new Promise((resolve, reject) => { img.onload = resolve; img.onerror = () => reject(new Error("the overlay did not load")); });
    img.src = URL.createObjectURL(overlay);
    await loaded;
    const legend = Beit.el("ul", { class: "legend" });
    for (const c of summary.classes) {
      legend.append(Beit.el("li", { "data-label": c.label },
        Beit.el("span", { class: "swatch", style: `background:${c.color}` }),
        Beit.el("span", { class: "label" }, c.label),
        Beit.el("span", { class: "value" }, Beit.percent(c.fraction))));
    }
    section.append(Beit.el("div", { class: "segmentation" }, img, legend));
  },
});

// Features: the embedding's size and first values (the page has nothing to draw for it).
Beit.register({
  id: "features",
  title: "Embedding",
  appliesTo: (m) => m.task === "features",
  async run(file, model, section) {
    const answer = await (await Beit.post("/v1/features", file)).json();
    const head = answer.features.slice(0, 8).map((v) => v.toFixed(4)).join(", ");
    section.append(Beit.el("p", {}, `${answer.features.length} floats: [${head}, …]`));
  },
});

Beit.init();
