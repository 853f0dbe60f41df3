// The operator page's live updates: fetch the live part every second and swap it in; say how
// old the figures are, and turn the page visibly stale when they stop coming.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) return;
  var POLL_MS = 1000, STALE_S = 3;
  var fetchedAt = Date.now();      // when the shown figures arrived
  var ageAtFetch = readAge();      // how old the server said they were then
  var busy = false;
  window.opsUpdates = [];          // arrival times of updates, for whoever measures the page

  function readAge() {
    var el = document.getElementById("age");
    return el ? parseFloat(el.getAttribute("data-age")) || 0 : 0;
  }

  function serverStale() {
    var el = document.getElementById("age");
    return el && el.getAttribute("data-stale") === "1";
  }

  function showAge() {
    var age = ageAtFetch + (Date.now() - fetchedAt) / 1000;
    var el = document.getElementById("age-seconds");
    if (el && age < 1e8) el.textContent = age.toFixed(1);
    var stale = age > STALE_S || serverStale();
    document.body.classList.toggle("stale", stale);
    var banner = document.getElementById("age");
    if (banner) banner.classList.toggle("stale", stale);
    var note = document.getElementById("stale-note");
    if (note) note.textContent = age > STALE_S ? "STALE: no fresh figures from the server " : "";
  }

  function poll() {
    if (busy) return;
    busy = true;
    fetch("/ops/live", { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) {
        if (answer.status === 401) { window.location.href = "/ops"; return null; }
        if (!answer.ok) throw new Error("HTTP " + answer.status);
        return answer.text();
      })
      .then(function (html) {
        if (html === null) return;
        live.innerHTML = html;
        fetchedAt = Date.now();
        ageAtFetch = readAge();
        window.opsUpdates.push(fetchedAt);
        if (window.opsUpdates.length > 600) window.opsUpdates.shift();
      })
      .catch(function () { /* the age keeps growing: the page turns stale by itself */ })
      .then(function () { busy = false; showAge(); });
  }

  setInterval(poll, POLL_MS);
  setInterval(showAge, 250);
  showAge();
})();
