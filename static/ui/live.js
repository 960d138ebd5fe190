// Keeps the committed dots of a secrets page current without a reload: every second it asks
// the server for the rows again (same origin, the session cookie) and swaps them in when they
// changed; unchanged rows come back as a bodiless 304. The page works without it; it only
// saves pressing reload.
(function () {
  "use strict";
  var body = document.querySelector("[data-live]");
  if (!body) { return; }
  var url = body.getAttribute("data-live");
  var tag = null;
  function tick() {
    if (document.hidden) { return setTimeout(tick, 1000); }
    var headers = { "Accept": "text/html" };
    if (tag) { headers["If-None-Match"] = tag; }
    fetch(url, { credentials: "same-origin", headers: headers, cache: "no-store" })
      .then(function (r) {
        if (r.status === 304) { return null; }
        if (r.status !== 200) { throw new Error("status " + r.status); }
        tag = r.headers.get("ETag");
        return r.text();
      })
      .then(function (html) {
        if (html !== null) { body.innerHTML = html; }
        setTimeout(tick, 1000);
      })
      .catch(function () { setTimeout(tick, 5000); });
  }
  setTimeout(tick, 1000);
})();
