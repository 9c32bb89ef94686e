// genesis view: live updates of the run page from the server's event stream.
// Every value is inserted as text (textContent), never as markup; the plot is replaced by
// the server-rendered (escaped) fragment.
"use strict";
(function () {
  const body = document.body;
  const events = body.dataset.events;
  if (!events) return;
  const base = body.dataset.base;
  let lastSeq = Number(body.dataset.seq || 0);

  const short = (id) => (id.length <= 10 ? id : id.slice(0, 8) + "\u2026");
  const score = (v) => (v === null || v === undefined ? "-" : v.toFixed(4));
  const isl = (i) => (i === null || i < 0 ? "isl-none" : "isl-" + (i % 8));
  const pad = (n) => String(n).padStart(2, "0");
  const when = (t) => {
    const d = new Date(t * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  };

  function cell(row, content, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    if (content instanceof Node) td.appendChild(content); else td.textContent = content;
    row.appendChild(td);
  }
  function link(id) {
    const a = document.createElement("a");
    a.href = base + "/programs/" + encodeURIComponent(id);
    a.title = id;
    a.textContent = short(id);
    return a;
  }
  function chip(i) {
    const s = document.createElement("span");
    s.className = "chip " + isl(i);
    s.textContent = i === null || i < 0 ? "-" : String(i);
    return s;
  }
  function programRow(r) {
    const tr = document.createElement("tr");
    tr.dataset.seq = r.seq;
    tr.className = r.correct ? "ok" : "bad";
    cell(tr, String(r.seq), "num");
    cell(tr, link(r.id));
    cell(tr, String(r.generation), "num");
    cell(tr, chip(r.island));
    cell(tr, score(r.score), "num");
    cell(tr, r.correct ? "yes" : "no");
    cell(tr, String(r.children), "num");
    cell(tr, r.parent_id ? link(r.parent_id) : "-");
    cell(tr, when(r.timestamp));
    return tr;
  }
  function islandRow(i) {
    const tr = document.createElement("tr");
    tr.dataset.island = i.island;
    cell(tr, chip(i.island));
    cell(tr, String(i.programs), "num");
    cell(tr, String(i.correct), "num");
    cell(tr, score(i.best_score), "num");
    return tr;
  }
  function setField(name, value) {
    document.querySelectorAll(`[data-field="${name}"]`).forEach((e) => { e.textContent = value; });
  }

  let plotPending = false;
  function refreshPlot() {
    if (plotPending || !body.dataset.plot) return;
    plotPending = true;
    setTimeout(() => {
      fetch(body.dataset.plot, { credentials: "same-origin" })
        .then((r) => (r.ok ? r.text() : null))
        .then((html) => { if (html !== null) document.getElementById("plot").innerHTML = html; })
        .finally(() => { plotPending = false; });
    }, 300);
  }

  function apply(u) {
    setField("programs", String(u.programs));
    setField("correct", String(u.correct));
    if (u.best) {
      const a = document.getElementById("best");
      a.textContent = score(u.best.score);
      a.href = base + "/programs/" + encodeURIComponent(u.best.id);
    }
    const islands = document.querySelector("#islands tbody");
    islands.replaceChildren(...u.islands.filter((i) => i.programs > 0).map(islandRow));
    const recent = document.querySelector("#recent tbody");
    const fresh = u.new.filter((r) => r.seq > lastSeq);
    for (const r of fresh) {
      const tr = programRow(r);
      tr.classList.add("fresh");
      recent.insertBefore(tr, recent.firstChild);
    }
    while (recent.rows.length > 50) recent.deleteRow(-1);
    if (fresh.length) {
      lastSeq = Math.max(lastSeq, ...fresh.map((r) => r.seq));
      body.dataset.seq = String(lastSeq);
      refreshPlot();
    }
  }

  const source = new EventSource(events);
  const badge = document.getElementById("live");
  source.addEventListener("update", (e) => apply(JSON.parse(e.data)));
  source.onopen = () => { badge.hidden = false; };
  source.onerror = () => { badge.hidden = true; };
})();
