// tikrelay overlay runtime, served at /relay.js and loaded by every page through layout.hbs.
//
// It owns the connection to the relay's /ws: connect, reconnect with backoff forever (OBS
// keeps sources open for hours), apply the `hello` snapshot so a reloaded page draws the right
// totals at once, dispatch events and relay messages to handlers, and hot reload (swap a
// changed stylesheet in place, reload the page for anything else). Viewer text must only ever
// reach the page through textContent: use TikRelay.el() / TikRelay.text(), never innerHTML.
// TikRelay.player() makes a page the player of an alert queue (see there).
// A relay reachable from other PCs needs its access token for control (playing a queue,
// alert_done, queue buttons, test events): the page gets it as ?token=… in its own URL, and
// this runtime passes it on to /ws and, through TikRelay.controlHeaders(), to control requests.
(function () {
  "use strict";
  var config = window.TIKRELAY || {};
  var handlers = {};
  var socket = null;
  var started = false;
  var options = { types: null, queue: null, reload: true };
  var backoff = 500;
  var token = new URLSearchParams(location.search).get("token") || "";
  // ?stream=alice on a page's URL follows that stream only (its events on /ws); default: all.
  var stream = new URLSearchParams(location.search).get("stream") || "";
  // Alert players by queue name: {queue, render, stop, waiting: [], current: null}.
  var players = {};

  function emit(type, msg) {
    (handlers[type] || []).slice().forEach(function (fn) {
      try {
        fn(msg);
      } catch (e) {
        console.error("tikrelay handler for " + type + " failed:", e);
      }
    });
  }

  function merge(target, changes) {
    Object.keys(changes || {}).forEach(function (k) {
      target[k] = changes[k];
    });
    return target;
  }

  function swapStylesheet(path) {
    // Sheets already being replaced are skipped, so a burst of saves never stacks copies.
    var links = document.querySelectorAll("link[rel=stylesheet]:not([data-tikrelay-stale])");
    var swapped = false;
    links.forEach(function (link) {
      var url = new URL(link.href, location.href);
      var name = url.pathname.split("/").pop();
      if (url.pathname.endsWith("/" + path) || name === path) {
        url.searchParams.set("v", Date.now().toString());
        // Load the new sheet before removing the old one, so the page never flashes unstyled.
        var next = link.cloneNode();
        next.href = url.toString();
        link.setAttribute("data-tikrelay-stale", "");
        next.onload = function () {
          link.remove();
        };
        next.onerror = function () {
          // The sheet is gone (deleted or mid-rename): keep the old one.
          next.remove();
          link.removeAttribute("data-tikrelay-stale");
        };
        link.after(next);
        swapped = true;
      }
    });
    return swapped;
  }

  function onMessage(msg) {
    switch (msg.type) {
      case "hello":
        TikRelay.state = msg.state || {};
        TikRelay.version = msg.version;
        emit("hello", msg);
        emit("state", TikRelay.state);
        return;
      case "state":
        var changes = merge({}, msg);
        delete changes.v;
        delete changes.type;
        merge(TikRelay.state, changes);
        emit("state", TikRelay.state);
        return;
      case "reload":
        emit("reload", msg);
        // A theme's change reloads that theme's pages; a shared template's (theme null)
        // reloads every page. Pages that handle reloads themselves opt out.
        if (msg.theme && msg.theme !== config.theme) return;
        if (options.reload === false) return;
        if (msg.css_only && swapStylesheet(msg.path)) return;
        location.reload();
        return;
      case "template_error":
        // The last good version keeps serving; the dashboard shows the error.
        console.warn("tikrelay: " + msg.theme + "/" + msg.file + (msg.line ? ":" + msg.line : "") + ": " + msg.message);
        emit("template_error", msg);
        return;
      case "alert":
        onAlert(msg);
        emit("alert", msg);
        return;
      case "alert_skip":
        onSkip(msg);
        emit("alert_skip", msg);
        return;
      default:
        emit(msg.type, msg);
        emit("*", msg);
    }
  }

  // ---- alert player: one alert at a time, alert_done when the page is finished with it ----

  function onAlert(msg) {
    var p = players[msg.queue];
    if (!p) return;
    // After a reconnect the relay sends the alert that was playing again; it is still showing.
    if (p.current && p.current.alert_id === msg.alert_id) return;
    if (p.waiting.some(function (a) { return a.alert_id === msg.alert_id; })) return;
    p.waiting.push(msg);
    playNext(p);
  }

  function onSkip(msg) {
    var p = players[msg.queue];
    if (!p) return;
    p.waiting = p.waiting.filter(function (a) { return a.alert_id !== msg.alert_id; });
    if (p.current && p.current.alert_id === msg.alert_id) abandon(p);
  }

  // Stops the current alert at once (skipped, or its render never settled).
  function abandon(p) {
    var alert = p.current;
    p.current = null;
    if (p.stop) {
      try {
        p.stop(alert);
      } catch (e) {
        console.error("tikrelay alert stop failed:", e);
      }
    }
    playNext(p);
  }

  function playNext(p) {
    if (p.current || !p.waiting.length) return;
    var alert = p.waiting.shift();
    p.current = alert;
    var settled = false;
    // The relay moves on after duration + 1 s without alert_done; so does the page, so a render
    // that never settles cannot stall it.
    var guard = setTimeout(function () {
      if (p.current === alert) abandon(p);
    }, (Number(alert.duration_ms) || 5000) + 1500);
    function finish() {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      TikRelay.alertDone(alert.alert_id);
      if (p.current === alert) {
        p.current = null;
        playNext(p);
      }
    }
    var result;
    try {
      result = p.render(alert);
    } catch (e) {
      console.error("tikrelay alert render failed:", e);
    }
    Promise.resolve(result).then(finish, function (e) {
      console.error("tikrelay alert render failed:", e);
      finish();
    });
  }

  function socketUrl() {
    var url = new URL(config.ws_url || "/ws", location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    // An empty list means relay messages only (state, reload…): no event type is named "-".
    if (options.types) url.searchParams.set("types", options.types.length ? options.types.join(",") : "-");
    if (options.queue) url.searchParams.set("queue", options.queue);
    if (stream) url.searchParams.set("stream", stream);
    if (token) url.searchParams.set("token", token);
    return url.toString();
  }

  function connect() {
    var ws = new WebSocket(socketUrl());
    socket = ws;
    ws.onopen = function () {
      backoff = 500;
      TikRelay.connected = true;
      // An empty type list means "no events" (only relay messages such as alerts).
      if (options.types && !options.types.length) TikRelay.send({ op: "subscribe", types: [] });
      Object.keys(players).forEach(function (queue) {
        if (queue !== options.queue) TikRelay.send({ op: "play", queue: queue });
      });
      emit("open", {});
    };
    ws.onmessage = function (e) {
      var msg;
      try {
        msg = JSON.parse(e.data);
      } catch (err) {
        console.warn("tikrelay: a message was not JSON", err);
        return;
      }
      onMessage(msg);
    };
    ws.onclose = function (e) {
      TikRelay.connected = false;
      socket = null;
      emit("close", { code: e.code, reason: e.reason });
      // Jitter keeps many OBS sources from reconnecting in lockstep after a relay restart.
      var delay = Math.min(backoff, 10000) * (0.75 + Math.random() * 0.5);
      backoff = Math.min(backoff * 2, 10000);
      setTimeout(connect, delay);
    };
  }

  var TikRelay = {
    config: config,
    fields: config.fields || {},
    state: {},
    connected: false,
    /** The access token this page was opened with ("" if none). */
    token: token,
    /** Headers for a control request (POST to /api/…): `extra` plus the access token. */
    controlHeaders: function (extra) {
      var h = merge({}, extra || {});
      if (token) h["X-Tikrelay-Token"] = token;
      return h;
    },
    /** A relay URL (e.g. an overlay page) carrying this page's access token. */
    withToken: function (url) {
      var u = new URL(url, location.href);
      if (token) u.searchParams.set("token", token);
      return u.toString();
    },
    /** Registers a handler for an event type, a relay message type, or "*" for all events. */
    on: function (type, fn) {
      (handlers[type] = handlers[type] || []).push(fn);
      return TikRelay;
    },
    /** Connects. options.types narrows the events received; options.queue plays an alert
     *  queue; options.reload = false keeps hot reload from reloading the page. */
    start: function (opts) {
      if (started) return TikRelay;
      started = true;
      options = merge(options, opts || {});
      connect();
      return TikRelay;
    },
    send: function (obj) {
      if (socket && socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify(obj));
        return true;
      }
      return false;
    },
    /**
     * Makes this page a player of an alert queue. opts.queue (default "main"); opts.render(alert)
     * shows one alert ({alert_id, queue, trigger, duration_ms, event, vars}) and returns a
     * Promise that resolves when its animation and sound are over; opts.stop(alert), optional,
     * hides it at once when the queue skips it. Alerts play one at a time, and alert_done goes
     * back to the relay when render's promise settles. Call before or after start().
     */
    player: function (opts) {
      opts = opts || {};
      var queue = opts.queue || "main";
      players[queue] = {
        queue: queue,
        render: opts.render || function () {},
        stop: opts.stop,
        waiting: [],
        current: null,
      };
      if (!started && !options.queue) options.queue = queue;
      else if (started && queue !== options.queue) TikRelay.send({ op: "play", queue: queue });
      return TikRelay;
    },
    /** Tells the relay the alert finished, so its queue moves on. */
    alertDone: function (alertId) {
      return TikRelay.send({ op: "alert_done", alert_id: alertId });
    },
    /** The name to show for a viewer: nickname, else @handle. */
    displayName: function (user) {
      if (!user) return "Someone";
      var nick = (user.nickname || "").trim();
      return nick || (user.unique_id ? "@" + user.unique_id : "Someone");
    },
    /** Sets text safely: viewer text is never HTML. */
    text: function (node, value) {
      node.textContent = value == null ? "" : String(value);
      return node;
    },
    /** Creates an element with a class and text content. */
    el: function (tag, className, text) {
      var node = document.createElement(tag);
      if (className) node.className = className;
      if (text != null) node.textContent = String(text);
      return node;
    },
    /** Sets an image source only for http(s), data: or same-origin paths. */
    image: function (img, url, fallback) {
      var ok = typeof url === "string" && /^(https?:|\/|data:image\/)/.test(url);
      var src = ok ? url : fallback || "";
      // An empty src resolves to the page's own URL and shows a broken image: drop it instead.
      if (src) img.src = src;
      else img.removeAttribute("src");
      img.hidden = !src;
      return img;
    },
    /** Plays a sound file of the theme (or a URL); resolves when it ends or fails. */
    playSound: function (src, volume) {
      return new Promise(function (resolve) {
        if (!src) return resolve();
        var url = /^(https?:|\/)/.test(src) ? src : "/overlays/" + config.theme + "/" + src;
        var audio = new Audio(url);
        audio.volume = volume == null ? 1 : volume;
        audio.onended = resolve;
        audio.onerror = resolve;
        // A sound that never loads must not hold its alert forever.
        setTimeout(resolve, 20000);
        var p = audio.play();
        if (p && p.catch) p.catch(resolve);
      });
    },
    formatNumber: function (n) {
      n = Number(n) || 0;
      if (n >= 1e6) return (n / 1e6).toFixed(n >= 1e7 ? 0 : 1) + "M";
      if (n >= 1e4) return (n / 1e3).toFixed(n >= 1e5 ? 0 : 1) + "K";
      return n.toLocaleString("en-US");
    },
  };

  window.TikRelay = TikRelay;
})();
