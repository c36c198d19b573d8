/* Form behaviour declared in the markup, so pages need no inline script (the
   Content-Security-Policy allows none):
   - <form data-confirm="Delete this?"> asks before it is submitted; "Cancel" stops it.
   - <select data-autosubmit> submits its form as soon as a choice is made.
   Loaded on every page by templates/base.html. */
(function () {
  "use strict";

  // Capture phase: the question comes before any other submit handler of the page.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-confirm")) return;
    if (!window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field instanceof HTMLSelectElement && field.hasAttribute("data-autosubmit") && field.form) {
      field.form.submit();
    }
  });
})();
