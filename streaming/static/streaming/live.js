// The live tail (streaming/templates/streaming/tail.html) on the viewer WebSocket of API.md
// section 8. The socket is authenticated by this browser's session cookie: no token in any URL.
//
// Frames are queued as they come and drawn once per animation frame, so thousands of lines a
// second cost one DOM update per frame; the page keeps at most `max_lines` items (older ones
// leave the DOM), and so does the queue (while paused, or while the tab is hidden and no frame is
// drawn), counting what it could not keep.
(function () {
  "use strict";
  var list = document.getElementById("tail");
  var configNode = document.getElementById("tail-config");
  if (!list || !configNode) { return; }
  var config = JSON.parse(configNode.textContent);
  var MAX = config.max_lines;
  var SLACK = 256; // the queue is cut back to MAX once it is this much over (amortised)
  var RETRIES = 5;

  function byId(id) { return document.getElementById(id); }
  var els = {
    status: byId("tail-status"), countdown: byId("tail-countdown"), received: byId("tail-received"),
    dropped: byId("tail-dropped"), warning: byId("tail-warning"), paused: byId("tail-paused"),
    problem: byId("tail-problem"), ended: byId("tail-ended"), waiting: byId("tail-waiting"),
    pause: byId("tail-pause"), resume: byId("tail-resume"), stop: byId("tail-stop")
  };

  var state = {
    open: config.open,
    paused: false,
    queue: [],        // items to draw: {line: frame} or {gap: count, text: "..."}
    skipped: 0,       // lines not kept while paused (the queue was full)
    lastSeq: null,    // seq of the last line received
    credit: 0,        // lines a lines_dropped frame announced since then (a seq jump they explain)
    received: 0,
    dropped: config.lines_dropped,
    deadline: performance.now() + config.seconds_left * 1000,
    scheduled: false,
    drawAfter: 0,     // no drawing before this time (performance.now())
    retries: 0,
    timer: null,
    warned: false,    // the server said the session is ending (session_ending)
    following: true   // the list is scrolled to its end, so new lines scroll into view
  };

  function plural(count, word) {
    return count.toLocaleString("en") + " " + word + (count === 1 ? "" : "s");
  }

  function show(element, text) {
    element.textContent = text;
    element.hidden = false;
  }

  function setStatus(status) {
    els.status.textContent = status;
    els.status.className = "status " + status;
  }

  // --- drawing ------------------------------------------------------------------------------

  function schedule() {
    if (!state.scheduled) {
      state.scheduled = true;
      window.requestAnimationFrame(draw);
    }
  }

  function weight(item) { return item.line ? 1 : item.gap; }

  function enqueue(item) {
    state.queue.push(item);
    if (state.queue.length > MAX + SLACK) {
      var cut = state.queue.length - MAX;
      if (state.paused) {
        for (var i = 0; i < cut; i++) { state.skipped += weight(state.queue[i]); }
      }
      state.queue.splice(0, cut);
    }
    schedule();
  }

  function span(className, text) {
    var element = document.createElement("span");
    element.className = className;
    element.textContent = text;
    return element;
  }

  function timeOfDay(value) {
    // The time of day is what a tail needs at a glance; the whole value is in the item's title.
    var match = /T(\d\d:\d\d:\d\d(?:\.\d{1,3})?)/.exec(value);
    return match ? match[1] : value;
  }

  function levelClass(level) {
    return "lvl-" + (String(level || "none").toLowerCase().replace(/[^a-z]/g, "") || "none");
  }

  // Few nodes per line (level, then source and time in one span, then the message), since
  // style, layout and paint of the page grow with them.
  function render(item) {
    var li = document.createElement("li");
    if (item.gap !== undefined) {
      li.className = "gap";
      li.textContent = item.text;
      return li;
    }
    var frame = item.line;
    var stamp = String(frame.timestamp || "");
    li.className = "line " + levelClass(frame.level);
    li.setAttribute("data-seq", frame.seq);
    li.title = stamp;
    li.append(span("lvl", frame.level || "-"), span("meta", " " + (frame.source || "-") + " " + timeOfDay(stamp) + " "),
      span("msg", frame.message));
    if (frame.truncated) { li.append(span("meta", " [cut at 64 KiB]")); }
    return li;
  }

  function heldLines() {
    var count = 0;
    for (var i = 0; i < state.queue.length; i++) { if (state.queue[i].line) { count++; } }
    return count;
  }

  function draw(now) {
    state.scheduled = false;
    if (now < state.drawAfter) { schedule(); return; }
    els.received.textContent = state.received.toLocaleString("en");
    els.dropped.textContent = state.dropped.toLocaleString("en");
    if (state.paused) {
      var text = "Paused: " + plural(heldLines(), "new line") + " held back";
      if (state.skipped) { text += ", " + plural(state.skipped, "more line") + " not kept"; }
      show(els.paused, text + ". Resume to see them.");
      return;
    }
    if (!state.queue.length) { return; }
    var begin = performance.now();
    var items = state.queue;
    state.queue = [];
    if (items.length > MAX) { items = items.slice(items.length - MAX); }
    var fragment = document.createDocumentFragment();
    for (var i = 0; i < items.length; i++) { fragment.appendChild(render(items[i])); }
    list.appendChild(fragment);
    var excess = list.children.length - MAX;
    if (excess > 0) {
      var range = document.createRange();
      range.setStartBefore(list.firstElementChild);
      range.setEndAfter(list.children[excess - 1]);
      range.deleteContents();
    }
    // One layout per frame, the one the frame needs anyway: the size is read after the writes.
    if (state.following) { list.scrollTop = list.scrollHeight; }
    els.waiting.hidden = true;
    // A page that takes long to draw (a slow machine, a flood of lines) draws less often, with more
    // lines each time, and stays responsive: at most a third of the time goes to drawing.
    state.drawAfter = begin + 3 * (performance.now() - begin);
  }

  // Reading the scroll position only when the person scrolls keeps the drawing free of forced layouts.
  list.addEventListener("scroll", function () {
    state.following = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
  }, { passive: true });

  // --- frames -------------------------------------------------------------------------------

  function missing(count) {
    return "— " + plural(count, "line") + " missing —";
  }

  function onLine(frame) {
    if (state.lastSeq !== null && frame.seq > state.lastSeq + 1) {
      var gap = frame.seq - state.lastSeq - 1 - state.credit;
      if (gap > 0) { enqueue({ gap: gap, text: missing(gap) }); }
    }
    state.credit = 0;
    state.lastSeq = frame.seq;
    state.received++;
    if (els.status.textContent === "pending") { setStatus("active"); }
    enqueue({ line: frame });
  }

  function onDropped(count) {
    state.dropped += count;
    state.credit += count;
    enqueue({ gap: count, text: missing(count) });
  }

  function onEnding(seconds) {
    state.deadline = performance.now() + seconds * 1000;
    state.warned = true;
    els.warning.hidden = false;
    tick();
  }

  // The page is live no more: the session ended (`status` as it now is), or this socket was refused.
  function finish(sentence, status) {
    if (!state.open) { return; }
    state.open = false;
    window.clearInterval(state.timer);
    if (status) { setStatus(status); }
    els.countdown.textContent = "—";
    els.countdown.classList.remove("warning");
    els.warning.hidden = true;
    els.waiting.hidden = true;
    show(els.ended, sentence);
    els.pause.disabled = true;
    if (state.paused) { els.resume.disabled = false; }
    if (els.stop) { els.stop.remove(); }
    schedule();
  }

  function end(reason) {
    finish("This session has ended: " + (config.reasons[reason] || reason) + ".",
      reason === "timeout" ? "expired" : "stopped");
  }

  function receive(frame) {
    if (frame.type === "log") { onLine(frame); return; }
    if (frame.type !== "control") { return; }
    if (frame.event === "session_started") {
      state.retries = 0;
      els.problem.hidden = true;
      setStatus(frame.status);
      if (state.lastSeq === null) { els.waiting.textContent = "Connected: waiting for the agent's lines…"; }
    } else if (frame.event === "session_ending") {
      onEnding(frame.seconds_remaining);
    } else if (frame.event === "lines_dropped") {
      onDropped(frame.count);
    } else if (frame.event === "session_ended") {
      end(frame.reason);
    }
  }

  // --- the socket ---------------------------------------------------------------------------

  function refused(event) {
    // 4401 the sign-in ended (its reason: logged out, password changed...), 4403, 4404, 4410.
    var reason = event.reason || ("closed with code " + event.code);
    finish("Disconnected: " + reason + ".");
    if (event.code === 4401) {
      var link = document.createElement("a");
      link.href = "/login?next=" + encodeURIComponent(location.pathname);
      link.textContent = "Sign in again";
      els.ended.append(" ", link, " to keep watching.");
    }
  }

  function onClose(event) {
    if (!state.open) { return; }
    if (event.code === 1000) { finish("This session has ended."); return; }
    if (event.code >= 4000) { refused(event); return; }
    if (state.retries < RETRIES) {
      state.retries++;
      show(els.problem, "The connection was lost; reconnecting…");
      window.setTimeout(connect, 1000 * state.retries);
    } else {
      show(els.problem, "The connection was lost. Reload the page to try again.");
    }
  }

  function connect() {
    if (!state.open) { return; }
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + config.socket_path);
    socket.addEventListener("message", function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (error) { return; }
      receive(frame);
    });
    socket.addEventListener("close", onClose);
  }

  // --- controls and the countdown -----------------------------------------------------------

  function tick() {
    if (!state.open) { return; }
    var left = Math.max(0, Math.round((state.deadline - performance.now()) / 1000));
    els.countdown.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
    if (state.warned) {
      els.countdown.classList.add("warning");
      els.warning.textContent = "This session ends in " + plural(left, "second") + ": its time runs out.";
    }
  }

  els.pause.addEventListener("click", function () {
    state.paused = true;
    els.pause.disabled = true;
    els.resume.disabled = false;
    els.resume.focus();
    schedule();
  });

  els.resume.addEventListener("click", function () {
    state.paused = false;
    var cut = state.queue.length - (MAX - 1);
    if (cut > 0) {
      for (var i = 0; i < cut; i++) { state.skipped += weight(state.queue[i]); }
      state.queue.splice(0, cut);
    }
    if (state.skipped) {
      state.queue.unshift({ gap: state.skipped, text: "— " + plural(state.skipped, "line") + " not kept while paused —" });
      state.skipped = 0;
    }
    els.paused.hidden = true;
    els.resume.disabled = true;
    els.pause.disabled = !state.open;
    if (state.open) { els.pause.focus(); }
    schedule();
  });

  if (els.stop) {
    // Posted by htmx (hx-post, 204); the socket says session_ended too, whichever comes first.
    els.stop.addEventListener("htmx:afterRequest", function (event) {
      if (event.detail.successful) {
        end("stopped");
      } else {
        show(els.problem, "The session could not be stopped (HTTP " + event.detail.xhr.status + ").");
      }
    });
  }

  if (state.open) {
    state.timer = window.setInterval(tick, 500);
    tick();
    connect();
  }
})();
