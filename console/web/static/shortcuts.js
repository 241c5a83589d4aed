// Keyboard first: "?" shows the shortcuts; "g" then a letter goes to a page of the
// navigation (its data-key); "j"/"k" move through the rows of a list, Enter opens one.
"use strict";
(() => {
  let pending = null; // "g" was pressed: waiting for the page's letter
  const typing = (target) =>
    target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));

  const toggle = () => {
    const dialog = document.getElementById("shortcuts");
    if (!dialog) return;
    if (dialog.open) dialog.close();
    else dialog.showModal();
  };

  const move = (step) => {
    const rows = [...document.querySelectorAll("tr[data-row]")];
    if (!rows.length) return;
    const index = rows.indexOf(document.activeElement);
    const next = rows[Math.min(rows.length - 1, Math.max(0, index + step))];
    next.tabIndex = -1;
    next.focus();
  };

  document.addEventListener("click", (event) => {
    if (event.target instanceof Element && event.target.closest("[data-shortcuts-toggle]")) {
      toggle();
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (pending) {
      const link = document.querySelector(`nav a[data-key="${CSS.escape(event.key)}"]`);
      pending = null;
      if (link) {
        event.preventDefault();
        window.location.assign(link.href);
      }
      return;
    }
    if (event.key === "?") {
      event.preventDefault();
      toggle();
    } else if (event.key === "g") {
      pending = true;
      setTimeout(() => { pending = null; }, 1500);
    } else if (event.key === "j") {
      move(1);
    } else if (event.key === "k") {
      move(-1);
    } else if (event.key === "Enter" && document.activeElement?.matches("tr[data-row]")) {
      const link = document.activeElement.querySelector("a");
      if (link) window.location.assign(link.href);
    }
  });
})();
