// Likes page of the default theme: the like total (the room's, or this session's) with a burst
// of hearts for every like message. The total comes from the state snapshot on (re)load and
// from like events as they arrive.
(function () {
  "use strict";
  var R = window.TikRelay;
  var T = window.Theme;
  var card = document.getElementById("likes");
  var totalEl = document.getElementById("likes-total");
  var room = R.fields.likes_count !== "session";
  var heart = T.file("images/gifts/heart.svg");
  var shown = 0;
  var live = 0;

  function show(total) {
    total = Number(total) || 0;
    if (total <= shown) return;
    shown = total;
    T.countTo(totalEl, total);
  }

  function totalsFrom(state) {
    var t = (state && state.totals) || {};
    return room ? t.room_likes || t.likes : t.likes;
  }

  function burst(count) {
    var n = Math.min(12, Math.max(1, Math.round(Math.sqrt(count) * 2)));
    for (var i = 0; i < n && live < 40; i++) {
      var img = R.el("img", "floater");
      img.alt = "";
      img.src = heart;
      img.style.setProperty("--dx", Math.round(Math.random() * 260 - 60) + "px");
      img.style.setProperty("--dy", -Math.round(90 + Math.random() * 120) + "px");
      img.style.setProperty("--rot", Math.round(Math.random() * 80 - 40) + "deg");
      img.style.setProperty("--t", Math.round(1100 + Math.random() * 700) + "ms");
      img.style.animationDelay = i * 60 + "ms";
      live++;
      img.addEventListener("animationend", function (e) {
        e.target.remove();
        live--;
      });
      card.appendChild(img);
    }
  }

  var session = 0;
  R.on("state", function (state) {
    var t = (state && state.totals) || {};
    session = Math.max(session, Number(t.likes) || 0);
    show(totalsFrom(state));
  });
  R.on("like", function (ev) {
    session += Number(ev.count) || 0;
    show(room && ev.total ? ev.total : session);
    T.bump(totalEl);
    burst(Number(ev.count) || 1);
    T.sound("likes_sound");
  });
  R.start({ types: ["like"] });
})();
