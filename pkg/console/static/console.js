// Live progress for the batch console: polls /api/batches/{id} once a
// second for every batch still running. The pages work without it.
(function () {
  "use strict";

  function poll(url, onData) {
    function tick() {
      fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (v) {
          if (v && onData(v) === false) return;
          setTimeout(tick, 1000);
        })
        .catch(function () { setTimeout(tick, 3000); });
    }
    setTimeout(tick, 1000);
  }

  function num(n) { return Number(n).toLocaleString("en-US"); }
  function chunks(v) { return v.doneChunks + " / " + (v.totalChunks < 0 ? "?" : v.totalChunks); }
  function text(root, sel, s) { var el = root.querySelector(sel); if (el) el.textContent = s; }
  function badge(el, state) { if (el) { el.textContent = state; el.className = "badge state-" + state; } }
  function bar(el, v) {
    if (!el) return;
    if (v.totalChunks >= 0 || v.terminal) el.value = Math.round(v.progress * 1000) / 10;
  }

  var live = document.getElementById("live");
  if (live && live.dataset.terminal === "false") {
    var last = "";
    poll(live.dataset.api, function (v) {
      badge(document.getElementById("state"), v.state);
      bar(document.getElementById("bar"), v);
      text(document, "#chunks", chunks(v));
      text(document, "#rows-in", num(v.rowsIn));
      text(document, "#rows-out", num(v.rowsOut));
      text(document, "#rows-rejected", num(v.rowsRejected));
      // A stage that ended or a batch that finished brings new parts of
      // the page (timeline, reasons, downloads): draw it again.
      var stages = v.stages.map(function (s) { return s.status; }).join();
      if (v.terminal || (last && stages !== last)) { location.reload(); return false; }
      last = stages;
    });
  }

  var rows = document.querySelectorAll("tr[data-running='true']");
  Array.prototype.forEach.call(rows, function (tr) {
    poll(tr.dataset.api, function (v) {
      badge(tr.querySelector(".badge"), v.state);
      bar(tr.querySelector("progress"), v);
      text(tr, ".chunks", chunks(v));
      text(tr, ".rows-in", num(v.rowsIn));
      text(tr, ".rows-out", num(v.rowsOut));
      text(tr, ".rows-rejected", num(v.rowsRejected));
      text(tr, ".delivered", v.deliverySummary || "–");
      if (v.terminal) {
        tr.dataset.running = "false";
        var p = tr.querySelector("progress");
        if (p) p.remove();
        return false;
      }
    });
  });
})();
