// The staff inbox: the conversation list, one conversation, and the inbox settings' copy
// button. The page's staff WebSocket (/ws/staff/, staff-socket.js) only wakes the page up: on every event, and after
// every (re)connect, the page reads the list or the new messages again from the JSON
// endpoints, and it also does so every 30 s, so a lost event never leaves the screen wrong for
// long. Every text from the server (visitor and AI messages, names, tags, document titles) is
// untrusted: it is only ever set with textContent, and links only get http(s) or same-site
// addresses.
(function () {
  "use strict";

  var SAFETY_REFRESH_MS = 30000;
  var TYPING_SHOWN_MS = 4000;
  var TYPING_SEND_MS = 2500;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function token(value) {
    // For class names built from server values (roles, statuses, decisions).
    return String(value || "").replace(/[^a-z_-]/gi, "");
  }

  function safeHref(href) {
    href = String(href || "");
    return /^(https?:\/\/|\/(?!\/))/i.test(href) ? href : "";
  }

  function linkOrText(title, href) {
    href = safeHref(href);
    if (!href) return el("span", "", title);
    var a = el("a", "", title);
    a.href = href;
    a.rel = "noopener noreferrer";
    return a;
  }

  function fixed(value, digits) {
    return typeof value === "number" ? value.toFixed(digits) : "—";
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      return r.json().then(
        function (data) {
          if (!r.ok) throw new Error((data && data.error && data.error.detail) || "HTTP " + r.status);
          return data;
        },
        function () {
          throw new Error("The server answered HTTP " + r.status + ". Reload the page.");
        }
      );
    });
  }

  function conversationIdOf(frame) {
    var c = frame.conversation;
    if (c && typeof c === "object") return Number(c.id);
    return Number(c);
  }

  // The page's staff socket (staff-socket.js, shared with presence.js). handlers.open(hello)
  // runs after every (re)connect, handlers.event(frame) for every server event; the root's
  // data-socket and the #live-status text follow the connection.
  function staffSocket(root, handlers) {
    var status = document.getElementById("live-status");
    return window.SynteraStaffSocket.subscribe({
      open: handlers.open,
      event: handlers.event,
      state: function (state, label) {
        root.setAttribute("data-socket", state);
        if (status) status.textContent = label;
      },
    });
  }

  // Run `load` now, or once more right after the run in progress; never two at a time.
  function serialised(load) {
    var busy = false;
    var again = false;
    function run() {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      Promise.resolve()
        .then(load)
        .catch(function () {})
        .then(function () {
          busy = false;
          if (again) {
            again = false;
            run();
          }
        });
    }
    return run;
  }

  // --- the conversation list -------------------------------------------------------------

  function inboxList(root) {
    var tbody = document.querySelector("#conversations tbody");
    if (!tbody) return; // the filters are invalid: nothing to keep up to date
    var jsonUrl = root.getAttribute("data-json-url");
    var count = document.getElementById("conversation-count");
    var typingTimers = {};
    var timer = null;

    function row(c) {
      var tr = el("tr", "conversation" + (c.unread ? " unread" : ""));
      tr.setAttribute("data-conversation-id", String(c.id));
      var first = el("td");
      first.appendChild(linkOrText(c.title, c.url)).className = "title";
      first.appendChild(document.createTextNode(" "));
      var typing = el("span", "typing", "typing…");
      typing.hidden = !typingTimers[c.id];
      first.appendChild(typing);
      first.appendChild(el("div", "preview", c.preview));
      tr.appendChild(first);
      var inbox = el("td", "inbox", c.inbox_name + " ");
      inbox.appendChild(el("small", "", c.channel));
      tr.appendChild(inbox);
      var status = el("td");
      status.appendChild(el("span", "badge status " + token(c.status), c.status));
      tr.appendChild(status);
      tr.appendChild(el("td", "owner", c.owner_label));
      var tags = el("td", "tags");
      (c.tags || []).forEach(function (t) {
        tags.appendChild(el("span", "badge tag", t));
        tags.appendChild(document.createTextNode(" "));
      });
      tr.appendChild(tags);
      tr.appendChild(el("td", "when", c.time));
      var unread = el("td");
      var badge = el("span", "badge unread-count", c.unread);
      badge.hidden = !c.unread;
      unread.appendChild(badge);
      tr.appendChild(unread);
      return tr;
    }

    var refresh = serialised(function () {
      return getJSON(jsonUrl + location.search).then(function (data) {
        tbody.textContent = "";
        data.conversations.forEach(function (c) {
          tbody.appendChild(row(c));
        });
        if (!data.conversations.length) {
          var empty = el("tr", "empty");
          var td = el("td", "", "No conversations match these filters.");
          td.colSpan = 7;
          empty.appendChild(td);
          tbody.appendChild(empty);
        }
        if (count) count.textContent = data.count + " conversation" + (data.count === 1 ? "" : "s");
        root.setAttribute("data-refreshed", String(Date.now()));
      });
    });

    function soon() {
      // Events come in bursts (a message updates the row twice): one read for the burst.
      if (timer) return;
      timer = setTimeout(function () {
        timer = null;
        refresh();
      }, 250);
    }

    function showTyping(id) {
      clearTimeout(typingTimers[id]);
      typingTimers[id] = setTimeout(function () {
        delete typingTimers[id];
        var node = tbody.querySelector('tr[data-conversation-id="' + id + '"] .typing');
        if (node) node.hidden = true;
      }, TYPING_SHOWN_MS);
      var node = tbody.querySelector('tr[data-conversation-id="' + id + '"] .typing');
      if (node) node.hidden = false;
    }

    staffSocket(root, {
      open: refresh,
      event: function (frame) {
        var id = conversationIdOf(frame);
        if (frame.type === "visitor.typing") {
          if (id) showTyping(id);
        } else if (/^(conversation|message)\./.test(frame.type)) {
          soon();
        }
      },
    });
    setInterval(refresh, SAFETY_REFRESH_MS);
  }

  // --- one conversation ------------------------------------------------------------------

  function groundingEl(g) {
    var details = el("details", "grounding");
    var summary = el("summary", "", "Grounding: ");
    summary.appendChild(el("span", "badge decision " + token(g.decision), g.decision || "unknown"));
    summary.appendChild(document.createTextNode(" "));
    summary.appendChild(el("span", "reason", g.reason));
    details.appendChild(summary);
    if (g.query) {
      var q = el("p", "query");
      q.appendChild(el("small", "", "Searched for:"));
      q.appendChild(document.createTextNode(" " + g.query));
      details.appendChild(q);
    }
    if (g.skipped) {
      details.appendChild(el("p", "chunks none", "Retrieval skipped (" + g.skipped + ")."));
    } else if (g.chunks && g.chunks.length) {
      var table = el("table", "chunks");
      var head = el("tr");
      ["#", "Retrieved passage", "Score", "Similarity", "Cited"].forEach(function (h) {
        head.appendChild(el("th", "", h));
      });
      table.appendChild(head);
      g.chunks.forEach(function (c) {
        var tr = el("tr", "chunk" + (c.cited ? " cited" : ""));
        tr.setAttribute("data-chunk-id", c.chunk_id === null ? "" : String(c.chunk_id));
        tr.appendChild(el("td", "", c.ref === null ? "" : c.ref));
        var title = el("td", "title");
        title.appendChild(linkOrText(c.title, c.href));
        tr.appendChild(title);
        tr.appendChild(el("td", "score", fixed(c.score, 4)));
        tr.appendChild(el("td", "similarity", fixed(c.similarity, 3)));
        tr.appendChild(el("td", "", c.cited ? "✓" : ""));
        table.appendChild(tr);
      });
      details.appendChild(table);
      if (typeof g.best_similarity === "number") {
        details.appendChild(
          el(
            "small",
            "",
            "Best similarity " + fixed(g.best_similarity, 3) +
              (typeof g.min_similarity === "number" ? " (threshold " + fixed(g.min_similarity, 2) + ")" : "") +
              (g.below_threshold ? " · below the threshold" : "")
          )
        );
      }
      if (g.unknown_words && g.unknown_words.length) {
        var unknown = el("p", "unknown-words");
        unknown.appendChild(el("small", "", "Not mentioned anywhere in the knowledge:"));
        unknown.appendChild(document.createTextNode(" " + g.unknown_words.join(", ")));
        details.appendChild(unknown);
      }
    } else {
      details.appendChild(el("p", "chunks none", "No passages retrieved."));
    }
    if (g.tool_calls && g.tool_calls.length) {
      details.appendChild(
        el(
          "p",
          "tools",
          "Tools: " +
            g.tool_calls
              .map(function (t) {
                return t.tool + " " + (t.ok ? "✓" : "✗");
              })
              .join(", ")
        )
      );
    }
    var meta = el("small");
    meta.appendChild(document.createTextNode("Prompt version "));
    meta.appendChild(el("span", "prompt-version", g.prompt_version === null ? "—" : g.prompt_version));
    meta.appendChild(document.createTextNode(" · model "));
    meta.appendChild(el("span", "model", g.model || "—"));
    var rest = g.provider ? " (" + g.provider + ")" : "";
    if (typeof g.prompt_tokens === "number") {
      rest += " · " + g.prompt_tokens + " tokens in, " + (g.completion_tokens || 0) + " out";
    }
    if (typeof g.latency_ms === "number") rest += " · " + Math.round(g.latency_ms) + " ms";
    if (g.provider_fallback) rest += " · answered offline: " + g.provider_fallback;
    meta.appendChild(document.createTextNode(rest));
    var p = el("p", "meta");
    p.appendChild(meta);
    details.appendChild(p);
    return details;
  }

  function messageEl(m) {
    var li = el("li", "msg " + token(m.role));
    li.setAttribute("data-seq", String(m.seq));
    li.setAttribute("data-role", token(m.role));
    var head = el("div", "msg-head");
    head.appendChild(el("span", "who", m.who));
    head.appendChild(document.createTextNode(" "));
    head.appendChild(el("small", "time", m.time));
    if (m.role === "note") {
      head.appendChild(document.createTextNode(" "));
      head.appendChild(el("span", "badge note-badge", "Private note · not shown to the visitor"));
    }
    li.appendChild(head);
    li.appendChild(el("div", "bubble", m.text));
    if (m.citations && m.citations.length) {
      var ol = el("ol", "citations");
      m.citations.forEach(function (c) {
        var item = el("li");
        item.appendChild(linkOrText(c.title, c.href));
        ol.appendChild(item);
      });
      li.appendChild(ol);
    }
    if (m.feedback === true || m.feedback === false) li.appendChild(verdictEl(m.feedback));
    if (m.grounding) li.appendChild(groundingEl(m.grounding));
    return li;
  }

  function verdictEl(helpful) {
    var verdict = el("p", "visitor-feedback");
    verdict.setAttribute("data-helpful", String(helpful));
    verdict.appendChild(el("small", null, "The visitor found this answer " + (helpful ? "helpful" : "not helpful")));
    return verdict;
  }

  function showVerdict(list, seq, helpful) {
    var li = list.querySelector("li.msg.ai[data-seq='" + Number(seq) + "']");
    if (!li || typeof helpful !== "boolean") return;
    var old = li.querySelector(".visitor-feedback");
    var verdict = verdictEl(helpful);
    if (old) li.replaceChild(verdict, old);
    else li.insertBefore(verdict, li.querySelector("details.grounding"));
  }

  function conversationPage(root) {
    var id = Number(root.getAttribute("data-conversation-id"));
    var me = Number(root.getAttribute("data-user-id"));
    var messagesUrl = root.getAttribute("data-messages-url");
    var replyUrl = root.getAttribute("data-reply-url");
    var canReply = root.getAttribute("data-can-reply") === "1";
    var lastSeq = Number(root.getAttribute("data-last-seq")) || 0;
    var firstSeq = Number(root.getAttribute("data-first-seq")) || 0;
    var unread = Number(root.getAttribute("data-unread")) || 0;
    var list = document.getElementById("transcript");
    var empty = document.getElementById("transcript-empty");
    var typingBox = document.getElementById("visitor-typing");
    var typingTimer = null;
    var socket = null;
    var readSentAt = 0;
    var readTimer = null;

    function byId(name) {
      return document.getElementById(name);
    }

    function atBottom() {
      return window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
    }

    function append(m) {
      if (m.seq <= lastSeq) return;
      list.appendChild(messageEl(m));
      lastSeq = m.seq;
      root.setAttribute("data-last-seq", String(lastSeq));
      if (empty) empty.hidden = true;
      if (m.role === "visitor") hideTyping();
    }

    function markRead() {
      // Staff who can act mark what they see read; at most one frame per 2 s, the last one
      // deferred rather than dropped.
      if (!canReply || !socket || unread <= 0 || document.visibilityState !== "visible") return;
      var wait = readSentAt + 2000 - Date.now();
      if (wait > 0) {
        if (!readTimer) {
          readTimer = setTimeout(function () {
            readTimer = null;
            markRead();
          }, wait);
        }
        return;
      }
      if (socket.send({ type: "read", conversation: id })) readSentAt = Date.now();
    }

    function applyState(s) {
      var status = byId("conv-status");
      status.textContent = s.status;
      status.className = "badge status " + token(s.status);
      var owner = byId("conv-owner");
      owner.textContent = s.owner_label;
      owner.className = "badge owner " + token(s.owner);
      byId("conv-owner-text").textContent = s.owner_label;
      var snoozed = byId("conv-snoozed");
      snoozed.hidden = !s.snoozed_until;
      snoozed.querySelector("span").textContent = s.snoozed_until || "";
      var tags = byId("conv-tags");
      tags.textContent = "";
      (s.tags || []).forEach(function (t) {
        tags.appendChild(el("span", "badge tag", t));
        tags.appendChild(document.createTextNode(" "));
      });
      if (!(s.tags || []).length) tags.textContent = "—";
      byId("conv-rating").textContent = s.rating
        ? s.rating + "/5" + (s.rating_comment ? " · “" + s.rating_comment + "”" : "")
        : "—";
      var takeOver = byId("take-over-form");
      if (takeOver) takeOver.hidden = s.owner === "human" && s.assignee === me;
      var handBack = byId("hand-back-form");
      if (handBack) handBack.hidden = s.owner === "ai" || !s.can_hand_back;
      unread = s.unread || 0;
      root.setAttribute("data-unread", String(unread));
      markRead();
    }

    var fetchNew = serialised(function () {
      return getJSON(messagesUrl + "?after=" + lastSeq).then(function (data) {
        var follow = atBottom();
        data.messages.forEach(append);
        applyState(data.conversation);
        if (follow && data.messages.length) list.lastElementChild.scrollIntoView({ block: "end" });
        if (data.has_more) fetchNew();
      });
    });

    function hideTyping() {
      clearTimeout(typingTimer);
      typingBox.textContent = "";
    }

    function showTyping() {
      typingBox.textContent = "The visitor is typing…";
      clearTimeout(typingTimer);
      typingTimer = setTimeout(hideTyping, TYPING_SHOWN_MS);
    }

    socket = staffSocket(root, {
      open: fetchNew,
      event: function (frame) {
        if (conversationIdOf(frame) !== id) return;
        if (frame.type === "visitor.typing") showTyping();
        else if (frame.type === "message.feedback") showVerdict(list, frame.seq, frame.helpful);
        else fetchNew();
      },
    });
    setInterval(fetchNew, SAFETY_REFRESH_MS);
    document.addEventListener("visibilitychange", markRead);

    var earlier = byId("load-earlier");
    if (earlier) {
      earlier.addEventListener("click", function () {
        earlier.disabled = true;
        getJSON(messagesUrl + "?before=" + firstSeq)
          .then(function (data) {
            var anchor = list.firstElementChild;
            data.messages.forEach(function (m) {
              list.insertBefore(messageEl(m), anchor);
            });
            if (data.messages.length) firstSeq = data.messages[0].seq;
            earlier.hidden = !data.has_more;
          })
          .catch(function () {})
          .then(function () {
            earlier.disabled = false;
          });
      });
    }

    var form = byId("composer");
    if (!form) return;
    var input = form.querySelector("textarea[name=text]");
    var send = byId("composer-send");
    var error = byId("composer-error");
    var label = byId("composer-label");
    var typingSentAt = 0;

    function mode() {
      var checked = form.querySelector("input[name=role]:checked");
      return checked ? checked.value : "agent";
    }

    function showMode() {
      var note = mode() === "note";
      form.classList.toggle("note", note);
      label.textContent = note ? "Private note (only the team sees it)" : "Reply to the visitor";
      send.textContent = note ? "Add note" : "Send reply";
    }

    function newClientId() {
      var id = window.crypto && window.crypto.randomUUID ? window.crypto.randomUUID() : String(Math.random()).slice(2);
      form.querySelector("input[name=client_id]").value = id.replace(/[^A-Za-z0-9_-]/g, "");
    }

    form.querySelectorAll("input[name=role]").forEach(function (radio) {
      radio.addEventListener("change", showMode);
    });
    showMode();

    input.addEventListener("input", function () {
      // Only a reply is announced to the visitor; writing a private note is not.
      if (mode() !== "agent" || !input.value.trim()) return;
      if (Date.now() - typingSentAt < TYPING_SEND_MS) return;
      if (socket.send({ type: "typing", conversation: id })) typingSentAt = Date.now();
    });

    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        if (form.requestSubmit) form.requestSubmit();
        else send.click();
      }
    });

    // A draft from the AI agent: fills the message box (after asking, if it holds text) and
    // lists the sources; nothing is sent until staff press Send.
    var suggestUrl = root.getAttribute("data-suggest-url");
    var suggest = byId("composer-suggest");
    var suggestion = byId("suggestion");
    if (suggestUrl && suggest) {
      suggest.hidden = false;
      suggest.addEventListener("click", function () {
        suggest.disabled = true;
        error.hidden = true;
        suggestion.hidden = false;
        byId("suggestion-note").textContent = "Asking the AI agent…";
        byId("suggestion-sources").textContent = "";
        fetch(suggestUrl, {
          method: "POST",
          credentials: "same-origin",
          headers: { Accept: "application/json", "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value },
        })
          .then(function (r) {
            return r.json().then(function (data) {
              if (!r.ok) throw new Error((data && data.error && data.error.detail) || "HTTP " + r.status);
              return data;
            });
          })
          .then(function (data) {
            if (!data.text) {
              byId("suggestion-note").textContent = "No suggestion: the AI agent found no answer in its knowledge (" + data.reason + ").";
              return;
            }
            if (!input.value.trim() || window.confirm("Replace your draft with the AI's suggestion?")) {
              input.value = data.text;
              var agentMode = form.querySelector("input[name=role][value=agent]");
              if (agentMode && !agentMode.checked) {
                agentMode.checked = true;
                showMode();
              }
            }
            byId("suggestion-note").textContent = "Suggested by the AI agent from these sources; check it before sending:";
            var list = byId("suggestion-sources");
            data.citations.forEach(function (c) {
              var item = el("li");
              item.appendChild(linkOrText(c.title, c.href));
              list.appendChild(item);
            });
            input.focus();
          })
          .catch(function (err) {
            suggestion.hidden = true;
            error.textContent = err && err.message ? err.message : "No suggestion. Try again.";
            error.hidden = false;
          })
          .then(function () {
            suggest.disabled = false;
          });
      });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!input.value.trim() || send.disabled) return;
      send.disabled = true;
      error.hidden = true;
      var body = new FormData(form);
      fetch(replyUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": body.get("csrfmiddlewaretoken") },
        body: body,
      })
        .then(function (r) {
          return r.json().then(
            function (data) {
              if (!r.ok) throw new Error((data && data.error && data.error.detail) || "HTTP " + r.status);
              return data;
            },
            function () {
              throw new Error("The server refused the message (HTTP " + r.status + "). Reload the page.");
            }
          );
        })
        .then(function () {
          input.value = "";
          if (suggestion) suggestion.hidden = true;
          newClientId();
          typingSentAt = 0;
          fetchNew();
        })
        .catch(function (err) {
          error.textContent = err && err.message ? err.message : "The message was not sent. Try again.";
          error.hidden = false;
        })
        .then(function () {
          send.disabled = false;
          input.focus();
        });
    });
  }

  // --- copy buttons (the widget snippet) ---------------------------------------------------

  function copyButtons() {
    document.querySelectorAll("[data-copy-target]").forEach(function (button) {
      button.addEventListener("click", function () {
        var target = document.getElementById(button.getAttribute("data-copy-target"));
        var status = button.parentNode.querySelector(".copy-status");
        if (!target) return;
        var text = target.textContent;
        function done(ok) {
          if (status) status.textContent = ok ? "Copied." : "Select the line and copy it.";
        }
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(text).then(
            function () {
              done(true);
            },
            function () {
              done(false);
            }
          );
        } else {
          var range = document.createRange();
          range.selectNodeContents(target);
          var selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          var ok = false;
          try {
            ok = document.execCommand("copy");
          } catch (err) {
            ok = false;
          }
          done(ok);
        }
      });
    });
  }

  var listRoot = document.getElementById("inbox-list");
  if (listRoot) inboxList(listRoot);
  var conversationRoot = document.getElementById("conversation");
  if (conversationRoot) conversationPage(conversationRoot);
  copyButtons();
})();
