/*
 * Syntera chat widget: one dependency-free file, embedded on a customer's site with
 *
 *   <script src="https://<workspace host>/static/widget/syntera.js" data-key="wk_..." async></script>
 *
 * It speaks the widget WebSocket protocol of BRIEF.md ("Widget WebSocket"; frames in
 * apps/conversations/consumers.py) with the server the script itself was loaded from.
 *
 * What the visitor can rely on:
 * - Nothing typed is lost. Every message gets a client_id and waits in an outbox (kept in
 *   localStorage per widget key) until the server's `ack`, which comes only after the message
 *   is stored. After any reconnect the widget sends `resume` with the highest seq it has shown,
 *   then sends the outbox again with the same client_ids; the server stores each id once.
 * - The transcript is ordered by seq and never shows a message twice.
 * - Server and visitor text is only ever set with textContent; only http(s) URLs become links.
 *
 * The UI lives in a shadow root: the page's styles do not reach in, ours do not leak out.
 * Hosts get `window.Syntera = {open(), close(), send(text), identify(identity), logout()}`
 * and a `syntera:ready` event.
 *
 * Signed-in users: the host site's server signs its user's id (or email) with the inbox's
 * identity secret, and the page hands the widget {user_id, email, name, hash}, as attributes
 * (data-user-id, data-user-email, data-user-name, data-user-hash) or with
 * `Syntera.identify(...)`. Every hello carries it; the server verifies it (docs/api.md,
 * "Identity verification"). It is never stored: it comes from the page on every load.
 * `Syntera.logout()` forgets this browser's conversation when the user signs out.
 */
(function () {
  "use strict";

  var SCRIPT_PATH = "/static/widget/syntera.js";
  var PING_EVERY = 25000; // ms between pings on an open socket
  var PONG_WITHIN = 10000; // no frame this long after a ping: the socket is dead
  var BACKOFF_BASE = 1000;
  var BACKOFF_CAP = 30000;
  var RATE_LIMIT_RETRY = 5000;
  var REFUSED_RETRY = 60000; // closed with 4429 (too many connections or new chats from here)
  var STREAM_IDLE = 45000; // a streamed reply with no final message after this is dropped
  var TYPING_FOR = 8000;
  var TYPING_SEND_EVERY = 3000;
  var MAX_CHARS = 4000; // WIDGET_MAX_MESSAGE_CHARS by default; the server has the last word
  var PRE_CHAT_FIELDS = {
    name: { label: "Name", type: "text", autocomplete: "name" },
    email: { label: "Email", type: "email", autocomplete: "email" },
    phone: { label: "Phone", type: "tel", autocomplete: "tel" },
  };
  var ROLE_LABEL = { visitor: "You", ai: "Assistant", agent: "Agent", system: "" };

  if (window.Syntera && window.Syntera.__syntera) return; // the snippet was pasted twice

  var script = findScript();
  if (!script) return;
  var KEY = script.getAttribute("data-key") || "";
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(KEY)) {
    warn("the script tag needs a data-key attribute with the inbox's widget key.");
    return;
  }
  var identity = readIdentity({
    user_id: script.getAttribute("data-user-id"),
    email: script.getAttribute("data-user-email"),
    name: script.getAttribute("data-user-name"),
    hash: script.getAttribute("data-user-hash"),
  });
  var ORIGIN = new URL(script.src, location.href).origin;
  var WS_BASE = ORIGIN.replace(/^http/, "ws") + "/ws/widget/?key=" + encodeURIComponent(KEY);
  var STORE_KEY = "syntera:" + KEY;

  // --- persisted state (per widget key) -------------------------------------------------
  // token: the visitor's key to their conversation; outbox: unacknowledged messages;
  // settings: the last widget settings seen (so the launcher looks right before a session);
  // contactGiven: the pre-chat form was filled; rated: {c: conversation, seq} last rated;
  // feedback: the visitor's verdicts on AI answers (see renderFeedback).
  var memoryStore = {};
  var persist = loadState();
  persist.outbox = (Array.isArray(persist.outbox) ? persist.outbox : []).filter(function (item) {
    return item && typeof item.client_id === "string" && typeof item.text === "string";
  });

  function loadState() {
    try {
      var raw = window.localStorage.getItem(STORE_KEY);
      var value = raw ? JSON.parse(raw) : {};
      return value && typeof value === "object" ? value : {};
    } catch (e) {
      return memoryStore; // storage blocked (sandboxed frame, privacy mode): this page only
    }
  }

  function saveState() {
    try {
      window.localStorage.setItem(STORE_KEY, JSON.stringify(persist));
    } catch (e) {
      memoryStore = persist;
    }
  }

  // --- connection state -------------------------------------------------------------------
  var ws = null; // the current socket; events of any older socket are ignored
  var ready = false; // a `session` arrived on the current socket
  var fatal = ""; // the server refused this key or origin: no more reconnects
  var attempt = 0;
  var retryTimer = null;
  var pingTimer = null;
  var pongTimer = null;
  var flushTimer = null;
  var wanted = false; // the visitor opened the chat, or has a conversation to follow
  var pendingContact = null; // pre-chat answers to send with the next hello (new conversation)
  var pendingRating = null;
  var lastTypingSent = 0;

  // --- transcript state -----------------------------------------------------------------
  var conversationId = null;
  var status = "open";
  var handoff = "bot";
  var lastAgent = "";
  var highest = 0; // highest seq shown
  var lastSeq = 0; // highest seq the server has told us about
  var baseline = -1; // last_seq of the first session: later messages count as unread
  var bySeq = {}; // seq -> <li>
  var pending = {}; // client_id -> <li> of a message waiting for its ack
  var streams = {}; // reply_to -> {li, bubble, text, deltas, timer}
  var resumedFrom = {}; // after_seq values already asked for on this socket (gap filling)
  var unread = 0;
  var isOpen = false;
  var settings = normalizeSettings(persist.settings || {});
  var ui = null; // the widget's elements, built by start() once every definition below exists


  // ======================================================================================
  // Helpers
  // ======================================================================================

  function findScript() {
    var current = document.currentScript;
    if (current && current.src && current.getAttribute("data-key")) return current;
    var scripts = document.querySelectorAll("script[data-key]");
    for (var i = 0; i < scripts.length; i++) {
      var src = (scripts[i].src || "").split(/[?#]/)[0];
      if (src.slice(-SCRIPT_PATH.length) === SCRIPT_PATH) return scripts[i];
    }
    return null;
  }

  function warn(text) {
    if (window.console && console.warn) console.warn("Syntera widget: " + text);
  }

  function readIdentity(raw) {
    // {user_id?, email?, name?, hash} as strings, or null when there is none to send.
    if (!raw || typeof raw !== "object") return null;
    var out = {};
    ["user_id", "email", "name", "hash"].forEach(function (key) {
      var value = raw[key];
      if (value !== null && value !== undefined && String(value) !== "") out[key] = String(value);
    });
    if (!out.hash || !(out.user_id || out.email)) {
      if (out.hash || out.user_id || out.email) warn("an identity needs a hash and a user_id or an email.");
      return null;
    }
    return out;
  }

  function uuid() {
    var c = window.crypto;
    if (c && typeof c.randomUUID === "function") {
      try {
        return c.randomUUID(); // secure contexts only
      } catch (e) {
        /* fall through */
      }
    }
    var bytes = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(bytes);
    else for (var i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = [];
    for (var j = 0; j < 16; j++) hex.push((bytes[j] + 0x100).toString(16).slice(1));
    return (
      hex.slice(0, 4).join("") + "-" + hex.slice(4, 6).join("") + "-" + hex.slice(6, 8).join("") + "-" +
      hex.slice(8, 10).join("") + "-" + hex.slice(10).join("")
    );
  }

  // A constructed stylesheet, not a <style> element: a site whose Content-Security-Policy
  // allows no inline style (ours included) still styles the widget. Older browsers get the
  // <style> element.
  function adoptStyles(shadow) {
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      shadow.adoptedStyleSheets = [sheet];
      return;
    } catch (e) {
      // no constructable stylesheets here
    }
    var style = document.createElement("style");
    style.textContent = CSS;
    shadow.appendChild(style);
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) {
      for (var name in attrs) {
        if (Object.prototype.hasOwnProperty.call(attrs, name) && attrs[name] !== null && attrs[name] !== undefined) {
          node.setAttribute(name, String(attrs[name]));
        }
      }
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(pathData) {
    var ns = "http://www.w3.org/2000/svg";
    var node = document.createElementNS(ns, "svg");
    node.setAttribute("viewBox", "0 0 24 24");
    node.setAttribute("aria-hidden", "true");
    node.setAttribute("focusable", "false");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", pathData);
    node.appendChild(path);
    return node;
  }

  function safeHref(url) {
    url = String(url || "");
    try {
      var parsed = new URL(url);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : "";
    } catch (e) {
      return "";
    }
  }

  function validColor(value) {
    value = String(value || "").trim();
    if (/^#(?:[0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})$/i.test(value)) return value;
    if (/^(?:rgb|hsl)a?\([0-9.,%\s/]+\)$/i.test(value)) return value;
    if (/^[a-z]{3,20}$/i.test(value)) return value;
    return "";
  }

  function normalizeSettings(raw) {
    raw = raw && typeof raw === "object" ? raw : {};
    var fields = Array.isArray(raw.pre_chat_fields) ? raw.pre_chat_fields : [];
    return {
      title: typeof raw.title === "string" && raw.title ? raw.title : "Chat with us",
      greeting: typeof raw.greeting === "string" ? raw.greeting : "",
      color: validColor(raw.color) || "#2563eb",
      text_color: validColor(raw.text_color) || "#ffffff",
      position: raw.position === "left" ? "left" : "right",
      pre_chat_fields: fields.filter(function (f, i) {
        return Object.prototype.hasOwnProperty.call(PRE_CHAT_FIELDS, f) && fields.indexOf(f) === i;
      }),
      business_hours_message: typeof raw.business_hours_message === "string" ? raw.business_hours_message : "",
    };
  }

  function formatTime(iso) {
    var date = iso ? new Date(iso) : null;
    if (!date || isNaN(date.getTime())) return "";
    try {
      return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    } catch (e) {
      return "";
    }
  }

  // ======================================================================================
  // UI
  // ======================================================================================

  var CSS = [
    ":host{all:initial}",
    ".root{--syn-color:#2563eb;--syn-text:#fff;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;",
    "color:#101828;text-align:left;letter-spacing:normal;word-spacing:normal;text-transform:none;direction:ltr}",
    ".root *,.root *::before,.root *::after{box-sizing:border-box}",
    ".root [hidden]{display:none!important}",
    ".sr-only{position:absolute!important;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;clip:rect(0,0,0,0);white-space:nowrap;border:0}",
    "button,input,textarea{font:inherit;color:inherit;margin:0}",
    "button{cursor:pointer}",
    ":focus-visible{outline:3px solid var(--syn-color);outline-offset:2px}",
    ".launcher{position:fixed;bottom:20px;right:20px;width:56px;height:56px;border-radius:50%;border:0;",
    "background:var(--syn-color);color:var(--syn-text);box-shadow:0 4px 14px rgba(16,24,40,.25);display:flex;",
    "align-items:center;justify-content:center;transition:transform .15s ease;z-index:1}",
    ".launcher:hover{transform:scale(1.05)}",
    ".launcher:focus-visible{outline-color:#101828}",
    ".launcher svg{width:28px;height:28px;fill:currentColor}",
    ".left .launcher{right:auto;left:20px}",
    ".badge{position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;padding:0 5px;border-radius:10px;",
    "background:#d92d20;color:#fff;font-size:12px;font-weight:600;line-height:20px;text-align:center}",
    ".panel{position:fixed;bottom:88px;right:20px;width:370px;height:min(600px,calc(100vh - 108px));",
    "display:flex;flex-direction:column;background:#fff;border-radius:14px;overflow:hidden;",
    "box-shadow:0 12px 32px rgba(16,24,40,.22);border:1px solid #e4e7ec;transition:opacity .15s ease,transform .15s ease;z-index:2}",
    ".left .panel{right:auto;left:20px}",
    ".head{display:flex;align-items:center;gap:6px;padding:12px 10px 12px 16px;background:var(--syn-color);color:var(--syn-text)}",
    ".head .titles{flex:1;min-width:0}",
    ".head h2{margin:0;font-size:16px;font-weight:600;line-height:1.3;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;color:inherit}",
    ".head .sub{margin:0;font-size:12.5px;opacity:.9;min-height:0}",
    ".icon{background:transparent;border:0;color:inherit;width:36px;height:36px;border-radius:8px;display:flex;align-items:center;justify-content:center;padding:0}",
    ".icon:hover{background:rgba(255,255,255,.18)}",
    ".icon svg{width:20px;height:20px;fill:currentColor}",
    ".head :focus-visible{outline-color:var(--syn-text)}",
    ".menu-wrap{position:relative}",
    ".menu{position:absolute;top:40px;right:0;min-width:210px;background:#fff;color:#101828;border:1px solid #e4e7ec;",
    "border-radius:10px;box-shadow:0 8px 24px rgba(16,24,40,.18);padding:4px;z-index:3}",
    ".menu button{display:block;width:100%;text-align:left;background:transparent;border:0;border-radius:6px;padding:8px 10px}",
    ".menu button:hover,.menu button:focus-visible{background:#f2f4f7}",
    ".menu button:disabled{color:#98a2b3;cursor:default}",
    ".notice{margin:0;padding:8px 16px;background:#fffaeb;color:#93370d;font-size:13px;border-bottom:1px solid #fedf89;white-space:pre-wrap}",
    ".conn{margin:0;padding:6px 16px;background:#f2f4f7;color:#475467;font-size:12.5px}",
    ".log{flex:1;overflow-y:auto;padding:14px 12px;background:#f9fafb;overscroll-behavior:contain}",
    ".log:focus-visible{outline-offset:-3px}",
    ".messages{list-style:none;margin:0;padding:0;display:flex;flex-direction:column;gap:8px}",
    ".msg{display:flex;flex-direction:column;max-width:85%}",
    ".msg.visitor{align-self:flex-end;align-items:flex-end}",
    ".msg.system{align-self:center;align-items:center;max-width:95%}",
    ".bubble{padding:8px 12px;border-radius:14px;white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-word}",
    ".msg.visitor .bubble{background:var(--syn-color);color:var(--syn-text);border-bottom-right-radius:4px}",
    ".msg.ai .bubble,.msg.agent .bubble,.greeting .bubble{background:#fff;border:1px solid #e4e7ec;border-bottom-left-radius:4px}",
    ".msg.system .bubble{background:transparent;color:#475467;font-size:13px;text-align:center;padding:2px 8px}",
    ".msg[data-state=streaming] .bubble::after{content:'\\258D';opacity:.5;margin-left:1px}",
    ".msg[data-state=sending] .bubble{opacity:.75}",
    ".msg[data-state=failed] .bubble{background:#fef3f2;color:#b42318;border:1px solid #fecdca}",
    ".meta{font-size:11.5px;color:#667085;margin:2px 4px 0}",
    ".msg[data-state=failed] .meta{color:#b42318}",
    ".sources{margin:4px 4px 0;font-size:12.5px;color:#475467}",
    ".sources ol{margin:2px 0 0;padding-left:18px}",
    ".sources a{color:var(--syn-color);text-decoration:underline;overflow-wrap:anywhere}",
    ".feedback{display:flex;gap:4px;align-items:center;margin:3px 4px 0;font-size:12px;color:#667085}",
    ".feedback button{font:inherit;line-height:1;padding:3px 8px;color:#344054;border-radius:12px;border:1px solid #d0d5dd;background:#fff;cursor:pointer;opacity:.7}",
    ".feedback button:hover,.feedback button:focus-visible{opacity:1}",
    ".feedback button[aria-pressed=true]{opacity:1;color:#fff;background:var(--syn-color);border-color:var(--syn-color)}",
    ".typing{margin:8px 4px 0;font-size:12.5px;color:#667085;font-style:italic}",
    ".form{padding:12px 16px;border-top:1px solid #e4e7ec;background:#fff;display:flex;flex-direction:column;gap:8px}",
    ".form h3{margin:0;font-size:14.5px}",
    ".form p{margin:0;font-size:13px;color:#475467}",
    ".form label{display:flex;flex-direction:column;gap:3px;font-size:13px;font-weight:500}",
    ".form input,.form textarea{border:1px solid #d0d5dd;border-radius:8px;padding:7px 10px;background:#fff;font-weight:400}",
    ".form fieldset{border:0;margin:0;padding:0}",
    ".form legend{font-size:13px;font-weight:500;padding:0;margin-bottom:4px}",
    ".stars{display:flex;gap:6px}",
    ".stars label{flex-direction:row;align-items:center;gap:0}",
    ".stars input{position:absolute;opacity:0;width:1px;height:1px}",
    ".stars span{display:inline-flex;width:38px;height:38px;align-items:center;justify-content:center;border:1px solid #d0d5dd;border-radius:8px;cursor:pointer;font-weight:600}",
    ".stars input:checked+span{background:var(--syn-color);color:var(--syn-text);border-color:var(--syn-color)}",
    ".stars input:focus-visible+span{outline:3px solid var(--syn-color);outline-offset:2px}",
    ".row{display:flex;gap:8px;justify-content:flex-end}",
    ".primary{background:var(--syn-color);color:var(--syn-text);border:0;border-radius:8px;padding:8px 14px;font-weight:600}",
    ".secondary{background:#fff;border:1px solid #d0d5dd;border-radius:8px;padding:8px 14px}",
    ".composer{display:flex;align-items:flex-end;gap:8px;padding:10px 12px;border-top:1px solid #e4e7ec;background:#fff}",
    ".composer textarea{flex:1;resize:none;border:1px solid #d0d5dd;border-radius:10px;padding:8px 12px;max-height:132px;min-height:40px;line-height:1.4;background:#fff}",
    ".send{width:40px;height:40px;border-radius:10px;border:0;background:var(--syn-color);color:var(--syn-text);display:flex;align-items:center;justify-content:center;padding:0;flex:none}",
    ".send svg{width:20px;height:20px;fill:currentColor}",
    ".send:disabled{opacity:.5;cursor:default}",
    "@media (max-width:480px){",
    ".panel,.left .panel{top:0;left:0;right:0;bottom:0;width:100%;height:100%;max-height:none;border-radius:0;border:0}",
    ".open .launcher{display:none}",
    ".composer textarea,.form input,.form textarea{font-size:16px}",
    "}",
    "@media (prefers-reduced-motion:reduce){.root *,.root *::before,.root *::after{transition:none!important;animation:none!important;scroll-behavior:auto!important}}",
  ].join("\n");

  var ICON_CHAT = "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z";
  var ICON_CLOSE = "M6.4 5 5 6.4 10.6 12 5 17.6 6.4 19l5.6-5.6 5.6 5.6 1.4-1.4-5.6-5.6L19 6.4 17.6 5 12 10.6z";
  var ICON_MORE = "M12 7a2 2 0 1 1 0-4 2 2 0 0 1 0 4zm0 7a2 2 0 1 1 0-4 2 2 0 0 1 0 4zm0 7a2 2 0 1 1 0-4 2 2 0 0 1 0 4z";
  var ICON_SEND = "M3 20.5 21 12 3 3.5 3 10l12 2-12 2z";

  function buildUI() {
    var host = document.createElement("syntera-widget");
    // Inline and !important: a page rule cannot hide, move or transform the host.
    var hostStyle = {
      all: "initial",
      display: "block",
      position: "fixed",
      top: "0",
      left: "0",
      width: "0",
      height: "0",
      "z-index": "2147483000",
      transform: "none",
      filter: "none",
      contain: "none",
    };
    for (var prop in hostStyle) host.style.setProperty(prop, hostStyle[prop], "important");
    var shadow = host.attachShadow({ mode: "open" });
    adoptStyles(shadow);

    var root = el("div", { class: "root", part: "root" });
    shadow.appendChild(root);

    var launcher = el("button", {
      type: "button",
      id: "syn-launcher",
      class: "launcher",
      "aria-label": "Open chat",
      "aria-expanded": "false",
      "aria-controls": "syn-panel",
    });
    launcher.appendChild(svg(ICON_CHAT));
    var badge = el("span", { class: "badge", "aria-hidden": "true", hidden: "" });
    launcher.appendChild(badge);

    var panel = el("section", { id: "syn-panel", class: "panel", role: "dialog", "aria-labelledby": "syn-title", hidden: "" });

    var head = el("div", { class: "head" });
    var titles = el("div", { class: "titles" });
    var title = el("h2", { id: "syn-title" }, "Chat with us");
    var sub = el("p", { id: "syn-handoff", class: "sub", role: "status", hidden: "" });
    titles.appendChild(title);
    titles.appendChild(sub);
    var menuWrap = el("div", { class: "menu-wrap" });
    var menuButton = el("button", {
      type: "button",
      id: "syn-menu-button",
      class: "icon",
      "aria-label": "More options",
      "aria-haspopup": "menu",
      "aria-expanded": "false",
      "aria-controls": "syn-menu",
    });
    menuButton.appendChild(svg(ICON_MORE));
    var menu = el("div", { id: "syn-menu", class: "menu", role: "menu", hidden: "" });
    var rateItem = el("button", { type: "button", id: "syn-rate-action", role: "menuitem" }, "Rate this conversation");
    menu.appendChild(rateItem);
    menuWrap.appendChild(menuButton);
    menuWrap.appendChild(menu);
    var closeButton = el("button", { type: "button", id: "syn-close", class: "icon", "aria-label": "Close chat" });
    closeButton.appendChild(svg(ICON_CLOSE));
    head.appendChild(titles);
    head.appendChild(menuWrap);
    head.appendChild(closeButton);

    var hours = el("p", { id: "syn-hours", class: "notice", hidden: "" });
    var conn = el("p", { id: "syn-connection", class: "conn", role: "status", hidden: "" });

    var log = el("div", { id: "syn-log", class: "log", role: "log", "aria-live": "polite", "aria-label": "Conversation", tabindex: "0" });
    var messages = el("ol", { class: "messages" });
    var greeting = el("li", { id: "syn-greeting", class: "msg ai greeting", hidden: "" });
    var greetingBubble = el("div", { class: "bubble" });
    greeting.appendChild(greetingBubble);
    messages.appendChild(greeting);
    log.appendChild(messages);
    var typing = el("p", { id: "syn-typing", class: "typing", hidden: "" });

    // Pre-chat form (fields filled in when the settings are known).
    var prechat = el("form", { id: "syn-prechat", class: "form", hidden: "" });
    prechat.appendChild(el("h3", null, "Before we start"));
    prechat.appendChild(el("p", null, "Tell us how to reach you."));
    var prechatFields = el("div", { class: "fields" });
    prechat.appendChild(prechatFields);
    var prechatRow = el("div", { class: "row" });
    prechatRow.appendChild(el("button", { type: "submit", class: "primary", id: "syn-prechat-submit" }, "Start chat"));
    prechat.appendChild(prechatRow);

    // Rating form.
    var rating = el("form", { id: "syn-rating", class: "form", hidden: "" });
    var ratingTitle = el("h3", { id: "syn-rating-title" }, "How did we do?");
    rating.appendChild(ratingTitle);
    var fieldset = el("fieldset", null);
    fieldset.appendChild(el("legend", null, "Your rating, from 1 (poor) to 5 (excellent)"));
    var stars = el("div", { class: "stars" });
    for (var n = 1; n <= 5; n++) {
      var label = el("label", null);
      label.appendChild(el("input", { type: "radio", name: "rating", value: String(n), "aria-label": n + " of 5", required: "" }));
      label.appendChild(el("span", { "aria-hidden": "true" }, String(n)));
      stars.appendChild(label);
    }
    fieldset.appendChild(stars);
    rating.appendChild(fieldset);
    var commentLabel = el("label", null, "Comment (optional)");
    var comment = el("textarea", { name: "comment", rows: "2", maxlength: "2000" });
    commentLabel.appendChild(comment);
    rating.appendChild(commentLabel);
    var ratingRow = el("div", { class: "row" });
    var ratingLater = el("button", { type: "button", class: "secondary", id: "syn-rating-later" }, "Not now");
    ratingRow.appendChild(ratingLater);
    ratingRow.appendChild(el("button", { type: "submit", class: "primary", id: "syn-rating-submit" }, "Send rating"));
    rating.appendChild(ratingRow);
    var ratingDone = el("p", { id: "syn-rating-done", class: "form", role: "status", hidden: "" });

    var composer = el("form", { id: "syn-composer", class: "composer" });
    var input = el("textarea", {
      id: "syn-input",
      rows: "1",
      maxlength: String(MAX_CHARS),
      placeholder: "Write a message…",
      "aria-label": "Message",
      autocomplete: "off",
    });
    var send = el("button", { type: "submit", id: "syn-send", class: "send", "aria-label": "Send message" });
    send.appendChild(svg(ICON_SEND));
    composer.appendChild(input);
    composer.appendChild(send);

    panel.appendChild(head);
    panel.appendChild(hours);
    panel.appendChild(conn);
    panel.appendChild(log);
    panel.appendChild(typing);
    panel.appendChild(prechat);
    panel.appendChild(rating);
    panel.appendChild(ratingDone);
    panel.appendChild(composer);
    root.appendChild(panel);
    root.appendChild(launcher);

    var parts = {
      host: host,
      root: root,
      launcher: launcher,
      badge: badge,
      panel: panel,
      title: title,
      sub: sub,
      menuButton: menuButton,
      menu: menu,
      rateItem: rateItem,
      closeButton: closeButton,
      hours: hours,
      conn: conn,
      log: log,
      messages: messages,
      greeting: greeting,
      greetingBubble: greetingBubble,
      typing: typing,
      prechat: prechat,
      prechatFields: prechatFields,
      rating: rating,
      ratingDone: ratingDone,
      comment: comment,
      composer: composer,
      input: input,
      send: send,
    };
    wireUI(parts);
    return parts;
  }

  function wireUI(p) {
    p.launcher.addEventListener("click", function () {
      if (isOpen) close();
      else open();
    });
    p.closeButton.addEventListener("click", function () {
      close();
    });
    p.panel.addEventListener("keydown", function (event) {
      if (event.key !== "Escape") return;
      event.preventDefault();
      if (!p.menu.hidden) {
        toggleMenu(false);
        p.menuButton.focus();
      } else {
        close();
      }
    });
    p.menuButton.addEventListener("click", function () {
      toggleMenu(p.menu.hidden);
    });
    p.rateItem.addEventListener("click", function () {
      toggleMenu(false);
      showRating(true);
    });
    p.panel.addEventListener("click", function (event) {
      if (!p.menu.hidden && !event.composedPath().some(function (n) { return n === p.menu || n === p.menuButton; })) {
        toggleMenu(false);
      }
    });
    p.composer.addEventListener("submit", function (event) {
      event.preventDefault();
      var text = p.input.value;
      if (submitText(text)) {
        p.input.value = "";
        autosize();
      }
      p.input.focus();
    });
    p.input.addEventListener("keydown", function (event) {
      // Enter sends, Shift+Enter is a new line; never while an IME is composing.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        if (typeof p.composer.requestSubmit === "function") p.composer.requestSubmit();
        else p.composer.dispatchEvent(new Event("submit", { cancelable: true }));
      }
    });
    p.input.addEventListener("input", function () {
      autosize();
      var now = Date.now();
      if (ready && p.input.value.trim() && now - lastTypingSent > TYPING_SEND_EVERY) {
        lastTypingSent = now;
        sendFrame({ type: "typing" });
      }
    });
    p.prechat.addEventListener("submit", function (event) {
      event.preventDefault();
      submitPrechat();
    });
    p.rating.addEventListener("submit", function (event) {
      event.preventDefault();
      submitRating();
    });
    p.rating.querySelector("#syn-rating-later").addEventListener("click", function () {
      showRating(false);
      p.input.focus();
    });
  }

  function mount() {
    var attach = function () {
      (document.body || document.documentElement).appendChild(ui.host);
    };
    if (document.body) attach();
    else document.addEventListener("DOMContentLoaded", attach);
  }

  function dispatchReady() {
    var fire = function () {
      var event;
      try {
        event = new CustomEvent("syntera:ready", { detail: { key: KEY } });
      } catch (e) {
        event = document.createEvent("CustomEvent");
        event.initCustomEvent("syntera:ready", false, false, { key: KEY });
      }
      window.dispatchEvent(event);
    };
    if (ui.host.isConnected) fire();
    else document.addEventListener("DOMContentLoaded", fire);
  }

  function autosize() {
    ui.input.style.height = "auto";
    ui.input.style.height = Math.min(ui.input.scrollHeight + 2, 132) + "px";
  }

  function toggleMenu(show) {
    ui.menu.hidden = !show;
    ui.menuButton.setAttribute("aria-expanded", show ? "true" : "false");
    ui.rateItem.disabled = !conversationId;
    if (show) ui.rateItem.focus();
  }

  function applySettings(s) {
    ui.root.style.setProperty("--syn-color", s.color);
    ui.root.style.setProperty("--syn-text", s.text_color);
    ui.root.classList.toggle("left", s.position === "left");
    ui.root.classList.toggle("right", s.position !== "left");
    ui.title.textContent = s.title;
    ui.greetingBubble.textContent = s.greeting;
    ui.greeting.hidden = !s.greeting;
    ui.hours.textContent = s.business_hours_message;
    ui.hours.hidden = !s.business_hours_message;
    ui.launcher.setAttribute("aria-label", "Open chat: " + s.title);
  }

  function setConnection(text) {
    ui.conn.textContent = text;
    ui.conn.hidden = !text;
  }

  function setHandoff(value) {
    handoff = value;
    if (value !== "bot") {
      // A person has the conversation now: an AI reply still streaming is discarded by the
      // server and never stored, so its partial text goes too.
      Object.keys(streams).forEach(function (key) {
        var s = streams[key];
        clearTimeout(s.timer);
        delete streams[key];
        if (s.li.parentNode && !s.li.getAttribute("data-seq")) s.li.parentNode.removeChild(s.li);
      });
    }
    var text = "";
    if (value === "queued") text = "Connecting you with a person…";
    else if (value === "assigned") text = lastAgent ? lastAgent + " joined the conversation" : "A person joined the conversation";
    ui.sub.textContent = text;
    ui.sub.hidden = !text;
  }

  function open() {
    if (isOpen) return;
    isOpen = true;
    ui.panel.hidden = false;
    ui.root.classList.add("open");
    ui.launcher.setAttribute("aria-expanded", "true");
    unread = 0;
    updateBadge();
    wanted = true;
    if (needsPrechatFirst()) showPrechat(true);
    else if (!ws && !fatal) connect();
    scrollToEnd();
    focusInside();
  }

  function close() {
    if (!isOpen) return;
    isOpen = false;
    toggleMenu(false);
    ui.panel.hidden = true;
    ui.root.classList.remove("open");
    ui.launcher.setAttribute("aria-expanded", "false");
    ui.launcher.focus();
  }

  function focusInside() {
    var target = ui.input;
    if (!ui.prechat.hidden) target = ui.prechat.querySelector("input") || target;
    try {
      target.focus({ preventScroll: true });
    } catch (e) {
      target.focus();
    }
  }

  function updateBadge() {
    ui.badge.textContent = unread > 9 ? "9+" : String(unread);
    ui.badge.hidden = unread === 0 || isOpen;
    ui.launcher.setAttribute(
      "aria-label",
      "Open chat: " + settings.title + (unread && !isOpen ? " (" + unread + " new)" : ""),
    );
  }

  function scrollToEnd() {
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  // --- messages in the transcript -------------------------------------------------------

  function renderMessage(frame) {
    var role = ROLE_LABEL.hasOwnProperty(frame.role) ? frame.role : "system";
    var li = el("li", { class: "msg " + role });
    var speaker = role === "agent" && frame.author ? frame.author : ROLE_LABEL[role];
    if (speaker) li.appendChild(el("span", { class: "sr-only speaker" }, speaker + ": "));
    var bubble = el("div", { class: "bubble" });
    li.appendChild(bubble);
    li.appendChild(el("div", { class: "meta" }));
    fillMessage(li, frame);
    return li;
  }

  function fillMessage(li, frame) {
    li.querySelector(".bubble").textContent = String(frame.text || "");
    li.setAttribute("data-seq", String(frame.seq));
    li.setAttribute("data-state", "sent");
    li.setAttribute("data-filled", "");
    li.removeAttribute("aria-busy");
    if (frame.client_id) li.setAttribute("data-client-id", String(frame.client_id));
    var meta = li.querySelector(".meta");
    var parts = [];
    if (frame.role === "agent" && frame.author) parts.push(String(frame.author));
    var time = formatTime(frame.created_at);
    if (time) parts.push(time);
    meta.textContent = parts.join(" · ");
    if (frame.created_at) meta.setAttribute("title", String(frame.created_at));
    var old = li.querySelector(".sources");
    if (old) old.parentNode.removeChild(old);
    var sources = renderCitations(frame.citations);
    if (sources) li.appendChild(sources);
    var oldFeedback = li.querySelector(".feedback");
    if (oldFeedback) oldFeedback.parentNode.removeChild(oldFeedback);
    if (frame.role === "ai" && Number(frame.seq) > 0) li.appendChild(renderFeedback(li, Number(frame.seq)));
  }

  // --- the visitor's verdict on an AI answer --------------------------------------------
  // persist.feedback: {c: conversation, given: {seq: true|false}} as the server confirmed it.

  function renderFeedback(li, seq) {
    var row = el("div", { class: "feedback", role: "group", "aria-label": "Was this answer helpful?" });
    row.appendChild(el("span", { "aria-hidden": "true" }, "Helpful?"));
    [
      [true, "Yes", "Helpful"],
      [false, "No", "Not helpful"],
    ].forEach(function (choice) {
      var button = el(
        "button",
        { type: "button", "data-helpful": String(choice[0]), "aria-label": choice[2], title: choice[2], "aria-pressed": "false" },
        choice[1]
      );
      button.addEventListener("click", function () {
        if (sendFrame({ type: "feedback", seq: seq, helpful: choice[0] })) markFeedback(row, choice[0], "sending");
      });
      row.appendChild(button);
    });
    var saved = persist.feedback;
    var given = saved && saved.c === conversationId && saved.given && typeof saved.given === "object" ? saved.given[seq] : undefined;
    if (typeof given === "boolean") markFeedback(row, given, "sent");
    return row;
  }

  function markFeedback(row, helpful, state) {
    row.setAttribute("data-state", state);
    var buttons = row.querySelectorAll("button");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].setAttribute("aria-pressed", String(buttons[i].getAttribute("data-helpful") === String(helpful)));
    }
  }

  function onFeedback(frame) {
    var seq = Number(frame.seq);
    if (!(seq > 0) || typeof frame.helpful !== "boolean") return;
    if (!persist.feedback || persist.feedback.c !== conversationId || typeof persist.feedback.given !== "object") {
      persist.feedback = { c: conversationId, given: {} };
    }
    persist.feedback.given[seq] = frame.helpful;
    saveState();
    var row = bySeq[seq] && bySeq[seq].querySelector(".feedback");
    if (row) markFeedback(row, frame.helpful, "sent");
  }

  function renderCitations(citations) {
    if (!Array.isArray(citations) || !citations.length) return null;
    var seen = {};
    var list = el("ol", null);
    citations.forEach(function (c, i) {
      if (!c || typeof c !== "object") return;
      var href = safeHref(c.url);
      var title = String(c.title || "") || href || "Source " + (i + 1);
      var key = title + "\u0000" + href;
      if (seen[key]) return;
      seen[key] = true;
      var item = el("li", null);
      if (href) {
        item.appendChild(el("a", { href: href, target: "_blank", rel: "noopener noreferrer" }, title));
      } else {
        item.appendChild(el("span", null, title));
      }
      list.appendChild(item);
    });
    if (!list.childNodes.length) return null;
    var box = el("div", { class: "sources" });
    box.appendChild(el("span", null, "Sources:"));
    box.appendChild(list);
    return box;
  }

  function insertBySeq(li, seq) {
    var children = ui.messages.children;
    for (var i = 0; i < children.length; i++) {
      var child = children[i];
      if (child === li || child === ui.greeting) continue;
      var other = child.getAttribute("data-seq");
      // Messages without a seq (sending, streaming) always stay after the stored ones.
      if (other === null || Number(other) > seq) {
        ui.messages.insertBefore(li, child);
        return;
      }
    }
    ui.messages.appendChild(li);
  }

  function renderPending(item) {
    var li = el("li", { class: "msg visitor", "data-state": "sending", "data-client-id": item.client_id });
    li.appendChild(el("span", { class: "sr-only speaker" }, "You: "));
    li.appendChild(el("div", { class: "bubble" }, item.text));
    li.appendChild(el("div", { class: "meta" }, "Sending…"));
    ui.messages.appendChild(li);
    pending[item.client_id] = li;
    scrollToEnd();
    return li;
  }

  function renderOutbox() {
    persist.outbox.forEach(function (item) {
      if (!pending[item.client_id]) renderPending(item);
    });
  }

  function markFailed(clientId, detail) {
    var li = pending[clientId];
    removeFromOutbox(clientId);
    if (!li) return;
    delete pending[clientId];
    li.setAttribute("data-state", "failed");
    li.querySelector(".meta").textContent = "Not sent: " + detail;
  }

  function removeFromOutbox(clientId) {
    var before = persist.outbox.length;
    persist.outbox = persist.outbox.filter(function (item) {
      return item.client_id !== clientId;
    });
    if (persist.outbox.length !== before) saveState();
  }

  function resetTranscript() {
    Object.keys(bySeq).forEach(function (seq) {
      var li = bySeq[seq];
      if (li.parentNode) li.parentNode.removeChild(li);
    });
    bySeq = {};
    highest = 0;
    clearStreams();
  }

  function clearStreams() {
    Object.keys(streams).forEach(function (key) {
      var s = streams[key];
      clearTimeout(s.timer);
      if (s.li.parentNode && !s.li.getAttribute("data-seq")) s.li.parentNode.removeChild(s.li);
    });
    streams = {};
  }

  function showTyping(role) {
    ui.typing.textContent = (role === "agent" ? lastAgent || "An agent" : "The assistant") + " is typing…";
    ui.typing.hidden = false;
    clearTimeout(showTyping.timer);
    showTyping.timer = setTimeout(hideTyping, TYPING_FOR);
  }

  function hideTyping() {
    clearTimeout(showTyping.timer);
    ui.typing.hidden = true;
  }

  // --- pre-chat form and rating ---------------------------------------------------------

  function needsPrechatFirst() {
    // Settings cached from an earlier session tell us before any hello.
    return !persist.token && !persist.contactGiven && settings.pre_chat_fields.length > 0 && !pendingContact;
  }

  function showPrechat(show) {
    if (show) {
      while (ui.prechatFields.firstChild) ui.prechatFields.removeChild(ui.prechatFields.firstChild);
      settings.pre_chat_fields.forEach(function (name) {
        var spec = PRE_CHAT_FIELDS[name];
        var label = el("label", null, spec.label);
        label.appendChild(
          el("input", { name: name, type: spec.type, autocomplete: spec.autocomplete, required: "", maxlength: "200" }),
        );
        ui.prechatFields.appendChild(label);
      });
    }
    ui.prechat.hidden = !show;
    ui.composer.hidden = show;
    if (show && isOpen) focusInside();
  }

  function submitPrechat() {
    if (typeof ui.prechat.reportValidity === "function" && !ui.prechat.reportValidity()) return;
    var contact = {};
    Array.prototype.forEach.call(ui.prechat.querySelectorAll("input"), function (input) {
      var value = input.value.trim();
      if (value) contact[input.name] = value.slice(0, 200);
    });
    pendingContact = contact;
    persist.contactGiven = true;
    saveState();
    showPrechat(false);
    ui.input.focus();
    if (persist.token) {
      // The server attaches contact details only to a new conversation, and the form is
      // shown only while this visitor's conversation is still empty: start a new one with them.
      delete persist.token;
      saveState();
      if (ws) drop(ws, true);
      conversationId = null;
      resetTranscript();
    }
    if (!ws) connect();
  }

  function offerRating() {
    var rated = persist.rated;
    if (rated && rated.c === conversationId && rated.seq >= Math.max(lastSeq, highest)) return;
    showRating(true);
  }

  function showRating(show) {
    ui.ratingDone.hidden = true;
    ui.rating.hidden = !show;
    if (show) {
      ui.rating.reset();
      if (isOpen) {
        var first = ui.rating.querySelector("input");
        if (first) first.focus();
      }
    }
  }

  function submitRating() {
    var checked = ui.rating.querySelector("input[name=rating]:checked");
    if (!checked) {
      if (typeof ui.rating.reportValidity === "function") ui.rating.reportValidity();
      return;
    }
    pendingRating = { type: "rate", rating: Number(checked.value), comment: ui.comment.value.slice(0, 2000) };
    if (ready) sendFrame(pendingRating);
    else if (!ws) connect();
    ui.rating.hidden = true;
    ui.ratingDone.textContent = "Sending your rating…";
    ui.ratingDone.hidden = false;
  }

  // ======================================================================================
  // Sending
  // ======================================================================================

  function submitText(text) {
    text = String(text === undefined || text === null ? "" : text);
    if (!text.trim()) return null;
    if (text.length > MAX_CHARS) {
      setConnection("Messages are at most " + MAX_CHARS + " characters.");
      return null;
    }
    var item = { client_id: uuid(), text: text };
    persist.outbox.push(item);
    saveState();
    renderPending(item);
    wanted = true;
    if (ready && !pendingPrechat()) sendFrame({ type: "message", client_id: item.client_id, text: item.text });
    else if (!ws && !fatal && !needsPrechatFirst()) connect();
    else if (needsPrechatFirst()) showPrechat(true);
    return item.client_id;
  }

  function pendingPrechat() {
    return !ui.prechat.hidden;
  }

  function flushOutbox() {
    clearTimeout(flushTimer);
    if (!ready || pendingPrechat()) return;
    persist.outbox.forEach(function (item) {
      sendFrame({ type: "message", client_id: item.client_id, text: item.text });
      var li = pending[item.client_id];
      if (li) li.querySelector(".meta").textContent = "Sending…";
    });
  }

  function sendFrame(frame) {
    if (!ws || ws.readyState !== 1) return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch (e) {
      return false;
    }
  }

  // ======================================================================================
  // Connection
  // ======================================================================================

  function connect() {
    if (ws || fatal) return;
    clearTimeout(retryTimer);
    retryTimer = null;
    if (navigator.onLine === false) {
      setConnection("You're offline. Messages will be sent when you're back online.");
      return;
    }
    var url = WS_BASE + (persist.token ? "&token=" + encodeURIComponent(persist.token) : "");
    var socket;
    try {
      socket = new WebSocket(url);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = socket;
    ready = false;
    resumedFrom = {};
    if (attempt > 0) setConnection("Reconnecting…");
    socket.onopen = function () {
      if (socket !== ws) return;
      sendFrame(helloFrame());
      startHeartbeat();
    };
    socket.onmessage = function (event) {
      if (socket !== ws) return;
      clearTimeout(pongTimer);
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (frame && typeof frame === "object") handleFrame(frame);
    };
    socket.onclose = function (event) {
      if (socket !== ws) return;
      drop(socket, false);
      if (event.code === 4404 || event.code === 4403) {
        fatal = event.code === 4403 ? "origin" : "key";
        setConnection("Chat is not available on this site right now.");
        ui.send.disabled = true;
        warn(
          event.code === 4403
            ? "this site (" + location.origin + ") is not among the inbox's allowed origins."
            : "unknown widget key " + KEY + " for " + ORIGIN + ".",
        );
        return;
      }
      if (event.code === 4429) {
        // Too many connections or new chats from this address: wait a good while, not
        // the usual backoff, so a busy network does not keep knocking.
        setConnection("Chat is busy right now. Trying again in a minute…");
        clearTimeout(retryTimer);
        retryTimer = setTimeout(function () {
          retryTimer = null;
          connect();
        }, REFUSED_RETRY + Math.floor(Math.random() * REFUSED_RETRY));
        return;
      }
      scheduleReconnect();
    };
    socket.onerror = function () {
      /* a close event follows */
    };
  }

  function helloFrame() {
    var hello = { type: "hello" };
    if (pendingContact && !persist.token) hello.contact = pendingContact;
    if (identity) hello.identity = identity;
    return hello;
  }

  function drop(socket, closeIt) {
    if (socket !== ws) return;
    ws = null;
    ready = false;
    stopHeartbeat();
    clearTimeout(flushTimer);
    clearStreams();
    hideTyping();
    Object.keys(pending).forEach(function (id) {
      pending[id].querySelector(".meta").textContent = "Waiting to send…";
    });
    if (closeIt) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      try {
        socket.close(1000, "client closed");
      } catch (e) {
        /* already closed */
      }
    }
  }

  function scheduleReconnect() {
    if (fatal || !wanted) return;
    if (navigator.onLine === false) {
      setConnection("You're offline. Messages will be sent when you're back online.");
      return;
    }
    // Exponential backoff with full jitter: a server restart does not bring every visitor
    // back in the same second.
    var ceiling = Math.min(BACKOFF_CAP, BACKOFF_BASE * Math.pow(2, attempt));
    var delay = Math.floor(Math.random() * ceiling);
    attempt += 1;
    setConnection("Connection lost. Reconnecting…");
    clearTimeout(retryTimer);
    retryTimer = setTimeout(function () {
      retryTimer = null;
      connect();
    }, delay);
  }

  function startHeartbeat() {
    stopHeartbeat();
    pingTimer = setInterval(function () {
      if (!sendFrame({ type: "ping" })) return;
      clearTimeout(pongTimer);
      pongTimer = setTimeout(function () {
        // No frame since the ping: the connection is half-open. Start again.
        if (ws) {
          drop(ws, true);
          scheduleReconnect();
        }
      }, PONG_WITHIN);
    }, PING_EVERY);
  }

  function stopHeartbeat() {
    clearInterval(pingTimer);
    clearTimeout(pongTimer);
    pingTimer = pongTimer = null;
  }

  // ======================================================================================
  // Frames from the server
  // ======================================================================================

  function handleFrame(frame) {
    switch (frame.type) {
      case "session":
        return onSession(frame);
      case "ack":
        return onAck(frame);
      case "message":
        return onMessage(frame);
      case "delta":
        return onDelta(frame);
      case "typing":
        return showTyping(frame.role);
      case "handoff":
        return setHandoff(String(frame.status || "bot"));
      case "status":
        return onStatus(String(frame.status || ""));
      case "rated":
        return onRated();
      case "feedback":
        return onFeedback(frame);
      case "error":
        return onError(frame);
      default:
        return undefined; // pong, and frames a newer server may add
    }
  }

  function onSession(frame) {
    ready = true;
    attempt = 0;
    setConnection("");
    ui.send.disabled = false;
    var id = String(frame.conversation_id || "");
    if (conversationId && id !== conversationId) resetTranscript(); // the old token was not valid
    conversationId = id;
    if (typeof frame.token === "string" && frame.token) persist.token = frame.token;
    settings = normalizeSettings(frame.widget || {});
    persist.settings = frame.widget || {};
    saveState();
    applySettings(settings);
    updateBadge();
    lastSeq = typeof frame.last_seq === "number" ? frame.last_seq : 0;
    if (baseline < 0) baseline = lastSeq;
    setHandoff(String(frame.handoff || "bot"));
    status = String(frame.status || "open");

    // Replay what this page has not shown yet, then (re)send what is not acknowledged.
    resumedFrom[highest] = true;
    sendFrame({ type: "resume", after_seq: highest });
    pendingContact = null;
    if (settings.pre_chat_fields.length && !persist.contactGiven && lastSeq === 0) {
      showPrechat(true); // the form waits; the outbox goes out once it is filled in
      return;
    }
    flushOutbox();
    if (pendingRating) sendFrame(pendingRating);
    if (status === "resolved") offerRating();
  }

  function onAck(frame) {
    var clientId = String(frame.client_id || "");
    var seq = frame.seq;
    removeFromOutbox(clientId);
    var li = pending[clientId];
    if (!li || typeof seq !== "number") return;
    delete pending[clientId];
    if (bySeq[seq] && bySeq[seq] !== li) {
      // The stored message already arrived (replayed before this ack): keep that one.
      li.parentNode.removeChild(li);
      return;
    }
    li.setAttribute("data-seq", String(seq));
    li.setAttribute("data-state", "sent");
    li.querySelector(".meta").textContent = "Sent";
    bySeq[seq] = li;
    insertBySeq(li, seq);
    if (seq > highest) highest = seq;
  }

  function onMessage(frame) {
    var seq = frame.seq;
    if (typeof seq !== "number" || seq < 1) return;
    if (bySeq[seq]) {
      // Already shown; our own acknowledged message gets its time from the stored copy.
      if (!bySeq[seq].hasAttribute("data-filled")) fillMessage(bySeq[seq], frame);
      return;
    }
    if (seq > highest + 1 && !resumedFrom[highest]) {
      // A gap: ask once for what follows the last shown message. (Gaps that stay are
      // private notes, which are never sent to visitors.)
      resumedFrom[highest] = true;
      sendFrame({ type: "resume", after_seq: highest });
    }
    var clientId = typeof frame.client_id === "string" ? frame.client_id : "";
    var li = null;
    if (frame.role === "visitor" && clientId) removeFromOutbox(clientId); // stored: never re-send
    if (clientId && pending[clientId]) {
      li = pending[clientId]; // our own message, stored: the ack may still be on its way
      delete pending[clientId];
      fillMessage(li, frame);
    } else if (frame.role === "ai") {
      li = takeStream(clientId);
      if (li) fillMessage(li, frame);
    }
    if (!li) li = renderMessage(frame);
    bySeq[seq] = li;
    insertBySeq(li, seq);
    if (seq > highest) highest = seq;

    if (frame.role === "ai" || frame.role === "agent") hideTyping();
    if (frame.role === "agent" && frame.author) {
      lastAgent = String(frame.author);
      if (handoff === "assigned") setHandoff("assigned");
    }
    var live = baseline >= 0 && seq > baseline;
    if (frame.role !== "visitor" && !isOpen && live) {
      unread += 1;
      updateBadge();
    }
    if (isOpen) scrollToEnd();
  }

  // The conversation's status changed (staff resolved it, or it is open again): a resolved
  // conversation asks for a rating, a reopened one no longer does.
  function onStatus(value) {
    if (!/^(open|pending|resolved|snoozed)$/.test(value) || value === status) return;
    status = value;
    if (status === "resolved") offerRating();
    else if (!pendingRating) showRating(false);
  }

  function takeStream(clientId) {
    // AI replies are stored with client_id "ai-<epoch>-<seq they answer>".
    var match = /^ai-\d+-(\d+)$/.exec(clientId || "");
    var key = match ? match[1] : null;
    if (key === null) {
      var keys = Object.keys(streams);
      if (keys.length !== 1) return null;
      key = keys[0];
    }
    var s = streams[key];
    if (!s) return null;
    clearTimeout(s.timer);
    delete streams[key];
    s.li.setAttribute("data-deltas", String(s.deltas));
    return s.li;
  }

  function onDelta(frame) {
    var key = String(frame.reply_to);
    if (typeof frame.text !== "string") return;
    var s = streams[key];
    if (!s) {
      var li = el("li", { class: "msg ai", "data-state": "streaming", "aria-busy": "true", "data-reply-to": key });
      li.appendChild(el("span", { class: "sr-only speaker" }, "Assistant: "));
      var bubble = el("div", { class: "bubble" });
      li.appendChild(bubble);
      li.appendChild(el("div", { class: "meta" }));
      ui.messages.appendChild(li);
      s = streams[key] = { li: li, bubble: bubble, text: "", deltas: 0, timer: null };
    }
    hideTyping();
    s.text += frame.text;
    s.deltas += 1;
    s.bubble.textContent = s.text;
    s.li.setAttribute("data-deltas", String(s.deltas));
    clearTimeout(s.timer);
    s.timer = setTimeout(function () {
      // No final message: the reply was discarded (a person took over, or a newer
      // message will be answered instead).
      if (streams[key] === s) {
        delete streams[key];
        if (s.li.parentNode && !s.li.getAttribute("data-seq")) s.li.parentNode.removeChild(s.li);
      }
    }, STREAM_IDLE);
    if (isOpen) scrollToEnd();
  }

  function onRated() {
    if (pendingRating) {
      persist.rated = { c: conversationId, seq: Math.max(lastSeq, highest) };
      saveState();
    }
    pendingRating = null;
    ui.rating.hidden = true;
    ui.ratingDone.textContent = "Thank you for your feedback!";
    ui.ratingDone.hidden = false;
  }

  function onError(frame) {
    var code = String(frame.code || "");
    var detail = String(frame.detail || "Something went wrong.");
    var clientId = typeof frame.client_id === "string" ? frame.client_id : "";
    if (code === "no_session") {
      if (fatal !== "identity") sendFrame(helloFrame());
      return;
    }
    if (code === "identity_invalid") {
      // The chat goes on without it (the server says so); the site's developer needs to know.
      warn(detail);
      return;
    }
    if (code === "identity_required") {
      fatal = "identity";
      ui.send.disabled = true;
      setConnection("Sign in to chat with us.");
      warn("this inbox requires a signed identity: " + detail);
      return;
    }
    if (clientId && pending[clientId]) {
      if (code === "rate_limited" || code === "server_error") {
        // Kept in the outbox; sent again (same client_id) in a moment.
        pending[clientId].querySelector(".meta").textContent = "Waiting to send…";
        clearTimeout(flushTimer);
        flushTimer = setTimeout(flushOutbox, RATE_LIMIT_RETRY + Math.floor(Math.random() * 2000));
      } else {
        markFailed(clientId, detail);
      }
      return;
    }
    if (code === "invalid_feedback") {
      // The verdict was not taken: show the last confirmed one again (or none).
      var rows = ui.messages.querySelectorAll(".feedback[data-state=sending]");
      for (var i = 0; i < rows.length; i++) {
        var li = rows[i].parentNode;
        li.replaceChild(renderFeedback(li, Number(li.getAttribute("data-seq"))), rows[i]);
      }
      return;
    }
    if (pendingRating && code === "invalid_frame") {
      pendingRating = null;
      ui.ratingDone.textContent = detail;
      ui.ratingDone.hidden = false;
      return;
    }
    setConnection(detail);
    setTimeout(function () {
      if (ui.conn.textContent === detail) setConnection("");
    }, 6000);
  }

  // ======================================================================================
  // Signed-in users of the host site
  // ======================================================================================

  function identify(raw) {
    // A new (or first) identity: the next hello carries it; an open socket says hello again,
    // and the server answers with this user's session (a new conversation for another user).
    var next = readIdentity(raw);
    if (!next) return false;
    identity = next;
    if (fatal === "identity") {
      fatal = "";
      setConnection("");
      ui.send.disabled = false;
    }
    if (ws && ws.readyState === 1) sendFrame(helloFrame());
    else if (wanted && !ws && !fatal) connect();
    return true;
  }

  function logout() {
    // The user signed out of the host site: forget their conversation on this browser.
    identity = null;
    if (ws) drop(ws, true);
    delete persist.token;
    delete persist.contactGiven;
    delete persist.rated;
    delete persist.feedback;
    persist.outbox = [];
    saveState();
    Object.keys(pending).forEach(function (id) {
      if (pending[id].parentNode) pending[id].parentNode.removeChild(pending[id]);
    });
    pending = {};
    pendingContact = null;
    pendingRating = null;
    conversationId = null;
    lastSeq = 0;
    baseline = -1;
    unread = 0;
    resetTranscript();
    updateBadge();
    if (fatal === "identity") fatal = "";
    wanted = isOpen;
    if (isOpen && !fatal) {
      if (needsPrechatFirst()) showPrechat(true);
      else connect();
    }
  }

  // ======================================================================================
  // Start: build the UI, expose the host API, connect a returning visitor
  // ======================================================================================

  function start() {
    ui = buildUI();
    applySettings(settings);
    mount();

    window.Syntera = {
      __syntera: true,
      open: open,
      close: close,
      send: function (text) {
        return submitText(text);
      },
      identify: identify,
      logout: logout,
    };

    window.addEventListener("online", function () {
      attempt = 0;
      setConnection("");
      if (wanted && !ws && !fatal) connect();
    });
    window.addEventListener("offline", function () {
      // Treat the socket as gone at once: messages typed from now on wait in the outbox and
      // go out, with their client_ids, after the reconnect that `online` triggers.
      if (ws) drop(ws, true);
      setConnection("You're offline. Messages will be sent when you're back online.");
    });

    // A returning visitor (or one with unsent messages) reconnects at once, so replies that
    // arrived while they were away show up; a new visitor's conversation starts when they
    // open the chat.
    if (persist.token || persist.outbox.length) {
      wanted = true;
      renderOutbox();
      if (!needsPrechatFirst()) connect();
    }

    dispatchReady();
  }

  start();
})();
