// Keeps the committed dots of a secrets page current without a reload: every second it asks
// the server for the rows again (same origin, the session cookie) and swaps them in when they
// changed. The page works without it; it only saves pressing reload.
(function () {
  "use strict";
  var body = document.querySelector("[data-live]");
  if (!body) { return; }
  var url = body.getAttribute("data-live");
  var last = null;
  function tick() {
    if (document.hidden) { return setTimeout(tick, 1000); }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.status !== 200) { throw new Error("status " + r.status); }
        return r.text();
      })
      .then(function (html) {
        if (html !== last) { last = html; body.innerHTML = html; }
        setTimeout(tick, 1000);
      })
      .catch(function () { setTimeout(tick, 5000); });
  }
  setTimeout(tick, 1000);
})();
