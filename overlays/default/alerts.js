// Alerts page of the default theme: shows follow, share and gift alerts one at a time.
// Viewer text goes in with textContent only (TikRelay.text), never as HTML.
(function () {
  "use strict";
  var R = window.TikRelay;
  var box = document.getElementById("alert");
  var nameEl = box.querySelector(".alert-name");
  var actionEl = box.querySelector(".alert-action");
  var avatarEl = box.querySelector(".alert-avatar");
  var giftEl = box.querySelector(".alert-gift");
  var pending = [];
  var playing = false;

  function describe(ev) {
    switch (ev.type) {
      case "follow":
        return { action: R.fields.follow_text || "followed you!", kind: "follow" };
      case "share":
        return { action: R.fields.share_text || "shared the LIVE!", kind: "share" };
      case "gift":
        var g = ev.gift || {};
        var count = ev.count > 1 ? " x" + ev.count : "";
        var verb = R.fields.gift_text || "sent";
        return { action: verb + " " + (g.name || "a gift") + count, kind: "gift", image: g.image_url };
      default:
        return null;
    }
  }

  function show(ev, item) {
    return new Promise(function (resolve) {
      R.text(nameEl, R.displayName(ev.user));
      R.text(actionEl, item.action);
      R.image(avatarEl, ev.user && ev.user.avatar_url, "/overlays/" + R.config.theme + "/images/avatar-1.svg");
      R.image(giftEl, item.image);
      box.dataset.kind = item.kind;
      box.hidden = false;
      box.classList.remove("leave");
      // Restart the entry animation even when two alerts follow each other.
      void box.offsetWidth;
      box.classList.add("enter");
      var duration = ev.type === "gift" ? 5000 : 4000;
      setTimeout(function () {
        box.classList.remove("enter");
        box.classList.add("leave");
        setTimeout(function () {
          box.hidden = true;
          box.classList.remove("leave");
          resolve();
        }, 450);
      }, duration);
    });
  }

  function next() {
    if (playing || !pending.length) return;
    playing = true;
    var ev = pending.shift();
    show(ev, describe(ev)).then(function () {
      playing = false;
      next();
    });
  }

  function enqueue(ev) {
    if (!describe(ev)) return;
    pending.push(ev);
    if (pending.length > 50) pending.shift();
    next();
  }

  R.on("follow", enqueue).on("share", enqueue).on("gift", enqueue);
  R.start({ types: ["follow", "share", "gift"] });
})();
