// graphtape timeline. Reads the view model (embedded in the page, or from the ui's JSON
// endpoints), draws only the arrows on screen, and keeps recorded text out of innerHTML.
"use strict";
(function () {
  const ROW = 26;
  const LANE_X = [0.12, 0.5, 0.88];
  const KIND_MARK = { request: "→ req", response: "⇠ resp", notification: "⇐ notif", ack: "⇢ ack" };
  const $ = (id) => document.getElementById(id);
  const api = document.body.dataset.api || null;

  let model = null;
  let visible = [];      // indexes into model.events, after filter and search
  let ys = [];           // top of each visible event, px
  let cur = -1;          // position in `visible` of the keyboard cursor
  let selectedCall = null;
  let openKey = null;    // "seq:kind" of the event whose exchange is open
  const rows = new Map(); // key -> element currently in the DOM
  let zoom = 1;

  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };
  const key = (e) => e.seq + ":" + e.kind;
  const ms = (us) => (us === null || us === undefined) ? "-" : (us / 1000).toFixed(3) + " ms";

  function callColor(call) {
    if (!call) return "#556";
    const i = model.calls.findIndex((c) => c.id === call);
    const hue = (i * 137.5 + 210) % 360;
    return "hsl(" + hue.toFixed(0) + ", 62%, 40%)";
  }

  function markText(ev) {
    const out = [];
    for (const i of ev.findings) {
      const f = model.findings[i];
      out.push({ cls: f.severity, text: "⚠ " + f.rule });
    }
    for (const i of ev.divergences) out.push({ cls: "divergence", text: "✖ " + model.divergences[i].kind });
    return out;
  }

  // ---- filtering and layout ---------------------------------------------------------

  function recompute() {
    const call = $("call-filter").value;
    const q = $("search").value.trim().toLowerCase();
    visible = [];
    model.events.forEach((ev, i) => {
      if (call && ev.call !== call) return;
      if (q) {
        const hay = (ev.seq + " " + ev.kind + " " + ev.label + " " + (ev.call || "")).toLowerCase();
        if (!hay.includes(q)) return;
      }
      visible.push(i);
    });
    layout();
  }

  function layout() {
    const time = $("scale").value === "time";
    ys = new Array(visible.length);
    if (time && visible.length > 1) {
      const t0 = model.events[visible[0]].at_us;
      const span = Math.max(1, model.events[visible[visible.length - 1]].at_us - t0);
      // On average one row per event at 100%, so both scales start the same height.
      const perUs = (visible.length * ROW) / span * zoom;
      visible.forEach((vi, n) => { ys[n] = (model.events[vi].at_us - t0) * perUs; });
    } else {
      visible.forEach((_, n) => { ys[n] = n * ROW * Math.max(1, zoom); });
    }
    const height = visible.length ? ys[ys.length - 1] + ROW * 2 : 0;
    $("canvas").style.height = height + "px";
    $("count").textContent = visible.length + " of " + model.events.length + " events";
    $("zoom-level").textContent = Math.round(zoom * 100) + "%";
    for (const r of rows.values()) r.remove();
    rows.clear();
    if (cur >= visible.length) cur = visible.length - 1;
    render();
  }

  /** First visible position whose top is at or below `y`. */
  function lowerBound(y) {
    let lo = 0, hi = ys.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (ys[mid] < y) lo = mid + 1; else hi = mid; }
    return lo;
  }

  function render() {
    const sc = $("scroller");
    const top = sc.scrollTop - ROW * 4, bottom = sc.scrollTop + sc.clientHeight + ROW * 4;
    const from = lowerBound(top), to = lowerBound(bottom);
    const want = new Set();
    const canvas = $("canvas");
    for (let n = from; n < to; n++) {
      const ev = model.events[visible[n]];
      const k = key(ev);
      want.add(k);
      let row = rows.get(k);
      if (!row) { row = drawEvent(ev, n); rows.set(k, row); canvas.appendChild(row); }
      row.style.top = ys[n] + "px";
      row.dataset.pos = n;
      row.classList.toggle("cur", n === cur);
      row.classList.toggle("dim", selectedCall !== null && ev.call !== selectedCall);
    }
    for (const [k, row] of rows) if (!want.has(k)) { row.remove(); rows.delete(k); }
  }

  function drawEvent(ev) {
    const row = el("div", "ev " + ev.kind);
    row.dataset.seq = ev.seq;
    row.dataset.kind = ev.kind;
    row.dataset.call = ev.call || "";
    row.tabIndex = -1;
    row.setAttribute("role", "button");
    const marks = markText(ev);
    if (ev.failed) row.classList.add("failed");
    if (marks.length) {
      row.classList.add("marked");
      row.dataset.findings = ev.findings.map((i) => model.findings[i].rule).join(" ");
      if (ev.divergences.length) row.dataset.divergences = ev.divergences.map((i) => model.divergences[i].kind).join(" ");
    }
    row.style.setProperty("--c", callColor(ev.call));
    row.appendChild(el("span", "seq", "#" + ev.seq));
    const track = el("div", "track");
    track.style.cssText = "position:absolute;left:var(--seq);right:0;top:0;bottom:0";
    const a = LANE_X[ev.from], b = LANE_X[ev.to];
    const left = Math.min(a, b), width = Math.abs(a - b);
    const line = el("div", "line " + (b > a ? "ltr" : "rtl"));
    line.style.left = (left * 100) + "%";
    line.style.width = (width * 100) + "%";
    line.appendChild(el("span", "head", b > a ? "▶" : "◀"));
    if (Math.min(ev.from, ev.to) < 1 && Math.max(ev.from, ev.to) > 1) {
      const hop = el("span", "hop");
      hop.style.left = ((LANE_X[1] - left) / width * 100) + "%";
      line.appendChild(hop);
    }
    track.appendChild(line);
    const label = el("div", "label");
    label.style.left = (left * 100 + 1) + "%";
    label.style.maxWidth = Math.max(width * 100 - 2, 30) + "%";
    label.appendChild(el("span", "k", (ev.failed ? "✖ " : "") + KIND_MARK[ev.kind]));
    label.appendChild(el("span", "t", ev.label));
    for (const m of marks) label.appendChild(el("span", "mark " + m.cls, m.text));
    track.appendChild(label);
    row.appendChild(track);
    const aria = "seq " + ev.seq + " " + ev.kind + " " + model.lanes[ev.from] + " to " + model.lanes[ev.to] + ": " + ev.label +
      marks.map((m) => ", " + m.text.slice(2)).join("");
    row.setAttribute("aria-label", aria);
    row.title = aria;
    return row;
  }

  // ---- cursor, selection, detail ----------------------------------------------------

  function moveTo(n, open) {
    if (!visible.length) return;
    cur = Math.max(0, Math.min(visible.length - 1, n));
    const sc = $("scroller");
    const y = ys[cur];
    if (y < sc.scrollTop) sc.scrollTop = y;
    else if (y + ROW > sc.scrollTop + sc.clientHeight) sc.scrollTop = y + ROW - sc.clientHeight;
    render();
    const ev = model.events[visible[cur]];
    const row = rows.get(key(ev));
    if (row) row.focus({ preventScroll: true });
    if (open) openDetail(ev);
  }

  function positionOf(seq, kind) {
    return visible.findIndex((vi) => model.events[vi].seq === seq && (!kind || model.events[vi].kind === kind));
  }

  async function exchange(seq) {
    if (model.exchanges.length) return model.exchanges.find((x) => x.seq === seq);
    const r = await fetch(api + "/exchanges/" + seq);
    if (!r.ok) throw new Error("exchange " + seq + ": HTTP " + r.status);
    return r.json();
  }

  async function openDetail(ev) {
    selectedCall = ev.call || null;
    openKey = key(ev);
    render();
    const x = await exchange(ev.seq);
    const d = $("detail");
    d.replaceChildren();
    d.hidden = false;
    d.dataset.seq = ev.seq;
    const close = el("button", "close", "✕ close (Esc)");
    close.onclick = closeDetail;
    d.appendChild(close);
    if (!x) { d.appendChild(el("p", "empty", "exchange " + ev.seq + " not found")); return; }
    const q = x.query ? "?" + x.query : "";
    d.appendChild(el("h2", null, "#" + x.seq + " " + x.method + " " + x.path + q + " " + x.version));
    d.appendChild(el("div", "meta", x.direction + (x.call ? " · call " + x.call : "") +
      (x.operation ? " · operation " + x.operation : "") + " · " + x.wall_start));
    for (const f of findingsOf(x.seq)) {
      const p = el("p", null);
      p.appendChild(el("span", "mark " + f.severity, "⚠ " + f.rule));
      p.appendChild(document.createTextNode(" " + f.message + " "));
      p.appendChild(el("span", "why", "(" + f.explanation + ")"));
      d.appendChild(p);
    }
    for (const v of model.divergences.filter((v) => v.seq === x.seq)) {
      const p = el("p", null);
      p.appendChild(el("span", "mark divergence", "✖ " + v.kind));
      p.appendChild(document.createTextNode(" " + v.summary));
      d.appendChild(p);
    }
    section(d, "Request headers", table(x.request_headers));
    body(d, "Request body", x.request_body);
    if (x.forwarded.length) {
      section(d, "Forwarded body: changed by graphtape",
        table(x.forwarded.map((c) => [c.path || "(body)", c.from + " -> " + c.to])));
    }
    section(d, "Target", el("div", null, x.target || "(not forwarded: graphtape answered)"));
    section(d, "Response", el("div", null, x.status === null ? "no response" : "status " + x.status));
    if (x.response_headers.length) section(d, "Response headers", table(x.response_headers));
    if (x.response_body) body(d, "Response body", x.response_body);
    section(d, "Timings (from the session start)", table([
      ["request start", ms(x.request_start_us)], ["request end", ms(x.request_end_us)],
      ["response start", ms(x.response_start_us)], ["response end", ms(x.response_end_us)]]));
    if (x.error) section(d, "Error", el("pre", "error", x.error));
    x.notifications.forEach((n, i) => {
      section(d, "Notification " + (i + 1) + ": " + (n.change_type || "?") + " " + (n.resource || ""),
        el("pre", "resource-data", JSON.stringify(n.resource_data, null, 2)));
    });
  }

  function findingsOf(seq) { return model.findings.filter((f) => f.seqs.includes(seq)); }
  function section(d, title, content) { d.appendChild(el("h2", null, title)); d.appendChild(content); }
  function table(pairs) {
    const t = el("table");
    for (const [k, v] of pairs) { const tr = el("tr"); tr.appendChild(el("td", null, k)); tr.appendChild(el("td", null, v)); t.appendChild(tr); }
    return t;
  }
  function body(d, title, b) {
    let what = b.kind + ", " + b.length + " bytes";
    if (b.encoding) what += ", " + b.encoding + "-decoded";
    if (b.truncated) what += ", stored truncated";
    d.appendChild(el("h2", null, title + " (" + what + ")"));
    if (b.kind !== "empty") d.appendChild(el("pre", "body " + b.kind, b.text));
  }

  function closeDetail() {
    $("detail").hidden = true;
    selectedCall = null;
    openKey = null;
    render();
    const ev = cur >= 0 ? model.events[visible[cur]] : null;
    const row = ev && rows.get(key(ev));
    if (row) row.focus({ preventScroll: true });
  }

  // ---- findings and divergences list ------------------------------------------------

  function drawMarks() {
    const box = $("marks");
    box.replaceChildren();
    const link = (seq, kind) => {
      const a = el("a", "seq-link", "#" + seq);
      a.href = "#";
      a.onclick = (e) => { e.preventDefault(); const n = positionOf(seq, kind); if (n >= 0) moveTo(n, true); };
      return a;
    };
    box.appendChild(el("h2", null, model.findings.length + " check findings"));
    const ul = el("ul", "findings");
    for (const f of model.findings) {
      const li = el("li");
      li.appendChild(el("span", "mark " + f.severity, "⚠ " + f.severity + " " + f.rule));
      li.appendChild(document.createTextNode(" "));
      f.seqs.forEach((s) => { li.appendChild(link(s)); li.appendChild(document.createTextNode(" ")); });
      li.appendChild(document.createTextNode(f.message + " "));
      li.appendChild(el("span", "why", "— " + f.explanation));
      ul.appendChild(li);
    }
    box.appendChild(ul);
    if (model.session.replay_of) {
      box.appendChild(el("h2", null, model.divergences.length + " divergences from " + model.session.replay_of));
      const dl = el("ul", "divergences");
      for (const v of model.divergences) {
        const li = el("li");
        li.appendChild(el("span", "mark divergence", "✖ " + v.kind));
        li.appendChild(document.createTextNode(" "));
        if (v.seq !== null) li.appendChild(link(v.seq));
        if (v.recorded_seq !== null) li.appendChild(document.createTextNode(" recorded #" + v.recorded_seq));
        li.appendChild(document.createTextNode(" " + v.summary));
        dl.appendChild(li);
      }
      box.appendChild(dl);
    }
  }

  // ---- start-up ---------------------------------------------------------------------

  function setModel(m) {
    const first = model === null;
    const sc = $("scroller");
    const atBottom = !first && sc.scrollTop + sc.clientHeight >= sc.scrollHeight - ROW;
    const keep = cur >= 0 && model ? key(model.events[visible[cur]]) : null;
    model = m;
    $("session-name").textContent = m.session.name;
    $("session-sub").textContent = " started " + m.session.started_at +
      (m.session.replay_of ? " · replay of " + m.session.replay_of : "");
    const filter = $("call-filter");
    const chosen = filter.value;
    filter.replaceChildren(el("option", null, "all calls"));
    filter.firstChild.value = "";
    for (const c of m.calls) {
      const o = el("option", null, c.raw);
      o.value = c.id;
      o.style.color = callColor(c.id);
      filter.appendChild(o);
    }
    filter.value = chosen;
    const lanes = $("lanes");
    lanes.replaceChildren();
    m.lanes.forEach((name, i) => {
      const s = el("span", null, name);
      s.style.left = "calc(var(--seq) + (100% - var(--seq)) * " + LANE_X[i] + ")";
      lanes.appendChild(s);
    });
    const canvas = $("canvas");
    canvas.querySelectorAll(".lifeline").forEach((l) => l.remove());
    LANE_X.forEach((x) => {
      const l = el("div", "lifeline");
      l.style.left = "calc(var(--seq) + (100% - var(--seq)) * " + x + ")";
      canvas.appendChild(l);
    });
    drawMarks();
    recompute();
    if (keep) cur = visible.findIndex((vi) => key(model.events[vi]) === keep);
    if (atBottom) sc.scrollTop = sc.scrollHeight;
    render();
    document.body.dataset.events = m.events.length;
    // Milliseconds from navigation to the first screen drawn (the load benchmark reads it).
    if (first) document.body.dataset.readyAt = performance.now().toFixed(1);
    document.body.dataset.ready = "1";
  }

  function wire() {
    $("scroller").addEventListener("scroll", () => requestAnimationFrame(render), { passive: true });
    window.addEventListener("resize", () => render());
    $("call-filter").addEventListener("change", () => { cur = -1; recompute(); });
    $("search").addEventListener("input", () => { cur = -1; recompute(); });
    $("scale").addEventListener("change", layout);
    $("zoom-in").addEventListener("click", () => { zoom = Math.min(zoom * 1.5, 50); layout(); });
    $("zoom-out").addEventListener("click", () => { zoom = Math.max(zoom / 1.5, 0.05); layout(); });
    $("canvas").addEventListener("click", (e) => {
      const row = e.target.closest(".ev");
      if (!row) return;
      moveTo(Number(row.dataset.pos), true);
    });
    document.addEventListener("keydown", (e) => {
      const inField = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement;
      if (e.key === "/" && !inField) { e.preventDefault(); $("search").focus(); $("search").select(); return; }
      if (e.key === "Escape") {
        if (inField) { e.target.blur(); moveTo(Math.max(cur, 0), false); } else closeDetail();
        return;
      }
      if (inField && e.key !== "Enter" && e.key !== "ArrowDown") return;
      const page = Math.max(1, Math.floor($("scroller").clientHeight / ROW) - 1);
      const moves = { ArrowDown: 1, j: 1, ArrowUp: -1, k: -1, PageDown: page, PageUp: -page };
      if (e.key in moves) { e.preventDefault(); if (inField) e.target.blur(); moveTo(cur < 0 ? 0 : cur + moves[e.key], openKey !== null); }
      else if (e.key === "Home") { e.preventDefault(); moveTo(0, false); }
      else if (e.key === "End") { e.preventDefault(); moveTo(visible.length - 1, false); }
      else if (e.key === "Enter") { e.preventDefault(); if (inField) e.target.blur(); moveTo(cur < 0 ? 0 : cur, true); }
      else if (e.key === "+" || e.key === "=") { zoom = Math.min(zoom * 1.5, 50); layout(); }
      else if (e.key === "-") { zoom = Math.max(zoom / 1.5, 0.05); layout(); }
    });
  }

  /** The ui: refetch the model when the session's stamp changes (new exchanges). */
  async function follow() {
    let stamp = null;
    const live = $("live");
    for (;;) {
      try {
        const r = await fetch(api + "/stamp", { cache: "no-store" });
        if (r.ok) {
          const s = await r.text();
          if (s !== stamp) {
            const m = await fetch(api + "/model", { cache: "no-store" });
            if (m.ok) { setModel(await m.json()); stamp = s; }
          }
          live.textContent = "live";
          live.className = "on";
        }
      } catch (err) {
        live.textContent = "disconnected";
        live.className = "";
      }
      await new Promise((res) => setTimeout(res, 400));
    }
  }

  wire();
  if (api) {
    follow();
  } else {
    setModel(JSON.parse($("model").textContent));
  }
})();
