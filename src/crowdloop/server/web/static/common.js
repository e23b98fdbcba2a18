"use strict";
// Shared by the pages: the REST API with the session cookie and its CSRF header, and timings.
(() => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";
  window.crowdloop = {
    timings: { submitToShown: [], search: [] },
    api(path, { method = "GET", body } = {}) {
      const headers = { "X-CSRF-Token": csrf, Accept: "application/json" };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      return fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
      });
    },
    el(tag, className, text) {
      const node = document.createElement(tag);
      if (className) node.className = className;
      if (text !== undefined) node.textContent = text;
      return node;
    },
    pageData() {
      const node = document.getElementById("page-data");
      return node ? JSON.parse(node.textContent) : null;
    },
    // A payload as text: strings, links (http/https only), pictures for image URLs, JSON for the rest.
    renderPayload(root, payload) {
      const { el } = window.crowdloop;
      root.replaceChildren();
      const image = /^https?:\/\/\S+\.(png|jpe?g|gif|webp|avif|bmp|svg)(\?\S*)?$/i;
      const link = /^https?:\/\/\S+$/i;
      for (const [key, value] of Object.entries(payload || {})) {
        const row = el("div", "field");
        row.dataset.key = key;
        row.append(el("div", "key", key));
        const cell = el("div", "value");
        if (typeof value === "string" && image.test(value)) {
          const img = el("img");
          img.src = value;
          img.alt = key;
          img.referrerPolicy = "no-referrer";
          cell.append(img);
        } else if (typeof value === "string" && link.test(value)) {
          const a = el("a", "", value);
          a.href = value;
          a.rel = "noopener noreferrer nofollow";
          a.target = "_blank";
          cell.append(a);
        } else {
          cell.textContent = typeof value === "string" ? value : JSON.stringify(value, null, 2);
        }
        row.append(cell);
        root.append(row);
      }
    },
  };
})();
