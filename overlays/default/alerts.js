// Alerts page of the default theme: the player of alert queue "main" (or ?queue=NAME). The relay
// sends one alert at a time; this page shows it (title, subtitle, avatar, gift image, sound) and
// answers alert_done when the animation and the sound are over. Viewer text goes in with
// textContent only (TikRelay.text), never as HTML.
(function () {
  "use strict";
  var R = window.TikRelay;
  var box = document.getElementById("alert");
  var nameEl = box.querySelector(".alert-name");
  var actionEl = box.querySelector(".alert-action");
  var avatarEl = box.querySelector(".alert-avatar");
  var giftEl = box.querySelector(".alert-gift");
  var LEAVE_MS = 450;
  var leaving = null;

  // Text for alerts whose trigger gives no subtitle: the theme's fields.
  function fallbackSubtitle(ev) {
    switch (ev.type) {
      case "follow":
        return R.fields.follow_text || "followed you!";
      case "share":
        return R.fields.share_text || "shared the LIVE!";
      case "gift":
        var g = ev.gift || {};
        var count = ev.count > 1 ? " x" + ev.count : "";
        return (R.fields.gift_text || "sent") + " " + (g.name || "a gift") + count;
      default:
        return "";
    }
  }

  // Sound for alerts whose trigger names none: the theme's sound fields ("" means silent).
  function fallbackSound(ev) {
    switch (ev.type) {
      case "follow":
        return R.fields.follow_sound;
      case "share":
        return R.fields.share_sound;
      case "gift":
        return R.fields.gift_sound;
      default:
        return "";
    }
  }

  // A text set in this page's URL (one OBS source) wins over the config's subtitle.
  var inUrl = new URLSearchParams(location.search);
  // The gift picture through the relay's image cache (issue 10): a trigger's `image` that is
  // just the gift's original URL (`{{gift.image_url}}`, which expires) becomes its relay URL.
  function giftImage(ev, image) {
    var gift = ev.gift || {};
    if (!image || image === gift.image_url) return gift.image || gift.image_url;
    return image;
  }

  function pageSubtitle(ev) {
    var field = { follow: "follow_text", share: "share_text", gift: "gift_text" }[ev.type];
    return field && inUrl.has(field) ? fallbackSubtitle(ev) : "";
  }

  function hide() {
    clearTimeout(leaving);
    box.hidden = true;
    box.classList.remove("enter", "leave");
  }

  function show(alert) {
    var ev = alert.event || {};
    var vars = alert.vars || {};
    hide();
    R.text(nameEl, vars.title || R.displayName(ev.user));
    R.text(actionEl, pageSubtitle(ev) || vars.subtitle || fallbackSubtitle(ev));
    R.image(avatarEl, ev.user && (ev.user.avatar || ev.user.avatar_url), "/overlays/" + R.config.theme + "/images/avatar-1.svg");
    R.image(giftEl, giftImage(ev, vars.image));
    box.dataset.kind = ev.type || "";
    box.dataset.alertId = alert.alert_id;
    box.hidden = false;
    // Restart the entry animation even when two alerts follow each other.
    void box.offsetWidth;
    box.classList.add("enter");
    var duration = Math.max(1000, Number(alert.duration_ms) || 5000);
    var shown = new Promise(function (resolve) {
      leaving = setTimeout(function () {
        box.classList.remove("enter");
        box.classList.add("leave");
        leaving = setTimeout(function () {
          hide();
          resolve();
        }, LEAVE_MS);
      }, duration - LEAVE_MS);
    });
    var volume = R.fields.volume == null ? 0.8 : Number(R.fields.volume);
    var soundField = { follow: "follow_sound", share: "share_sound", gift: "gift_sound" }[ev.type];
    var fromUrl = soundField && inUrl.has(soundField);
    var sound = volume > 0 ? (fromUrl ? fallbackSound(ev) : vars.sound || fallbackSound(ev)) : "";
    return Promise.all([shown, R.playSound(sound, volume)]);
  }

  var queue = new URLSearchParams(location.search).get("queue") || "main";
  R.player({ queue: queue, render: show, stop: hide });
  // No events: this page only plays alerts.
  R.start({ types: [] });
})();
