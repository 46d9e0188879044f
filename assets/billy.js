// A table wider than the screen scrolls inside its own box (Radix's scroll area); that box must
// be reachable by keyboard, so arrow keys can scroll it. Radix does not make it focusable.
(() => {
  const reachable = (root) => {
    root.querySelectorAll(".rt-TableRoot .rt-ScrollAreaViewport:not([tabindex])").forEach((box) => {
      box.setAttribute("tabindex", "0");
    });
  };
  const start = () => {
    reachable(document);
    new MutationObserver(() => reachable(document)).observe(document.body, { childList: true, subtree: true });
  };
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
