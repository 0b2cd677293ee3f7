// Shopkeep studio page: the little behaviour the forms need. No build step, no framework.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Ask before actions players notice (publish, roll back, refund, remove).
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }

  // One click sends a form once; the server's Idempotency-Key covers a second one anyway.
  for (const form of document.querySelectorAll("form[method='post']")) {
    form.addEventListener("submit", (event) => {
      if (event.defaultPrevented) return;
      for (const button of form.querySelectorAll("button")) button.disabled = true;
    });
  }

  // Bundle contents only matter for a bundle: hide the rows for other kinds unless filled in.
  const kind = document.querySelector("select[data-kind]");
  const contents = document.querySelector("fieldset[data-bundle-only]");
  if (kind && contents) {
    const filled = () =>
      [...contents.querySelectorAll("input")].some((input) => input.value.trim() !== "");
    const update = () => {
      contents.hidden = kind.value !== "bundle" && !filled();
    };
    kind.addEventListener("change", update);
    update();
  }
});

// Coming back with the browser's back button shows the page as it was: buttons usable again.
window.addEventListener("pageshow", () => {
  for (const button of document.querySelectorAll("form button")) button.disabled = false;
});
