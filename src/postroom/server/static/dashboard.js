// postroom dashboard: confirm destructive forms; poll live depths and rates;
// redraw the charts (rendered on the server) after each sampling step.
"use strict";

document.querySelectorAll("form[data-confirm]").forEach((form) => {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
});

const table = document.getElementById("queues");
if (table) {
  let previous = null;
  const fmtAge = (s) => (s === null ? "–" : `${s.toFixed(1)} s`);
  const fmtRate = (r) => (r === null ? "–" : r.toFixed(1));

  const render = (data, rates) => {
    const body = table.tBodies[0];
    const known = new Set();
    for (const q of data.queues) {
      known.add(q.queue);
      let row = body.querySelector(`tr[data-queue="${CSS.escape(q.queue)}"]`);
      if (!row) {
        body.querySelector("tr.empty")?.remove();
        row = body.insertRow();
        row.dataset.queue = q.queue;
        const link = document.createElement("a");
        link.href = `/ui/queues/${encodeURIComponent(q.queue)}`;
        link.textContent = q.queue;
        row.insertCell().append(link);
        for (const f of ["ready", "delayed", "in_flight", "dead", "oldest_age", "sent_rate", "acked_rate"]) {
          const cell = row.insertCell();
          cell.className = "n";
          cell.dataset.field = f;
        }
      }
      const set = (f, v) => { row.querySelector(`[data-field="${f}"]`).textContent = v; };
      set("ready", q.ready); set("delayed", q.delayed); set("in_flight", q.in_flight);
      set("dead", q.dead); set("oldest_age", fmtAge(q.oldest_age));
      row.querySelector('[data-field="dead"]').classList.toggle("bad", q.dead > 0);
      const r = rates.get(q.queue) || { sent: null, acked: null };
      set("sent_rate", fmtRate(r.sent)); set("acked_rate", fmtRate(r.acked));
    }
    for (const row of body.querySelectorAll("tr[data-queue]")) {
      if (!known.has(row.dataset.queue)) row.remove();
    }
  };

  const poll = async () => {
    try {
      const resp = await fetch("/ui/overview.json", { credentials: "same-origin" });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      const data = await resp.json();
      const now = performance.now();
      const rates = new Map();
      if (previous) {
        const dt = (now - previous.at) / 1000;
        for (const q of data.queues) {
          const before = previous.counters.get(q.queue);
          if (before && dt > 0) {
            rates.set(q.queue, {
              sent: (q.counters.sent - before.sent) / dt,
              acked: (q.counters.acked - before.acked) / dt,
            });
          }
        }
      }
      previous = { at: now, counters: new Map(data.queues.map((q) => [q.queue, q.counters])) };
      render(data, rates);
      document.getElementById("updated").textContent =
        `Live: updated ${new Date().toLocaleTimeString()}, every 2 seconds.`;
    } catch (err) {
      document.getElementById("updated").textContent = `Live update failed: ${err.message}`;
    }
  };
  poll();
  setInterval(poll, 2000);
}

const charts = document.getElementById("charts");
if (charts) {
  const redraw = async () => {
    try {
      const resp = await fetch(charts.dataset.src, { credentials: "same-origin" });
      if (resp.ok) charts.innerHTML = await resp.text();
    } catch (err) {
      // The next step tries again; the charts drawn last stay.
    }
  };
  setInterval(redraw, 10000);
}
