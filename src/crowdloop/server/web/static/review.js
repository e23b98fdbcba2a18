"use strict";
// The reviewer's queue: pick an escalated or disputed item, read the crowd's answers, the model's
// suggestions (its label, when it disputes the accepted one) and why it is here, settle it with the picker.
(() => {
  const { api, renderPayload, pageData, el } = window.crowdloop;
  const data = pageData();
  if (!data) return;
  const M = data.messages;
  const $ = (id) => document.getElementById(id);
  const queue = data.queue;
  let current = 0;
  const picker = data.can_settle
    ? new window.Picker($("picker"), $("chips"), $("keys"), {
        labels: data.labels,
        taxonomy: data.taxonomy,
        messages: M,
        onPick: settle,
        onSkip: () => select(current + 1),
      })
    : null;

  function list() {
    $("queue").replaceChildren();
    $("queue-count").textContent = `(${queue.length})`;
    queue.forEach((task, k) => {
      const row = el("li", "", "");
      const button = el("button", "queue-item");
      button.type = "button";
      button.append(el("span", "item-id", task.item), el("span", "muted", task.label || ""));
      if (task.disputed) button.append(el("span", "badge", M["js.disputed"]));
      if (k === current) button.setAttribute("aria-current", "true");
      button.addEventListener("click", () => select(k));
      row.append(button);
      $("queue").append(row);
    });
  }

  function select(k) {
    if (!queue.length) {
      $("detail").hidden = true;
      $("empty").hidden = false;
      list();
      return;
    }
    current = ((k % queue.length) + queue.length) % queue.length;
    const task = queue[current];
    list();
    renderPayload($("payload"), task.payload);
    $("reason").textContent = task.reason || "–";
    const confidence = task.confidence === null ? "" : ` (${Math.round(100 * task.confidence)}%)`;
    $("leading").textContent = (task.label || "–") + confidence;
    $("badge").hidden = !task.disputed;
    document.querySelectorAll(".disputed-only").forEach((node) => (node.hidden = !task.disputed));
    $("model-label").textContent = task.model_label || "";
    $("answers").replaceChildren(...task.answers.map((a) => el("li", "", `${a.annotator}: ${a.label}`)));
    const votes = new Map();
    task.answers.forEach((a) => votes.set(a.label, (votes.get(a.label) || 0) + 1));
    const chips = [...votes].map(([label, n]) => ({ label, note: `×${n}` }));
    if (task.model_label && !votes.has(task.model_label)) chips.push({ label: task.model_label, note: M["js.model"] });
    task.suggestions.forEach((s) => {
      if (!chips.some((c) => c.label === s.label)) chips.push({ label: s.label, note: `${Math.round(100 * s.probability)}%` });
    });
    if (picker) {
      picker.setChips(chips);
      picker.reset();
    }
  }

  async function settle(label) {
    const task = queue[current];
    if (!task) return;
    picker.enabled = false;
    const response = await api(`/projects/${data.project}/review/${encodeURIComponent(task.item)}`, {
      method: "POST",
      body: { label },
    });
    picker.enabled = true;
    if (!response.ok) {
      let detail = "";
      try {
        detail = (await response.json()).detail || "";
      } catch {}
      $("keys").textContent = `${M["js.error"]} ${response.status} ${detail}`;
      return;
    }
    queue.splice(current, 1);
    select(current);
  }

  select(0);
})();
