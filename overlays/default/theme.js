// Shared helpers of the default theme's pages, loaded before each page's own script.
// Everything that shows viewer text goes through TikRelay.text / TikRelay.el (textContent).
(function () {
  "use strict";
  var R = window.TikRelay;
  var base = "/overlays/" + R.config.theme + "/";

  function hash(s) {
    var h = 0;
    s = String(s || "");
    for (var i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
    return Math.abs(h);
  }

  window.Theme = {
    /** A theme file's URL. */
    file: function (path) {
      return base + path;
    },
    /** Shows the viewer's avatar, or one of the theme's stand-ins picked by the viewer's id. */
    avatar: function (img, user) {
      var key = user ? user.id || user.unique_id || user.nickname : "";
      var fallback = base + "images/avatar-" + ((hash(key) % 6) + 1) + ".svg";
      R.image(img, user && (user.avatar || user.avatar_url), fallback);
      img.onerror = function () {
        img.onerror = null;
        img.src = fallback;
      };
      return img;
    },
    /** A stable hue per viewer, so a name keeps its color in chat. */
    hue: function (user) {
      // Golden-angle steps spread neighbouring ids (7001, 7002…) far apart on the wheel.
      return Math.round((hash(user && (user.id || user.unique_id)) * 137.508) % 360) + "";
    },
    /** Plays the sound a field names, at the volume field; resolves when it ends. */
    sound: function (field) {
      var src = R.fields[field];
      var volume = R.fields.volume == null ? 1 : Number(R.fields.volume);
      if (!src || !(volume > 0)) return Promise.resolve();
      return R.playSound(src, volume);
    },
    /** Restarts a CSS animation class on an element. */
    bump: function (el, cls) {
      cls = cls || "bump";
      el.classList.remove(cls);
      void el.offsetWidth;
      el.classList.add(cls);
    },
    /** Counts a number element up (or down) to `to` over a short time. */
    countTo: function (el, to, format) {
      format = format || R.formatNumber;
      var from = Number(el.dataset.value || 0);
      to = Number(to) || 0;
      el.dataset.value = String(to);
      if (el._countTimer) cancelAnimationFrame(el._countTimer);
      if (from === to || document.hidden) {
        el.textContent = format(to);
        return;
      }
      var start = performance.now();
      var span = 600;
      function step(now) {
        var k = Math.min(1, (now - start) / span);
        var eased = 1 - Math.pow(1 - k, 3);
        el.textContent = format(Math.round(from + (to - from) * eased));
        if (k < 1) el._countTimer = requestAnimationFrame(step);
      }
      el._countTimer = requestAnimationFrame(step);
      // A source OBS does not render gets no animation frames: land on the value regardless.
      clearTimeout(el._countEnd);
      el._countEnd = setTimeout(function () {
        cancelAnimationFrame(el._countTimer);
        el.textContent = format(to);
      }, span + 100);
    },
    /** Whole number from a field, clamped. */
    intField: function (name, fallback) {
      var n = Math.round(Number(R.fields[name]));
      return isFinite(n) ? n : fallback;
    },
  };
})();
