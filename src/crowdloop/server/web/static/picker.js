"use strict";
// The label picker. A few labels: buttons with number keys. A taxonomy (or many labels): type-ahead
// search over full paths (every word typed must appear in the path, in any segment), drill-down by
// level with breadcrumbs, inner nodes allowed. Suggestions: chips, one key each.
//
// Keys (search): type to search; Up/Down move; Enter answers the highlighted row; Right or Tab opens
// it (its children); Left or Backspace (empty box) goes up a level; Esc clears; with an empty box
// 1-9 answer a chip and 0 skips. Keys (buttons): 1-9 answer, 0 skips.
(() => {
  const SEP = " > ";
  const SHOWN = 50;
  const { el } = window.crowdloop;

  class Picker {
    constructor(root, chipsRoot, keysLine, { labels, taxonomy, messages, onPick, onSkip }) {
      this.root = root;
      this.chipsRoot = chipsRoot;
      this.keysLine = keysLine;
      this.messages = messages;
      this.onPick = onPick;
      this.onSkip = onSkip;
      this.labels = labels;
      this.chips = [];
      this.enabled = true;
      this.buttons = !taxonomy && labels.length <= 9;
      this.buttons ? this.buildButtons() : this.buildSearch(taxonomy);
      document.addEventListener("keydown", (event) => this.key(event));
    }

    buildButtons() {
      this.root.classList.add("buttons");
      this.labels.forEach((label, k) => {
        const button = el("button", "label");
        button.type = "button";
        button.append(el("kbd", "", String(k + 1)), el("span", "", label));
        button.addEventListener("click", () => this.pick(label));
        this.root.append(button);
      });
      this.keysLine.textContent = this.messages["js.keys_flat"];
    }

    // The index, once: lowercase paths, leaf names, parents and children by position.
    buildSearch(taxonomy) {
      const paths = this.labels;
      this.lower = paths.map((p) => p.toLowerCase());
      this.leafLower = this.lower.map((p) => p.slice(p.lastIndexOf(SEP) + SEP.length));
      const position = new Map(paths.map((p, i) => [p, i]));
      this.parent = paths.map((p) => {
        const cut = taxonomy ? p.lastIndexOf(SEP) : -1;
        return cut < 0 ? -1 : (position.get(p.slice(0, cut)) ?? -1);
      });
      this.byLength = paths.map((_, i) => i).sort((a, b) => paths[a].length - paths[b].length);
      this.children = paths.map(() => []);
      this.top = [];
      this.parent.forEach((q, i) => (q < 0 ? this.top : this.children[q]).push(i));
      this.node = -1;
      this.previous = { query: null, node: -1, matches: null };

      this.crumbs = el("nav", "crumbs");
      this.input = el("input", "search");
      this.input.type = "search";
      this.input.placeholder = this.messages["js.search"];
      this.input.autocomplete = "off";
      this.input.spellcheck = false;
      this.input.setAttribute("aria-label", this.messages["js.search"]);
      this.list = el("ol", "results");
      this.list.setAttribute("role", "listbox");
      this.root.append(this.crumbs, this.input, this.list);
      this.input.addEventListener("input", () => this.search());
      this.keysLine.textContent = this.messages["js.keys_taxonomy"];
      this.show();
    }

    setChips(chips) {
      this.chips = chips.slice(0, 9);
      this.chipsRoot.replaceChildren();
      this.chips.forEach((chip, k) => {
        const button = el("button", "chip");
        button.type = "button";
        const key = this.buttons ? this.labels.indexOf(chip.label) + 1 : k + 1;
        button.append(el("kbd", "", String(key)), el("span", "", chip.label));
        if (chip.note) button.append(el("small", "", chip.note));
        button.addEventListener("click", () => this.pick(chip.label));
        this.chipsRoot.append(button);
      });
    }

    reset() {
      if (this.buttons) return;
      this.input.value = "";
      this.node = -1;
      this.previous = { query: null, node: -1, matches: null };
      this.show();
      this.input.focus();
    }

    pick(label) {
      if (this.enabled) this.onPick(label);
    }

    inSubtree(i) {
      if (this.node < 0) return true;
      const p = this.lower[this.node];
      return this.lower[i].startsWith(p) && (this.lower[i].length === p.length || this.lower[i].startsWith(SEP, p.length));
    }

    // Matching rows for the box's words, narrowed from the last keystroke's rows when the query grew.
    search() {
      const started = performance.now();
      const query = this.input.value.trim().toLowerCase();
      const words = query.split(/\s+/).filter(Boolean);
      let matches = null;
      if (words.length) {
        const prev = this.previous;
        const narrow = prev.matches && prev.node === this.node && query.startsWith(prev.query);
        // the pool and the matches stay in order of path length: no sort per keystroke
        const pool = narrow ? prev.matches : this.byLength.filter((i) => this.inSubtree(i));
        matches = pool.filter((i) => words.every((w) => this.lower[i].includes(w)));
        this.previous = { query, node: this.node, matches };
        // the leaf named exactly first, then leaves starting with the last word, then containing
        // it, then the rest (a word matched a branch), each the shortest path first
        const last = words[words.length - 1];
        const ranks = [[], [], [], []];
        for (const i of matches) {
          const leaf = this.leafLower[i];
          ranks[leaf === query ? 0 : leaf.startsWith(last) ? 1 : leaf.includes(last) ? 2 : 3].push(i);
        }
        matches = ranks.flat();
      } else {
        this.previous = { query: null, node: this.node, matches: null };
      }
      this.show(matches);
      window.crowdloop.timings.search.push(performance.now() - started);
    }

    // The list: search results, or the current level's children (and the branch itself).
    show(matches = null) {
      this.crumbs.replaceChildren();
      const root = el("button", "crumb", this.messages["js.top"]);
      root.type = "button";
      root.addEventListener("click", () => this.open(-1));
      this.crumbs.append(root);
      const chain = [];
      for (let i = this.node; i >= 0; i = this.parent[i]) chain.unshift(i);
      for (const i of chain) {
        const cut = this.labels[i].lastIndexOf(SEP);
        const crumb = el("button", "crumb", cut < 0 ? this.labels[i] : this.labels[i].slice(cut + SEP.length));
        crumb.type = "button";
        crumb.addEventListener("click", () => this.open(i));
        this.crumbs.append(SEP, crumb);
      }
      let rows = matches;
      if (rows === null) rows = (this.node >= 0 ? [this.node] : []).concat(this.node >= 0 ? this.children[this.node] : this.top);
      this.rows = rows.slice(0, SHOWN);
      this.active = 0;
      this.list.replaceChildren();
      if (!this.rows.length) this.list.append(el("li", "muted", this.messages["js.no_match"]));
      this.rows.forEach((i, k) => {
        const row = el("li", "row");
        row.setAttribute("role", "option");
        const path = this.labels[i];
        const cut = path.lastIndexOf(SEP);
        if (cut >= 0) row.append(el("span", "branch", path.slice(0, cut + SEP.length)));
        row.append(el("span", "leaf", cut >= 0 ? path.slice(cut + SEP.length) : path));
        if (i === this.node && matches === null) row.append(el("small", "note", this.messages["js.this_branch"]));
        if (this.children[i].length && i !== this.node) {
          const more = el("button", "open", `${this.children[i].length} ›`);
          more.type = "button";
          more.tabIndex = -1;
          more.addEventListener("click", (event) => {
            event.stopPropagation();
            this.open(i);
          });
          row.append(more);
        }
        row.addEventListener("click", () => this.pick(path));
        row.dataset.index = String(k);
        this.list.append(row);
      });
      if (matches !== null && rows.length > SHOWN) this.list.append(el("li", "muted", `+${rows.length - SHOWN}`));
      this.highlight();
    }

    highlight() {
      this.list.querySelectorAll("li.row").forEach((row, k) => row.setAttribute("aria-selected", String(k === this.active)));
      const current = this.list.querySelector('li[aria-selected="true"]');
      if (current) current.scrollIntoView({ block: "nearest" });
    }

    open(i) {
      this.node = i;
      this.input.value = "";
      this.previous = { query: null, node: i, matches: null };
      this.show();
      this.input.focus();
    }

    key(event) {
      if (!this.enabled || event.ctrlKey || event.metaKey || event.altKey) return;
      const typing = !this.buttons && event.target === this.input;
      const empty = this.buttons || this.input.value === "";
      if (/^[0-9]$/.test(event.key) && empty && (typing || event.target === document.body || this.buttons)) {
        const n = Number(event.key);
        event.preventDefault();
        if (n === 0) this.onSkip();
        else if (this.buttons && n <= this.labels.length) this.pick(this.labels[n - 1]);
        else if (!this.buttons && n <= this.chips.length) this.pick(this.chips[n - 1].label);
        return;
      }
      if (this.buttons || !typing) return;
      const row = this.rows[this.active];
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        const step = event.key === "ArrowDown" ? 1 : -1;
        this.active = Math.max(0, Math.min(this.rows.length - 1, this.active + step));
        this.highlight();
      } else if (event.key === "Enter") {
        event.preventDefault();
        if (row !== undefined) this.pick(this.labels[row]);
      } else if ((event.key === "ArrowRight" && this.input.selectionStart === this.input.value.length) || event.key === "Tab") {
        if (row !== undefined && this.children[row].length && row !== this.node) {
          event.preventDefault();
          this.open(row);
        } else if (event.key === "Tab") event.preventDefault();
      } else if ((event.key === "ArrowLeft" || event.key === "Backspace") && empty && this.node >= 0) {
        event.preventDefault();
        this.open(this.parent[this.node]);
      } else if (event.key === "Escape") {
        event.preventDefault();
        empty ? this.open(-1) : this.open(this.node);
      }
    }
  }

  window.Picker = Picker;
})();
