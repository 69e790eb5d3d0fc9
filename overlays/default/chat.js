// Chat page of the default theme: the latest comments and emotes, newest at the bottom, with
// avatars. Names and messages are viewer text: textContent only, direction from the text.
// Comments a moderator or TikTok removes (`comment_deleted`) leave the page at once.
(function () {
  "use strict";
  var R = window.TikRelay;
  var T = window.Theme;
  var list = document.getElementById("chat");
  var max = Math.max(1, T.intField("chat_max", 8));
  var fadeMs = Math.max(0, Number(R.fields.chat_fade) || 0) * 1000;
  var showEmotes = R.fields.chat_emotes !== false;

  var shown = {};
  // Removed comment ids and viewer ids, so a removed comment is not shown again from the
  // backlog or a late duplicate.
  var deletedIds = {};
  var deletedUsers = {};

  function isDeleted(ev) {
    return deletedIds[ev.id] || (ev.user && ev.user.id && deletedUsers[ev.user.id]);
  }

  function removeDeleted(ev) {
    (ev.message_ids || []).forEach(function (id) {
      deletedIds[id] = true;
    });
    (ev.user_ids || []).forEach(function (id) {
      deletedUsers[id] = true;
    });
    Array.prototype.slice.call(list.children).forEach(function (msg) {
      if (deletedIds[msg.dataset.id] || (msg.dataset.user && deletedUsers[msg.dataset.user])) {
        msg.remove();
      }
    });
  }

  function add(ev, text, kind) {
    if (shown[ev.id] || isDeleted(ev)) return;
    shown[ev.id] = true;
    var msg = R.el("div", "chat-msg " + kind);
    // dataset values are set as text, never parsed as markup.
    msg.dataset.id = ev.id;
    if (ev.user && ev.user.id) msg.dataset.user = ev.user.id;
    msg.style.setProperty("--hue", "hsl(" + T.hue(ev.user) + " 90% 68%)");
    var img = R.el("img", "avatar");
    img.alt = "";
    T.avatar(img, ev.user);
    var body = R.el("div", "chat-body");
    var name = R.el("span", "name", R.displayName(ev.user));
    name.dir = "auto";
    var line = R.el("div", "chat-text", text);
    line.dir = "auto";
    body.appendChild(name);
    marks(msg, body, ev.user);
    body.appendChild(line);
    msg.appendChild(img);
    msg.appendChild(body);
    list.appendChild(msg);
    while (list.children.length > max) list.removeChild(list.firstElementChild);
    if (fadeMs > 0) {
      var left = ev.ts ? Math.max(0, fadeMs - (Date.now() - ev.ts)) : fadeMs;
      setTimeout(function () {
        msg.classList.add("leave");
        setTimeout(function () {
          msg.remove();
        }, 420);
      }, left);
    }
  }

  // Viewer roles (issue 10): moderators and top gifters get a mark after the name, as text
  // (and a class on the message for themes to style); unknown roles mark nothing.
  function marks(msg, body, user) {
    if (!user) return;
    if (user.is_moderator === true) {
      msg.classList.add("is-moderator");
      body.appendChild(R.el("span", "role role-mod", "MOD"));
    }
    var rank = Math.floor(Number(user.top_gifter_rank));
    if (rank > 0) {
      msg.classList.add("is-top-gifter");
      body.appendChild(R.el("span", "role role-top", "TOP " + rank));
    }
  }

  function show(ev) {
    if (ev.type === "comment") return add(ev, ev.text, "comment");
    if (ev.type !== "emote" || !showEmotes) return;
    var n = (ev.emote_ids || []).length;
    add(ev, n > 1 ? "sent " + n + " emotes" : "sent an emote", "emote");
  }

  R.on("comment", show).on("emote", show).on("comment_deleted", removeDeleted);
  // OBS reloads a source when its scene becomes active: start from the relay's recent events
  // instead of an empty chat.
  fetch("/api/events?limit=200")
    .then(function (r) {
      return r.ok ? r.json() : [];
    })
    .then(function (events) {
      events
        .filter(function (ev) {
          return ev.type === "comment_deleted";
        })
        .forEach(removeDeleted);
      events
        .filter(function (ev) {
          return (ev.type === "comment" || ev.type === "emote") && !(fadeMs > 0 && Date.now() - ev.ts > fadeMs);
        })
        .slice(-max)
        .forEach(show);
    })
    .catch(function () {})
    .then(function () {
      R.start({ types: ["comment", "emote", "comment_deleted"] });
    });
})();
