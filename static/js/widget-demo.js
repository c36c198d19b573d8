/* The chat widget's demo page (templates/dashboard/widget_demo.html): copy the embed code,
   and open the chat from the page once the widget is ready. */
(function () {
  "use strict";
  var copy = document.getElementById("copy-snippet");
  var snippet = document.getElementById("snippet");
  var status = document.getElementById("copy-status");
  copy.addEventListener("click", function () {
    snippet.select();
    var done = function () { status.textContent = "Copied."; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(snippet.value).then(done, function () { status.textContent = "Press Ctrl+C to copy."; });
    } else {
      status.textContent = document.execCommand("copy") ? "Copied." : "Press Ctrl+C to copy.";
    }
  });
  var openButton = document.getElementById("demo-open");
  var enable = function () { openButton.disabled = false; };
  if (window.Syntera) enable(); else window.addEventListener("syntera:ready", enable);
  openButton.addEventListener("click", function () { window.Syntera.open(); });
})();
