// Umeå kommun (sitewatch demo): mark the current page in the section menu for screen readers.
document.addEventListener("DOMContentLoaded", function () {
  var current = document.querySelector(".subnav li.current a");
  if (current) { current.setAttribute("aria-current", "page"); }
});
