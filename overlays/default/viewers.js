// Viewers page of the default theme: how many watch now (and the peak, if the field asks).
(function () {
  "use strict";
  var R = window.TikRelay;
  var T = window.Theme;
  var count = document.getElementById("viewers-count");
  var peakEl = document.getElementById("viewers-peak");
  var peak = 0;

  function show(now, best) {
    T.countTo(count, now);
    peak = Math.max(peak, Number(best) || 0, Number(now) || 0);
    R.text(peakEl, "peak " + R.formatNumber(peak));
  }

  R.on("state", function (state) {
    var t = (state && state.totals) || {};
    show(t.viewers, t.peak_viewers);
  });
  R.on("viewers", function (ev) {
    show(ev.viewers, ev.viewers);
  });
  R.start({ types: ["viewers"] });
})();
