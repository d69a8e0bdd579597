// The metric explorer's form: the custom range's fields show only for the "Custom" time range, and
// a changed choice shows its chart at once (the "Show" button stays for the fields typed into).
(function () {
  "use strict";
  var form = document.querySelector("form[data-explorer]");
  if (!form) { return; }
  var range = form.querySelector("select[name=range]");
  var custom = form.querySelector(".custom-range");
  function toggle() { custom.hidden = range.value !== "custom"; }
  toggle();
  form.addEventListener("change", function (event) {
    if (event.target === range) {
      toggle();
      if (range.value === "custom") { return; } // the person picks a start and an end first
    }
    if (event.target.tagName === "SELECT") { form.requestSubmit(); }
  });
})();
