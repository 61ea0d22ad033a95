// dancu-gateway console: copy buttons (<button data-copy="ID" hidden>) copy the text of the element #ID.
// In a file, not inline: the console's Content-Security-Policy allows scripts from 'self' only. Without
// JavaScript the buttons stay hidden and the text can be selected by hand.
(function () {
  "use strict";
  function copied(button) {
    button.textContent = button.getAttribute("data-copied") || button.textContent;
  }
  function bySelection(button, source) {
    var range = document.createRange();
    range.selectNodeContents(source);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    try {
      if (document.execCommand("copy")) { copied(button); }
    } catch (ignored) { /* the text stays selected: Ctrl+C copies it */ }
  }
  function ready() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy"));
        if (!source) { return; }
        var text = source.textContent.trim();
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(function () { copied(button); },
            function () { bySelection(button, source); });
        } else {
          bySelection(button, source);
        }
      });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
}());
