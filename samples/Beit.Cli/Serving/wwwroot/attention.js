// Attention: where the model looks, as a heat map over the image (POST /v1/attention), for every kind of model.
// A choice between attention rollout through all layers and the last layer's CLS attention re-asks the server.
"use strict";
Beit.register({
  id: "attention",
  title: "Attention",
  appliesTo: () => true,
  async run(file, model, section) {
    const img = Beit.el("img", { alt: "attention heat map", id: "attention-map" });
    const method = Beit.el("select", { id: "attention-method", "aria-label": "attention method" },
      Beit.el("option", { value: "rollout" }, "attention rollout (all layers)"),
      Beit.el("option", { value: "cls" }, "CLS attention (last layer)"));
    const caption = Beit.el("figcaption", { class: "muted" });
    section.append(Beit.el("div", { class: "controls" }, method), Beit.el("figure", { class: "attention" }, img, caption));
    const load = async () => {
      section.dataset.method = method.value;
      const blob = await (await Beit.post("/v1/attention?method=" + method.value, file)).blob();
      const loaded = new Promise((resolve, reject) => { img.onload = resolve; img.onerror = () => reject(new Error("the heat map did not load")); });
      img.src = URL.createObjectURL(blob);
      await loaded;
      caption.textContent = method.value === "rollout"
        ? "Attention rollout (Abnar & Zuidema 2020): red = where the CLS token's information comes from."
        : "The last layer's CLS attention, averaged over heads: red = most attended.";
    };
    method.addEventListener("change", () => {
      section.dataset.state = "running";
      load().then(() => { section.dataset.state = "done"; }, (e) => {
        section.dataset.state = "error";
        section.append(Beit.el("p", { class: "error" }, String(e.message || e)));
      });
    });
    await load();
  },
});
