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

// A first click on a link should not wait for that page's scripts. Once the page has loaded
// and the browser is idle, every page's module (and so the modules it imports) is loaded and
// kept where React Router looks for it first, so navigating only renders.
(() => {
  const loadPages = () => {
    const manifest = window.__reactRouterManifest;
    const loaded = window.__reactRouterRouteModules;
    if (!manifest || !loaded) return;
    for (const [id, route] of Object.entries(manifest.routes)) {
      if (!route.module || id in loaded) continue;
      import(route.module)
        .then((module) => {
          if (!(id in loaded)) loaded[id] = module;
        })
        .catch(() => {}); // the click loads it then, as it would have anyway
    }
  };
  const whenIdle = (fn) =>
    window.requestIdleCallback ? window.requestIdleCallback(fn, { timeout: 3000 }) : setTimeout(fn, 300);
  const start = () => setTimeout(() => whenIdle(loadPages), 500);
  if (document.readyState === "complete") start();
  else window.addEventListener("load", start, { once: true });
})();
