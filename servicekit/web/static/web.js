// Progressive enhancements of the platform's pages; every page also works without JavaScript.
(function () {
  "use strict";

  // Ask before a destructive form is sent (revoking a share, logging out elsewhere...).
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // Buttons that print the page (the e-receipt); a stylesheet for print leaves out the navigation.
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-print]")) {
      window.print();
    }
  });

  // A live region (data-poll-url, data-status): poll the small JSON status document and, when the status
  // changes, swap in the region from a fresh copy of the page and announce the new status to screen readers.
  function watch(region) {
    var url = region.getAttribute("data-poll-url");
    var announcer = document.getElementById(region.getAttribute("data-announcer") || "");
    var delay = 2000;
    var longest = 10000;
    var startedAt = Date.now();

    function later() {
      window.setTimeout(poll, document.hidden ? longest : delay);
    }

    function swap() {
      return fetch(window.location.href, { cache: "no-store", credentials: "same-origin" })
        .then(function (answer) { return answer.text(); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(region.id);
          if (!fresh) {
            window.location.reload();
            return;
          }
          region.innerHTML = fresh.innerHTML;
          ["data-status", "data-final"].forEach(function (name) {
            region.setAttribute(name, fresh.getAttribute(name) || "");
          });
          if (announcer) {
            announcer.textContent = fresh.getAttribute("data-announce") || "";
          }
          if (region.getAttribute("data-final") !== "true") {
            later();
          }
        });
    }

    function poll() {
      fetch(url, { cache: "no-store", credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (answer) {
          if (!answer.ok) { throw new Error("status " + answer.status); }
          return answer.json();
        })
        .then(function (data) {
          if (data.status !== region.getAttribute("data-status")) {
            return swap();
          }
          if (Date.now() - startedAt > 120000) {
            delay = Math.min(longest, delay * 1.5);  // a page left open for long asks less often
          }
          later();
        })
        .catch(function () {
          delay = Math.min(longest, delay * 2);
          later();
        });
    }

    if (region.getAttribute("data-final") !== "true") {
      later();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-poll-url]"), watch);
  });
})();
