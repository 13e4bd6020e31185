// utkikk status page: ask for the page again every data-refresh-ms and
// swap in its news. The page is complete without this script.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var ms = main ? Number(main.getAttribute("data-refresh-ms")) : 0;
  if (!ms) { return; }
  var announce = document.getElementById("announce");
  function tick() {
    if (document.hidden) { return later(); }
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) { if (text) { swap(text); } })
      .catch(function () {})
      .then(later);
  }
  function later() { window.setTimeout(tick, ms); }
  function swap(text) {
    var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("news");
    var news = document.getElementById("news");
    if (!fresh || !news) { return; }
    // Keep what the reader opened and where the keyboard is.
    var open = Array.prototype.map.call(news.querySelectorAll("details[open]"), function (d) { return d.id; });
    var focused = document.activeElement && news.contains(document.activeElement) ? document.activeElement.id : null;
    var before = document.getElementById("summary").textContent;
    news.innerHTML = fresh.innerHTML;
    open.forEach(function (id) { var d = document.getElementById(id); if (d) { d.open = true; } });
    if (focused) { var f = document.getElementById(focused); if (f) { f.focus(); } }
    var after = document.getElementById("summary").textContent;
    if (announce && after !== before) { announce.textContent = after; }
  }
  later();
})();
