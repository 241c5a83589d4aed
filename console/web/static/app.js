// Deskside's own page code: htmx requests carry the page's CSRF token (web/csrf.py).
"use strict";
document.addEventListener("htmx:configRequest", (event) => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) {
    event.detail.headers["X-CSRF-Token"] = meta.content;
  }
});
