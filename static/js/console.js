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

/* Typed confirmations: the submit button stays disabled until the field holds one of the
   words the server accepts (data-confirm-words); a button that does not act (e.g.
   "Preview again") is marked data-confirm-exempt. The server checks again; without this
   script the button is simply always enabled. */
(function () {
  function matches(input) {
    var words = JSON.parse(input.dataset.confirmWords || "[]");
    var typed = input.value;
    return words.some(function (word) { return typed === word || typed.trim() === word; });
  }
  function sync(input) {
    var form = input.form;
    if (!form) return;
    var buttons = "button[type=submit]:not([data-confirm-exempt]), button:not([type]):not([data-confirm-exempt])";
    form.querySelectorAll(buttons).forEach(function (button) {
      button.disabled = !matches(input);
    });
  }
  function wire(root) {
    root.querySelectorAll("input[data-confirm-words]").forEach(function (input) {
      if (input.dataset.confirmWired) return;
      input.dataset.confirmWired = "1";
      sync(input);
      input.addEventListener("input", function () { sync(input); });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { wire(document); });
  document.addEventListener("htmx:load", function (event) { wire(event.detail.elt); });
})();

/* SQL blocks (templates/partials/_sql.html): "Show all" when the statement is longer
   than the collapsed box, "Copy" always; both hidden until this script wires them. */
(function () {
  function copy(text, button) {
    var done = function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { button.textContent = "Select and copy"; });
      return;
    }
    var range = document.createRange();
    range.selectNodeContents(button.closest("[data-sql-block]").querySelector("pre"));
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    if (document.execCommand("copy")) done();
  }
  function measure(block) {  // a block in a closed <details> is measured when it opens
    var pre = block.querySelector("pre");
    if (block.classList.contains("expanded") || pre.clientHeight === 0) return;
    block.querySelector("[data-sql-toggle]").hidden = pre.scrollHeight <= pre.clientHeight + 2;
  }
  function wire(block) {
    if (block.dataset.sqlWired) return;
    block.dataset.sqlWired = "1";
    block.classList.add("enhanced");
    var pre = block.querySelector("pre");
    var toggle = block.querySelector("[data-sql-toggle]");
    var copyButton = block.querySelector("[data-sql-copy]");
    measure(block);
    toggle.addEventListener("click", function () {
      var expanded = block.classList.toggle("expanded");
      toggle.textContent = expanded ? "Show less" : "Show all";
      toggle.setAttribute("aria-expanded", String(expanded));
    });
    copyButton.addEventListener("click", function () { copy(pre.textContent, copyButton); });
    block.querySelector(".sql-actions").hidden = false;
  }
  function wireAll(root) {
    if (root.matches && root.matches("[data-sql-block]")) wire(root);
    root.querySelectorAll("[data-sql-block]").forEach(wire);
  }
  document.addEventListener("DOMContentLoaded", function () { wireAll(document); });
  document.addEventListener("htmx:load", function (event) { wireAll(event.detail.elt); });
  document.addEventListener("toggle", function (event) {
    if (event.target.open) event.target.querySelectorAll("[data-sql-block]").forEach(measure);
  }, true);
})();
