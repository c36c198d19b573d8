// The agent test chat: posts the conversation kept here to the turn endpoint and renders the
// NDJSON it streams back ({"type":"delta"|"final"|"error"} lines). Every text from the server
// (AI answers, document titles, reasons) is untrusted: it is only ever set with textContent,
// and links only get http(s) or same-site addresses.
(function () {
  "use strict";
  var root = document.getElementById("test-chat");
  if (!root) return;
  var url = root.getAttribute("data-turn-url");
  var form = document.getElementById("chat-form");
  var input = document.getElementById("chat-input");
  var log = document.getElementById("chat-log");
  var send = document.getElementById("chat-send");
  var status = document.getElementById("chat-status");
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;

  var messages = []; // [{role: "user"|"assistant", text}], re-sent every turn
  var summary = ""; // older turns the server folded into a summary
  var abstentions = 0; // consecutive abstentions, for the escalation policy
  var busy = false;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function safeHref(href) {
    href = String(href || "");
    return /^(https?:\/\/|\/(?!\/))/i.test(href) ? href : "";
  }

  function number(value, digits) {
    return typeof value === "number" ? value.toFixed(digits) : "—";
  }

  function addUser(text) {
    var li = el("li", "turn user");
    li.appendChild(el("div", "bubble", text));
    log.appendChild(li);
  }

  function addAi() {
    var li = el("li", "turn ai");
    li.setAttribute("data-state", "streaming");
    li.setAttribute("data-deltas", "0");
    var bubble = el("div", "bubble text streaming");
    var details = el("div", "details", "Thinking…");
    li.appendChild(bubble);
    li.appendChild(details);
    log.appendChild(li);
    li.scrollIntoView({ block: "end" });
    return { li: li, bubble: bubble, details: details, deltas: 0 };
  }

  function linkOrText(title, href) {
    href = safeHref(href);
    if (!href) return el("span", "", title);
    var a = el("a", "", title);
    a.href = href;
    if (/^https?:/i.test(href)) a.rel = "noopener noreferrer";
    return a;
  }

  function renderDetails(turn, final, totalMs, firstMs) {
    var audit = final.audit || {};
    var retrieval = audit.retrieval || {};
    var usage = audit.usage || {};
    var sources = final.sources || {};
    var box = turn.details;
    box.textContent = "";

    var head = el("div", "decision-line");
    head.appendChild(el("span", "badge decision " + final.decision, final.decision));
    head.appendChild(document.createTextNode(" "));
    head.appendChild(el("span", "reason", final.reason || audit.reason || ""));
    box.appendChild(head);

    box.appendChild(el("h3", "", "Citations"));
    if (final.citations && final.citations.length) {
      var list = el("ul", "citations");
      final.citations.forEach(function (c) {
        var li = el("li");
        li.appendChild(el("span", "ref", "[" + c.index + "] "));
        li.appendChild(linkOrText(c.title || "Source " + c.source_id, c.href));
        list.appendChild(li);
      });
      box.appendChild(list);
    } else {
      box.appendChild(el("div", "citations none", "none"));
    }

    box.appendChild(el("h3", "", "Retrieved passages"));
    if (retrieval.skipped) {
      box.appendChild(el("div", "chunks none", "Retrieval skipped (" + retrieval.skipped + ")"));
    } else if (retrieval.chunks && retrieval.chunks.length) {
      var table = el("table", "chunks");
      var header = el("tr");
      ["#", "Source", "Score", "Similarity"].forEach(function (h) { header.appendChild(el("th", "", h)); });
      table.appendChild(header);
      retrieval.chunks.forEach(function (c) {
        var row = el("tr", "chunk");
        row.appendChild(el("td", "", c.ref));
        var title = el("td", "title");
        title.appendChild(linkOrText(c.title || "Source " + c.source_id, sources[String(c.source_id)]));
        row.appendChild(title);
        row.appendChild(el("td", "score", number(c.score, 4)));
        row.appendChild(el("td", "similarity", number(c.similarity, 3)));
        table.appendChild(row);
      });
      box.appendChild(table);
      box.appendChild(el("small", "", "Best similarity " + number(retrieval.best_similarity, 3) +
        " (threshold " + number(audit.min_similarity, 2) + ")"));
      if (retrieval.unknown_words && retrieval.unknown_words.length) {
        box.appendChild(el("p", "unknown-words",
          "Not mentioned anywhere in the knowledge: " + retrieval.unknown_words.join(", ")));
      }
    } else {
      box.appendChild(el("div", "chunks none", "No passages found."));
    }

    if (final.tool_calls && final.tool_calls.length) {
      box.appendChild(el("h3", "", "Tool calls"));
      var tools = el("ul", "tool-calls");
      final.tool_calls.forEach(function (t) {
        tools.appendChild(el("li", "", (t.tool || "?") + (t.ok ? " ✓" : " ✗ " + (t.error || ""))));
      });
      box.appendChild(tools);
    }

    var tokens = (usage.prompt_tokens || 0) + (usage.completion_tokens || 0);
    var meta = el("div", "meta");
    meta.appendChild(document.createTextNode("Prompt version "));
    meta.appendChild(el("span", "prompt-version", audit.prompt_version));
    meta.appendChild(document.createTextNode(" · tokens "));
    meta.appendChild(el("span", "tokens", tokens));
    meta.appendChild(document.createTextNode(" (" + (usage.prompt_tokens || 0) + " in, " +
      (usage.completion_tokens || 0) + " out) · "));
    meta.appendChild(el("span", "latency", Math.round(totalMs) + " ms"));
    meta.appendChild(document.createTextNode(" total, " + number(audit.latency_ms, 0) + " ms on the server" +
      (firstMs !== null ? ", first words after " + Math.round(firstMs) + " ms" : "") +
      " · " + (audit.provider || "") + " " + (audit.model || "")));
    box.appendChild(meta);
    if (audit.provider_fallback) {
      box.appendChild(el("div", "fallback", "Answered offline: " + audit.provider_fallback + "."));
    }
  }

  function showError(turn, code, detail) {
    turn.li.setAttribute("data-state", "error");
    turn.li.className = "turn ai failed";
    turn.bubble.classList.remove("streaming");
    turn.details.textContent = "";
    var box = el("div", "error", detail || "The turn failed.");
    box.setAttribute("role", "alert");
    box.setAttribute("data-code", code || "error");
    turn.details.appendChild(box);
    if (messages.length && messages[messages.length - 1].role === "user") messages.pop();
  }

  // Read NDJSON from a fetch response, calling onEvent per complete line as it arrives.
  function readLines(response, onEvent) {
    var decoder = new TextDecoder();
    var buffer = "";
    function flush(final) {
      var lines = buffer.split("\n");
      buffer = final ? "" : lines.pop();
      lines.forEach(function (line) {
        if (line.trim()) onEvent(JSON.parse(line));
      });
    }
    if (!response.body || !response.body.getReader) {
      return response.text().then(function (text) { buffer = text; flush(true); });
    }
    var reader = response.body.getReader();
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) {
          buffer += decoder.decode();
          flush(true);
          return;
        }
        buffer += decoder.decode(chunk.value, { stream: true });
        flush(false);
        return pump();
      });
    }
    return pump();
  }

  function ask(text) {
    busy = true;
    send.disabled = true;
    status.textContent = "The agent is answering…";
    addUser(text);
    // The endpoint takes at most 100 messages; the server folds old turns into the summary
    // long before that, but very short turns may not weigh enough: drop the oldest pairs.
    while (messages.length > 98) messages.splice(0, 2);
    messages.push({ role: "user", text: text });
    var turn = addAi();
    var started = performance.now();
    var firstAt = null;
    var done = false;

    function onEvent(event) {
      if (event.type === "delta") {
        if (firstAt === null) firstAt = performance.now() - started;
        turn.deltas += 1;
        turn.li.setAttribute("data-deltas", String(turn.deltas));
        turn.bubble.textContent += event.text;
      } else if (event.type === "final") {
        done = true;
        turn.bubble.classList.remove("streaming");
        turn.bubble.textContent = event.text; // authoritative: may differ from what streamed
        turn.li.setAttribute("data-decision", event.decision);
        turn.li.setAttribute("data-state", "done");
        renderDetails(turn, event, performance.now() - started, firstAt);
        messages.push({ role: "assistant", text: event.text });
        if (event.folded_turns > 0) {
          messages = messages.slice(event.folded_turns);
          summary = event.summary || "";
        }
        abstentions = event.decision === "abstained" ? abstentions + 1 : 0;
      } else if (event.type === "error") {
        done = true;
        showError(turn, event.code, event.detail);
      }
    }

    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/x-ndjson", "X-CSRFToken": csrf },
      body: JSON.stringify({ messages: messages, summary: summary, abstentions: abstentions }),
    })
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (type.indexOf("application/x-ndjson") !== 0) {
          throw new Error("The server refused the turn (HTTP " + response.status + "). Reload the page and try again.");
        }
        return readLines(response, onEvent);
      })
      .then(function () {
        if (!done) showError(turn, "incomplete", "The answer stopped before it finished. Try again.");
      })
      .catch(function (err) {
        showError(turn, "network", err && err.message ? err.message : "The turn failed.");
      })
      .then(function () {
        busy = false;
        send.disabled = false;
        status.textContent = "";
        turn.li.scrollIntoView({ block: "end" });
        input.focus();
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text || busy) return;
    input.value = "";
    ask(text);
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : send.click();
    }
  });

  document.getElementById("chat-reset").addEventListener("click", function () {
    if (busy) return;
    messages = [];
    summary = "";
    abstentions = 0;
    log.textContent = "";
    input.focus();
  });
})();
