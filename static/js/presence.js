// Staff presence and live routing pages. On every dashboard page of an agent (or above), and
// on pages with live parts for everyone, this listens on the page's staff WebSocket
// (staff-socket.js, shared with inbox.js): the server marks an agent online while it lives
// (its ping every 25 s renews the mark), the nav's select sends
// {"type":"presence","status":"online"|"away"}, and presence.changed events for the same
// person (another tab) update the select. Elements with
// data-live-refresh="<event types>"
// are re-read from the server (the same page, parsed, the element with the same id swapped
// in) when such a staff event arrives, after a reconnect, and every 30 s. Server text is
// never inserted as HTML strings: the swapped element comes from the server's own rendering
// of this page, parsed by DOMParser (which runs no scripts).
(function () {
  "use strict";

  var SAFETY_REFRESH_MS = 30000;
  var toggle = document.getElementById("presence-toggle");
  var regions = Array.prototype.slice.call(document.querySelectorAll("[data-live-refresh][id]"));
  if ((!toggle && !regions.length) || !window.WebSocket || !window.SynteraStaffSocket) return;
  var select = document.getElementById("presence-status");
  var dot = document.getElementById("presence-dot");
  var status = document.getElementById("routing-live-status");
  var myId = toggle ? Number(toggle.getAttribute("data-user-id")) : 0;

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
  var socket = window.SynteraStaffSocket.subscribe({
    open: function () {
      if (toggle && toggle.getAttribute("data-status") !== "away") show("online");
      refresh();
    },
    event: function (frame) {
      if (frame.type === "presence.changed" && myId && Number(frame.user) === myId) show(String(frame.status));
      if (wants(frame)) refresh();
    },
    state: function (state, label) {
      live(label);
    },
  });

  if (toggle && select) {
    select.addEventListener("change", function () {
      var wanted = select.value;
      if (socket.send({ type: "presence", status: wanted })) {
        show(wanted);
      } else {
        toggle.submit(); // no socket: the form posts it (and the page reloads)
      }
    });
  }

  if (regions.length) setInterval(refresh, SAFETY_REFRESH_MS);
})();
