// Goal page of the default theme: a bar towards a target. What counts (room likes, diamonds,
// follows…) and the target are fields, so one page serves many goals by URL alone; the
// current value is read from the relay's state snapshot, which survives a page reload.
(function () {
  "use strict";
  var R = window.TikRelay;
  var T = window.Theme;
  var root = document.getElementById("goal");
  var fill = document.getElementById("goal-fill");
  var current = document.getElementById("goal-current");
  var percent = document.getElementById("goal-percent");
  var title = document.getElementById("goal-title");
  var metric = R.fields.goal_metric || "room_likes";
  var target = Math.max(1, Number(R.fields.goal_target) || 1);
  var reached = false;
  var baseTitle = title.textContent;

  R.text(document.getElementById("goal-target"), R.formatNumber(target));
  var icon = document.getElementById("goal-icon");
  if (R.fields.goal_icon) R.image(icon, T.file(R.fields.goal_icon));
  else icon.hidden = true;

  function value(totals) {
    if (metric === "room_likes") return Number(totals.room_likes || totals.likes) || 0;
    return Number(totals[metric]) || 0;
  }

  R.on("state", function (state) {
    var v = value((state && state.totals) || {});
    var k = Math.min(1, v / target);
    fill.style.width = (k * 100).toFixed(2) + "%";
    R.text(percent, Math.floor(k * 100) + "%");
    T.countTo(current, v);
    if (v >= target && !reached) {
      reached = true;
      root.classList.add("reached");
      R.text(title, R.fields.goal_done_text || baseTitle);
    } else if (v < target && reached) {
      reached = false;
      root.classList.remove("reached");
      R.text(title, baseTitle);
    }
  });
  // Totals arrive as `state` messages; no events are needed.
  R.start({ types: [] });
})();
