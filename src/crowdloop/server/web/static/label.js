"use strict";
// The annotator's loop: a task, an answer, the next task from the same request (?next=true).
(() => {
  const { api, renderPayload, pageData, timings } = window.crowdloop;
  const data = pageData();
  if (!data) return;
  const M = data.messages;
  const $ = (id) => document.getElementById(id);
  let task = null;
  let shownAt = 0;
  let answered = 0;
  let busy = false;

  const picker = new window.Picker($("picker"), $("chips"), $("keys"), {
    labels: data.labels,
    taxonomy: data.taxonomy,
    messages: M,
    onPick: submit,
    onSkip: skip,
  });
  $("skip").addEventListener("click", skip);

  function say(text) {
    $("status").textContent = text || "";
  }

  function show(next) {
    task = next;
    if (!task) {
      $("task").hidden = true;
      $("done").hidden = false;
      picker.enabled = false;
      return;
    }
    renderPayload($("payload"), task.payload);
    picker.setChips(task.suggestions.map((s) => ({ label: s.label, note: `${Math.round(100 * s.probability)}%` })));
    picker.reset();
    $("count").textContent = `${M["js.submitted"]}: ${answered}`;
    $("task").dataset.lease = task.lease_id;
    shownAt = performance.now();
    if (timings.firstTask === undefined) timings.firstTask = shownAt; // since the page's navigation began
  }

  async function failed(response) {
    if (response.status === 409) {
      say(M["js.expired"]);
      await start();
      return;
    }
    let detail = "";
    try {
      detail = (await response.json()).detail || "";
    } catch {}
    if (response.status === 401 || (response.status === 403 && / is banned$/.test(detail))) {
      location.reload(); // an ended session or a ban: the page says why
      return;
    }
    say(`${M["js.error"]} ${response.status} ${detail}`); // e.g. a reviewer who may not take tasks here
  }

  async function start() {
    const response = await api(`/projects/${data.project}/tasks/next`, { method: "POST" });
    if (response.status === 204) show(null);
    else if (response.ok) show(await response.json());
    else await failed(response);
  }

  async function submit(label) {
    if (!task || busy) return;
    busy = true;
    picker.enabled = false;
    const started = performance.now();
    const body = { label, duration_ms: Math.round(started - shownAt) };
    try {
      const response = await api(`/projects/${data.project}/tasks/${task.lease_id}/submit?next=true`, {
        method: "POST",
        body,
      });
      if (!response.ok) {
        await failed(response);
        return;
      }
      const out = await response.json();
      if (out.annotator_status !== "active") {
        location.reload();
        return;
      }
      answered += 1;
      say("");
      show(out.next_task);
      requestAnimationFrame(() => timings.submitToShown.push(performance.now() - started));
    } finally {
      busy = false;
      picker.enabled = task !== null;
    }
  }

  async function skip() {
    if (!task || busy) return;
    busy = true;
    try {
      const response = await api(`/projects/${data.project}/tasks/${task.lease_id}/skip`, { method: "POST" });
      if (!response.ok && response.status !== 409) await failed(response);
      else await start();
    } finally {
      busy = false;
    }
  }

  start();
})();
