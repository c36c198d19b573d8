// Moves the progress bars of a knowledge base's sources while any of them is working.
(function () {
  "use strict";
  var table = document.getElementById("sources");
  if (!table) return;
  var url = table.getAttribute("data-status-url");
  var delay = 1000;

  function update(rows) {
    var busy = false;
    rows.forEach(function (row) {
      var tr = table.querySelector('tr[data-source-id="' + row.id + '"]');
      if (!tr) return;
      tr.querySelector("progress").value = row.progress;
      tr.querySelector(".percent").textContent = row.progress + "%";
      var badge = tr.querySelector(".badge");
      badge.textContent = row.status;
      badge.className = "badge " + row.status;
      tr.querySelector(".reason").textContent = row.error || "";
      tr.querySelector(".chunks").textContent = row.chunk_count;
      if (row.status === "queued" || row.status === "processing") busy = true;
    });
    return busy;
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (data) {
        delay = update(data.sources) ? 1000 : 5000;
      })
      .catch(function () { delay = Math.min(delay * 2, 30000); })
      .then(function () { setTimeout(poll, delay); });
  }
  poll();
})();
