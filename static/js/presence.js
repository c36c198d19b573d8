// Staff presence and live routing pages. On every dashboard page of an agent (or above), and
// on pages with live parts for everyone, this keeps one staff WebSocket (/ws/staff/) open:
// the server marks an agent online while it lives (a ping every 25 s renews the mark), the
// nav's select sends {"type":"presence","status":"online"|"away"}, and presence.changed
// events for the same person (another tab) update the select. Elements with
// data-live-refresh="<event types>"
// are re-read from the server (the same page, parsed, the element with the same id swapped
// in) when such a staff event arrives, after a reconnect, and every 30 s. Server text is
// never inserted as HTML strings: the swapped element comes from the server's own rendering
// of this page, parsed by DOMParser (which runs no scripts).
(function () {
  "use strict";

  var HEARTBEAT_MS = 25000;
  var SAFETY_REFRESH_MS = 30000;
  var toggle = document.getElementById("presence-toggle");
  var regions = Array.prototype.slice.call(document.querySelectorAll("[data-live-refresh][id]"));
  if ((!toggle && !regions.length) || !window.WebSocket) return;
  var select = document.getElementById("presence-status");
  var dot = document.getElementById("presence-dot");
  var status = document.getElementById("routing-live-status");
  var myId = toggle ? Number(toggle.getAttribute("data-user-id")) : 0;
  var ws = null;
  var delay = 1000;

  function show(state) {
    if (!toggle || (state !== "online" && state !== "away" && state !== "offline")) return;
    toggle.setAttribute("data-status", state);
    if (dot) dot.className = "presence-dot " + state;
    if (select && (state === "online" || state === "away")) select.value = state;
  }

  function live(label) {
    if (status) status.textContent = label;
  }

  // --- live regions ---------------------------------------------------------------------------
  var pending = null;
  function refresh() {
    if (!regions.length || pending) return;
    pending = setTimeout(function () {
      pending = null;
      fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (r) {
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.text();
        })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html");
          regions = regions.map(function (old) {
            var next = fresh.getElementById(old.id);
            if (!next || !old.parentNode) return old;
            var adopted = document.importNode(next, true);
            old.parentNode.replaceChild(adopted, old);
            return adopted;
          });
        })
        .catch(function () {
          live("Could not refresh; retrying…");
        });
    }, 400);
  }

  function wants(frame) {
    return regions.some(function (el) {
      return (el.getAttribute("data-live-refresh") || "").split(/\s+/).indexOf(frame.type) !== -1;
    });
  }

  // --- the socket ------------------------------------------------------------------------------
  function connect() {
    try {
      ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/staff/");
    } catch (err) {
      schedule();
      return;
    }
    live("Connecting…");
    ws.onmessage = function (message) {
      var frame;
      try {
        frame = JSON.parse(message.data);
      } catch (err) {
        return;
      }
      if (!frame || typeof frame.type !== "string") return;
      if (frame.type === "hello") {
        delay = 1000;
        live("Live");
        if (toggle && toggle.getAttribute("data-status") !== "away") show("online");
        refresh();
        return;
      }
      if (frame.type === "presence.changed" && myId && Number(frame.user) === myId) show(String(frame.status));
      document.dispatchEvent(new CustomEvent("syntera:staff-event", { detail: frame }));
      if (wants(frame)) refresh();
    };
    ws.onclose = function (event) {
      ws = null;
      if (event.code === 4401 || event.code === 4403) {
        live("Your session has ended: reload the page to log in again.");
        return;
      }
      live("Reconnecting…");
      schedule();
    };
  }

  function schedule() {
    setTimeout(connect, delay + Math.random() * 500);
    delay = Math.min(delay * 2, 30000);
  }

  if (toggle && select) {
    select.addEventListener("change", function () {
      var wanted = select.value;
      if (ws && ws.readyState === 1) {
        ws.send(JSON.stringify({ type: "presence", status: wanted }));
        show(wanted);
      } else {
        toggle.submit(); // no socket: the form posts it (and the page reloads)
      }
    });
  }

  connect();
  setInterval(function () {
    if (ws && ws.readyState === 1) ws.send('{"type":"ping"}');
  }, HEARTBEAT_MS);
  if (regions.length) setInterval(refresh, SAFETY_REFRESH_MS);
})();
