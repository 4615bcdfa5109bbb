/* OpsConsole's only script besides htmx: make failed htmx requests visible.
   4xx answers are swapped like any other (see the htmx-config meta tag in base.html):
   the server sends a partial that says what was wrong. A 5xx or a lost connection has
   no useful partial, so say it in a banner instead of letting the click do nothing. */
(function () {
  function banner(text) {
    var el = document.getElementById("request-error");
    if (!el) return;
    el.textContent = text;
    el.hidden = false;
  }
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    if (status >= 500) {
      banner("The console answered " + status + " for that request; it was logged. Try again, or reload the page.");
    }
  });
  document.addEventListener("htmx:sendError", function () {
    banner("The console cannot be reached; the page will update again when it is back.");
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var el = document.getElementById("request-error");
    if (el && event.detail.successful) el.hidden = true;
  });
})();
