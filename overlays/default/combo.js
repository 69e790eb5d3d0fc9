// Combo page of the default theme: one card per running gift combo (streak). The counter grows
// with every `combo` event; when the combo ends the card finishes with a flourish and leaves.
// Cards are keyed by combo_id, so repeated or out-of-order counts never go backwards.
(function () {
  "use strict";
  var R = window.TikRelay;
  var T = window.Theme;
  var stack = document.getElementById("combos");
  var tpl = document.getElementById("combo-card");
  var cards = {};
  var MAX_CARDS = 4;
  // A combo that stops without an end (a missed message) is cleared after this long.
  var STALE_MS = 15000;
  var minCount = T.intField("combo_min", 2);
  var SPARK_COLORS = ["#ffd86b", "#25f4ee", "#fe2c55", "#ffffff", "#ff9f43"];

  function tier(count) {
    if (count >= 100) return 4;
    if (count >= 50) return 3;
    if (count >= 10) return 2;
    return 1;
  }

  function remove(id) {
    var c = cards[id];
    if (!c) return;
    delete cards[id];
    clearTimeout(c.timer);
    c.node.classList.add("leave");
    setTimeout(function () {
      c.node.remove();
    }, 500);
  }

  function create(ev) {
    var node = tpl.content.firstElementChild.cloneNode(true);
    node.dataset.comboId = ev.combo_id;
    T.avatar(node.querySelector(".avatar"), ev.user);
    R.text(node.querySelector(".name"), R.displayName(ev.user));
    var gift = ev.gift || {};
    R.text(node.querySelector(".combo-gift-name"), "sent " + (gift.name || "a gift"));
    R.image(node.querySelector(".combo-gift"), gift.image || gift.image_url);
    stack.appendChild(node);
    var ids = Object.keys(cards);
    if (ids.length >= MAX_CARDS) remove(ids[0]);
    return { node: node, count: 0, timer: null, ended: false };
  }

  function sparks(node) {
    for (var i = 0; i < 16; i++) {
      var s = R.el("span", "spark");
      var angle = (Math.PI * 2 * i) / 16 + Math.random() * 0.3;
      var dist = 90 + Math.random() * 90;
      s.style.setProperty("--dx", Math.round(Math.cos(angle) * dist) + "px");
      s.style.setProperty("--dy", Math.round(Math.sin(angle) * dist) + "px");
      s.style.setProperty("--rot", Math.round(Math.random() * 540) + "deg");
      s.style.setProperty("--c", SPARK_COLORS[i % SPARK_COLORS.length]);
      node.appendChild(s);
    }
  }

  function onCombo(ev) {
    if (!ev.combo_id) return;
    var c = cards[ev.combo_id];
    if (!c) {
      if (ev.count < minCount && !ev.ended) return;
      if (ev.ended && ev.count < minCount) return;
      c = cards[ev.combo_id] = create(ev);
    }
    if (c.ended) return;
    if (ev.count > c.count) {
      c.count = ev.count;
      var countEl = c.node.querySelector(".combo-count");
      R.text(countEl, "x" + ev.count);
      c.node.classList.remove("tier-1", "tier-2", "tier-3", "tier-4");
      c.node.classList.add("tier-" + tier(ev.count));
      T.bump(countEl);
    }
    clearTimeout(c.timer);
    if (ev.ended) {
      c.ended = true;
      c.node.classList.add("done");
      sparks(c.node);
      T.sound("combo_sound");
      c.timer = setTimeout(function () {
        remove(ev.combo_id);
      }, 3200);
    } else {
      c.timer = setTimeout(function () {
        remove(ev.combo_id);
      }, STALE_MS);
    }
  }

  R.on("combo", onCombo);
  R.start({ types: ["combo"] });
})();
