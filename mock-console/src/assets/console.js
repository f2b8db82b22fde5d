// The console's only script, served from the binary (no inline script: the policy forbids it).
// Everything that comes from the server is put into the page as text, never as markup, except
// the grading fragment, which the server renders with escaping templates.
"use strict";

(function () {
  for (const a of document.querySelectorAll("[data-back]")) {
    a.addEventListener("click", (ev) => {
      if (history.length > 1) { ev.preventDefault(); history.back(); }
    });
  }
  // Each view's part runs where its elements are (the nav's page name is shared by several).
  if (document.getElementById("exchanges")) live();
  if (document.getElementById("grades")) grading();
  if (document.getElementById("report-file")) reports();

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return e;
  }

  function pretty(v) {
    return JSON.stringify(v, null, 2);
  }

  function stream(onExchange, onLagged) {
    const status = document.getElementById("status");
    const source = new EventSource("/console/api/events");
    let dropped = false;
    source.addEventListener("open", () => {
      status.textContent = "live";
      status.classList.add("on");
      // Back after a drop (the server ends long connections): read what was missed.
      if (dropped) { dropped = false; onLagged(); }
    });
    source.addEventListener("error", () => {
      dropped = true;
      status.textContent = "reconnecting…";
      status.classList.remove("on");
    });
    source.addEventListener("exchange", (ev) => onExchange(JSON.parse(ev.data)));
    source.addEventListener("lagged", () => onLagged());
    return source;
  }

  function live() {
    const body = document.querySelector("#exchanges tbody");
    const empty = document.getElementById("empty");
    const filters = {
      scope: document.getElementById("f-scope"),
      account: document.getElementById("f-account"),
      endpoint: document.getElementById("f-endpoint"),
      faults: document.getElementById("f-faults"),
    };
    const wanted = new URLSearchParams(location.search).get("scope");
    if (wanted) {
      if (![...filters.scope.options].some((o) => o.value === wanted)) filters.scope.append(el("option", { value: wanted }, wanted));
      filters.scope.value = wanted;
    }
    const seen = new Map();
    const byNonce = new Map();
    let last = 0;

    function visible(x) {
      if (filters.scope.value && x.scope !== filters.scope.value) return false;
      if (filters.endpoint.value && x.endpoint !== filters.endpoint.value) return false;
      if (filters.faults.checked && !x.fault) return false;
      const acct = filters.account.value.trim();
      if (acct && !(x.account || "").includes(acct)) return false;
      return true;
    }

    function refilter() {
      for (const [, entry] of seen) {
        const show = visible(entry.x);
        entry.row.hidden = !show;
        if (entry.detail) entry.detail.hidden = !show || !entry.open;
      }
    }
    for (const f of Object.values(filters)) f.addEventListener("input", refilter);

    function detail(x) {
      const d = el("td", { colspan: "8" });
      const from = x.nonce_sent ? byNonce.get(x.nonce_sent) : undefined;
      d.append(
        el("p", {},
          el("a", { href: "/console/exchanges/" + x.seq }, "Open #" + x.seq), " · ",
          el("code", {}, x.method + " " + x.url)),
        el("h4", {}, "Nonce chain"),
        el("p", {}, "sent ", el("code", {}, x.nonce_sent || "none"),
          from !== undefined ? el("span", {}, " (returned by #" + from + ")") : null,
          " · returned ", el("code", {}, x.nonce_returned || "none")),
        el("h4", {}, "Timing"),
        el("p", {}, x.time + " · " + x.elapsed_ms + " ms after the server started · " +
          (x.duration_us !== undefined ? "answered in " + (x.duration_us / 1000).toFixed(1) + " ms" : "no answer")),
      );
      if (x.fault) d.append(el("p", { class: "fault" }, "Injected fault: " + x.fault));
      if (x.jws) {
        d.append(el("h4", {}, "Protected header"), el("pre", {}, pretty(x.jws.protected)));
        d.append(el("h4", {}, "Payload"), el("pre", {}, x.jws.post_as_get ? "(empty: POST-as-GET)" : pretty(x.jws.payload)));
      }
      d.append(el("h4", {}, "Response " + x.status), el("pre", {}, pretty(x.response_headers)));
      if (x.problem) d.append(el("h4", {}, "Problem document"), el("pre", { class: "problem" }, pretty(x.problem)));
      if (x.response_body) d.append(el("h4", {}, "Response body"), el("pre", {}, pretty(x.response_body)));
      return el("tr", { class: "detail" }, d);
    }

    function add(x) {
      if (seen.has(x.seq)) return;
      last = Math.max(last, x.seq);
      if (x.nonce_returned) byNonce.set(x.nonce_returned, x.seq);
      const problem = x.problem ? x.problem.type.replace("urn:ietf:params:acme:error:", "") : "";
      const cls = ["row", x.status >= 400 || x.status === 0 ? "err" : "ok"];
      if (x.fault) cls.push("injected");
      const row = el("tr", { class: cls.join(" "), "data-seq": String(x.seq), "data-scope": x.scope },
        el("td", {}, String(x.seq)),
        el("td", {}, (x.time || "").replace("T", " ").replace(/\.\d+Z$/, "Z")),
        el("td", {}, el("code", {}, x.scope)),
        el("td", {}, x.method),
        el("td", {}, x.endpoint),
        el("td", { class: "st" }, String(x.status)),
        el("td", {}, x.fault ? el("span", { class: "fault" }, "injected " + x.fault + " ") : null, problem,
          x.problem && x.problem.detail ? el("span", { class: "hint" }, ": " + x.problem.detail) : null),
        el("td", {}, String(x.elapsed_ms)));
      const entry = { x, row, detail: null, open: false };
      row.addEventListener("click", () => {
        entry.open = !entry.open;
        if (!entry.detail) { entry.detail = detail(x); row.after(entry.detail); }
        entry.detail.hidden = !entry.open;
      });
      seen.set(x.seq, entry);
      row.hidden = !visible(x);
      // Newest first: the stream delivers in order, a catch-up may not.
      let before = null;
      for (const r of body.children) {
        if (r.dataset.seq && Number(r.dataset.seq) < x.seq) { before = r; break; }
      }
      body.insertBefore(row, before);
      empty.hidden = true;
    }

    function catchUp() {
      return fetch("/console/api/exchanges?since=" + last, { credentials: "same-origin" })
        .then((r) => r.ok ? r.json() : [])
        .then((list) => list.forEach(add));
    }
    // Subscribe first, then read what was recorded before: nothing falls in between.
    stream(add, catchUp);
    catchUp();
  }

  function grading() {
    const target = document.getElementById("grades");
    let timer = null;
    function refresh() {
      timer = null;
      fetch("/console/grading/fragment", { credentials: "same-origin" })
        .then((r) => r.ok ? r.text() : null)
        .then((html) => { if (html !== null) target.innerHTML = html; });
    }
    const later = () => { if (timer === null) timer = setTimeout(refresh, 250); };
    stream(later, later);
  }

  function reports() {
    const file = document.getElementById("report-file");
    const text = document.getElementById("report-text");
    if (!file || !text) return;
    file.addEventListener("change", () => {
      const f = file.files[0];
      if (!f) return;
      f.text().then((t) => { text.value = t; });
    });
  }
})();
