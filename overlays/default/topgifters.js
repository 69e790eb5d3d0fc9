// Top gifters page of the default theme: the session's leaderboard by diamonds, from the
// relay's state (`top_gifters`), so a reloaded page shows the board at once.
(function () {
  "use strict";
  var R = window.TikRelay;
  var T = window.Theme;
  var list = document.getElementById("top-list");
  var empty = document.getElementById("top-empty");
  var places = Math.max(1, T.intField("top_count", 5));
  var last = {};

  function key(entry) {
    var u = entry.user || {};
    return u.id || u.unique_id || u.nickname || "";
  }

  function draw(board) {
    board = (board || []).slice(0, places);
    empty.hidden = board.length > 0;
    var next = {};
    list.textContent = "";
    board.forEach(function (entry, i) {
      var k = key(entry);
      var row = R.el("li", "top-row");
      row.appendChild(R.el("span", "top-rank", i + 1));
      var img = R.el("img", "avatar");
      img.alt = "";
      T.avatar(img, entry.user);
      row.appendChild(img);
      var name = R.el("span", "name", R.displayName(entry.user));
      name.dir = "auto";
      row.appendChild(name);
      row.appendChild(R.el("span", "top-score", R.formatNumber(entry.score) + " 💎"));
      // Only new scores flash; an unchanged board redraws quietly.
      if (last[k] !== undefined && last[k] !== entry.score) row.classList.add("changed");
      else if (last[k] !== undefined) row.style.animation = "none";
      next[k] = entry.score;
      list.appendChild(row);
    });
    last = next;
  }

  R.on("state", function (state) {
    if (state && state.top_gifters) draw(state.top_gifters);
  });
  R.start({ types: [] });
})();
