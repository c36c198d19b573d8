// The dashboard's one staff WebSocket (/ws/staff/) per page. Every script with live parts
// (presence.js, inbox.js) subscribes to it instead of opening its own; the socket is opened
// when the first one subscribes, so a page without live parts opens none.
//
//   var socket = SynteraStaffSocket.subscribe({
//     open: function (hello) {},         // after every (re)connect, with the server's hello
//     event: function (frame) {},        // each server event (not hello, pong or error frames)
//     state: function (state, label) {}  // "connecting" | "open" | "closed", and words for people
//   });
//   socket.send({ type: "typing", conversation: 7 })  // false while the socket is not open
//
// A ping every 25 s keeps the connection (and the agent's presence) alive. It reconnects with
// a growing delay (1 s to 30 s) and stops on 4401/4403: the session ended or the person was
// removed, and only reloading the page (and logging in) helps. Frames are documented in
// docs/subsystems/realtime.md.
(function () {
  "use strict";

  if (window.SynteraStaffSocket) return;

  var HEARTBEAT_MS = 25000;
  var subscribers = [];
  var ws = null;
  var delay = 1000;
  var started = false;
  var current = ["connecting", "Connecting…"];
  var hello = null; // the server's hello while the socket is open

  function each(name, args) {
    subscribers.forEach(function (subscriber) {
      if (typeof subscriber[name] !== "function") return;
      try {
        subscriber[name].apply(null, args);
      } catch (err) {
        // One script's failure does not stop the others from hearing the socket.
        if (window.console) window.console.error(err);
      }
    });
  }

  function setState(state, label) {
    current = [state, label];
    each("state", current);
  }

  function schedule() {
    setTimeout(connect, delay + Math.random() * 500);
    delay = Math.min(delay * 2, 30000);
  }

  function connect() {
    setState("connecting", "Connecting…");
    try {
      ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/staff/");
    } catch (err) {
      schedule();
      return;
    }
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
        hello = frame;
        setState("open", "Live");
        each("open", [frame]);
      } else if (frame.type !== "pong" && frame.type !== "error") {
        each("event", [frame]);
      }
    };
    ws.onclose = function (event) {
      ws = null;
      hello = null;
      if (event.code === 4401 || event.code === 4403) {
        setState("closed", "Your session has ended: reload the page to log in again.");
        return;
      }
      setState("closed", "Reconnecting…");
      schedule();
    };
  }

  function send(frame) {
    if (!ws || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  window.SynteraStaffSocket = {
    subscribe: function (subscriber) {
      subscribers.push(subscriber);
      if (!started) {
        started = true;
        connect();
        setInterval(function () {
          send({ type: "ping" });
        }, HEARTBEAT_MS);
      } else {
        // A late subscriber hears where the socket is, and runs its `open` if it is open.
        if (typeof subscriber.state === "function") subscriber.state(current[0], current[1]);
        if (hello && typeof subscriber.open === "function") subscriber.open(hello);
      }
      return { send: send };
    },
  };
})();
