"""Speed as a person feels it (issue 14): clicks, keystrokes and page loads, timed in Chromium.

    python -m bench.ui [--customers 100000] [--charges 1000000] [--runs 50]
    make bench-ui BENCH_ARGS="--customers 2000 --charges 20000 --runs 10"

A store of generated rows (bench.pages' generator: customers, charges, refunds, subscriptions,
invoices; SQLite, migrated by alembic first) is served by a real Billy (production build, as
`make run` runs it; sync on start and event polling off, so nothing replaces the rows). An
Owner signs up and connects the sandbox's demo key (whose sandbox is empty: its sync adds
nothing). Then, in Debian's Chromium, with in-page timers (`performance.now()` in the page;
"painted" is the frame after the rows arrived: a MutationObserver sees them, then the task
after the next `requestAnimationFrame`, i.e. after that frame was drawn):

- navigation, first visit: a new tab opens /dashboard, and once it is still (1.5 s: its chart's
  animation), the sidebar link (Charges, Customers, Invoices in turn) is clicked; from the
  click until a full page of rows (50) is painted.
  While the dashboard idled, the tab read the main lists' first pages (`list_warmup`) and the
  browser loaded every page's scripts (`assets/billy.js`), so what is timed is the page's first
  mount and paint; the server's fresh answer (the websocket message with the page's rows,
  read again by its on_load) is timed as well.
- navigation, revisit: one tab going back and forth between Charges and Customers. A tab keeps
  each page's rows, so they are painted at once; the server's fresh answer (the websocket
  message carrying the page's rows) is timed as well.
- websocket frames sent per navigation (Playwright's `framesent`), with the events they carried.
- search keystroke: the header's search (`#global-search`) if it shows results as you type,
  else the /customers search box (typed, then Enter): the keystroke until its results are
  painted (minus the debounce, when there is one). The output says which was measured.
- warm load: /dashboard reloaded in its tab (cache kept) until the key numbers are painted.
- cold load: /dashboard in a new browser context (empty cache; the sign-in cookies copied).
- idle memory of the app's processes (`billy_app.serve` for this run's data folder and its
  children), after sign-in and after the runs: RSS and PSS summed, from /proc.

To say where the time goes, it also prints one navigation of each kind as a timeline (scripts
fetched, websocket messages sent and received, rows painted, in ms after the click), the steps
of one warm and one cold load, and the caching headers the page's scripts are served with.

Targets (p95): navigation ≤ 60 ms, search ≤ 50 ms after the debounce, warm load ≤ 400 ms,
cold load ≤ 1.1 s; memory ≤ 200 MB in all. Measured and printed, not asserted: the exit status
is 0 whatever the numbers say (1 only if the bench itself could not run).
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import human_bytes, load_average, percentile, print_facts

TARGETS_MS = {"navigation": 60.0, "search": 50.0, "warm": 400.0, "cold": 1100.0}
MEMORY_TARGET = 200 * 1024 * 1024
OWNER_EMAIL = "bench-owner@example.com"
OWNER_PASSWORD = "a-bench-owner-password"  # a throwaway instance
# The lists, as the sidebar links them: their address and the id of their table.
LISTS = (("/charges", "#charges-table"), ("/customers", "#customers-table"), ("/invoices", "#invoices-table"))
# The customers search alternates two queries so each search changes the rows.
SEARCH_QUERIES = ("zach", "oliv")
# The panel of hits the header's search shows as you type (billy_app/components/global_search.py),
# one `li` a hit; it names the query its hits are for ("All results for “…”").
GLOBAL_RESULTS = "#global-search-panel"
QUIET_MS = 500  # after a measure: how long to wait for the page's follow-up events
SETTLE_MS = 1500  # the dashboard left alone before a click: its revenue chart animates that long

# Installed in every document before its scripts run. `__bench.afterPaint(cb)` calls back with
# the time the next frame has been drawn; `__dashPainted` is when the dashboard's key numbers
# were first painted (relative to the navigation's start, as performance.now() is); `__wsIn`
# lists the websocket messages the page received (time, size, whether they carry `rows`).
HARNESS = """
(() => {
  const afterPaint = (cb) => requestAnimationFrame(() => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => cb(performance.now());
    ch.port2.postMessage(0);
  });
  window.__bench = {afterPaint};
  window.__wsIn = [];
  window.__wsOut = [];
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (e) => {
        const data = typeof e.data === 'string' ? e.data : '';
        window.__wsIn.push({
          t: performance.now(), size: data.length, rows: /"rows(_rx_state_)?"/.test(data), head: data.slice(0, 400),
          dash: /"mrr_text(_rx_state_)?"/.test(data),
        });
      });
    }
    send(data) {
      window.__wsOut.push({t: performance.now(), head: typeof data === 'string' ? data.slice(0, 400) : ''});
      return super.send(data);
    }
  };
  const filled = (id) => {
    const el = document.getElementById(id);
    const text = el ? el.textContent.trim() : '';
    return text !== '' && text !== '—';
  };
  let seen = false;
  const watch = () => {
    if (seen || !/\\/dashboard\\/?$/.test(location.pathname)) return;
    if (filled('mrr') && filled('open-total') && filled('revenue-net')) {
      seen = true;
      observer.disconnect();
      afterPaint((t) => { window.__dashPainted = t; });
    }
  };
  const observer = new MutationObserver(watch);
  observer.observe(document, {childList: true, subtree: true, characterData: true});
})();
"""

# Click a sidebar link; resolve when the target page's table holds `rows` rows and a frame
# has been drawn. `answer`: when the first websocket message carrying rows arrived after it.
NAVIGATE = """
async ({href, table, rows, timeout}) => {
  const link = [...document.querySelectorAll('#sidebar a')].find((a) => a.getAttribute('href') === href);
  if (!link) throw new Error('no sidebar link to ' + href);
  const count = () => document.querySelectorAll(table + ' tbody tr').length;
  const onPage = () => location.pathname.replace(/\\/$/, '') === href;
  const inBefore = window.__wsIn.length;
  const outBefore = window.__wsOut.length;
  return await new Promise((resolve, reject) => {
    let seen = false;
    const check = () => {
      if (seen || !onPage()) return;
      const n = count();
      if (n >= rows) {
        seen = true;
        observer.disconnect();
        window.__bench.afterPaint((t) => resolve({ms: t - t0, rows: n, t0, inBefore, outBefore}));
      }
    };
    const observer = new MutationObserver(check);
    observer.observe(document.body, {childList: true, subtree: true});
    performance.mark('bench-click');
    const t0 = performance.now();
    link.click();
    check();
    setTimeout(() => {
      if (!seen) { observer.disconnect(); reject(new Error(href + ': ' + count() + ' rows after ' + timeout + ' ms')); }
    }, timeout);
  });
}
"""

# Arm a search measure: the last keydown in `input` is the start; done when `results` is
# painted holding rows for this query: rows that all contain it, or (`echo`) any rows while
# the results' own text names the query.
ARM_SEARCH = """
({input, results, rowSelector, query, echo}) => {
  window.__search = {start: null, done: null, rows: 0};
  const el = document.querySelector(input);
  const started = () => { performance.mark('bench-keystroke'); window.__search.start = performance.now(); };
  el.addEventListener('keydown', started, {capture: true});
  const matches = () => {
    const box = document.querySelector(results);
    if (!box) return 0;
    const rows = [...box.querySelectorAll(rowSelector)];
    if (!rows.length) return 0;
    if (echo) return box.textContent.includes(echo) ? rows.length : 0;
    return rows.every((r) => r.textContent.toLowerCase().includes(query)) ? rows.length : 0;
  };
  const check = () => {
    if (window.__search.start === null || window.__search.done !== null) return;
    const n = matches();
    if (n) {
      window.__search.done = 'pending';
      observer.disconnect();
      window.__bench.afterPaint((t) => { window.__search.done = t; window.__search.rows = n; });
    }
  };
  const observer = new MutationObserver(check);
  observer.observe(document.body, {childList: true, subtree: true, characterData: true});
}
"""


@dataclass
class Measure:
    name: str
    target_ms: float | None
    samples: list[float] = field(default_factory=list)
    note: str = ""


class FramesSent:
    """Counts the websocket frames a page sends (Playwright's `framesent`), with their events."""

    def __init__(self, page: Any) -> None:
        self.frames: list[str] = []
        page.on("websocket", lambda ws: ws.on("framesent", self._sent))

    def _sent(self, payload: str | bytes) -> None:
        self.frames.append(payload if isinstance(payload, str) else payload.decode(errors="replace"))

    def since(self, mark: int) -> list[str]:
        return self.frames[mark:]


def event_name(frame: str) -> str | None:
    """`state.handler` of the Reflex event a frame carries ("nav_badges_state.load"), if any."""
    found = re.search(r'"name"\s*:\s*"([^"]+)"', frame)
    if not found:
        return None
    path, _, handler = found.group(1).rpartition(".")
    return f"{path.rsplit('.', 1)[-1].rsplit('____', 1)[-1]}.{handler}" if path else handler


def event_names(frames: list[str]) -> list[str]:
    """The Reflex event (or socket.io packet) each frame carried, for the report."""
    return [event_name(frame) or f"socket.io {frame[:2]!r}" for frame in frames]


# --- the app's memory --------------------------------------------------------------------------------


def app_pids(data_dir: Path) -> list[int]:
    """The app's processes: each `billy_app.serve` whose environment names this run's data
    folder, and all their descendants (not the browser, which inherits this process's setting)."""
    needle = f"BILLY_DATA_DIR={data_dir}".encode()
    parents: dict[int, int] = {}
    roots = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            parents[pid] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
            if b"billy_app.serve" in cmdline and needle in (entry / "environ").read_bytes().split(b"\0"):
                roots.append(pid)
        except (OSError, ValueError, IndexError):
            continue

    def under_a_root(pid: int) -> bool:
        while pid > 1:
            if pid in roots:
                return True
            pid = parents.get(pid, 0)
        return False

    return sorted(pid for pid in parents if under_a_root(pid))


def _memory_fields(pid: int) -> dict[str, int]:
    """One process's Rss and Pss in bytes: psutil when installed, else /proc/<pid>/smaps_rollup."""
    try:
        import psutil
    except ImportError:
        fields = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, _, value = line.partition(":")
            fields[key] = int(value.split()[0]) * 1024
        return fields
    info = psutil.Process(pid).memory_full_info()
    return {"Rss": int(info.rss), "Pss": int(getattr(info, "pss", info.rss))}


def memory_of(pids: list[int]) -> tuple[int, int, list[str]]:
    """RSS and PSS (shared pages split between the processes sharing them) summed, in bytes,
    and one line per process."""
    rss = pss = 0
    lines = []
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            fields = _memory_fields(pid)
        except (OSError, ValueError, IndexError):
            continue
        rss += fields.get("Rss", 0)
        pss += fields.get("Pss", 0)
        lines.append(f"pid {pid:>7}  rss {human_bytes(fields.get('Rss', 0)):>10}  {cmd[:90]}")
    return rss, pss, lines


# --- the measures --------------------------------------------------------------------------------------


def wait_dashboard(page: Any, timeout: float = 30_000) -> float:
    """Milliseconds from the navigation's start until the dashboard's key numbers were painted."""
    page.wait_for_function("window.__dashPainted !== undefined", timeout=timeout)
    return float(page.evaluate("window.__dashPainted"))


def navigate(page: Any, href: str, table: str, rows: int) -> dict[str, Any]:
    return dict(page.evaluate(NAVIGATE, {"href": href, "table": table, "rows": rows, "timeout": 30_000}))


def answer_after(page: Any, result: dict[str, Any]) -> float | None:
    """When the first websocket message carrying rows arrived after the click (ms after it)."""
    arrived = page.evaluate("(n) => window.__wsIn.slice(n).filter((m) => m.rows).map((m) => m.t)", result["inBefore"])
    return float(arrived[0]) - result["t0"] if arrived else None


TIMELINE = """
({t0, inBefore, outBefore}) => [
  ...window.__wsOut.slice(outBefore).map((m) => ({t: m.t - t0, dir: 'sent', size: m.head.length, head: m.head})),
  ...window.__wsIn.slice(inBefore).map((m) => ({t: m.t - t0, dir: 'received', size: m.size, head: m.head})),
  ...performance.getEntriesByType('resource').filter((r) => r.startTime >= t0).map((r) => ({
    t: r.responseEnd - t0, dir: 'fetched', size: r.transferSize,
    head: r.name.split('/').pop() + ' (asked at +' + (r.startTime - t0).toFixed(1) + ' ms)',
  })),
].sort((a, b) => a.t - b.t)
"""


def timeline(page: Any, result: dict[str, Any]) -> list[str]:
    """One navigation's websocket traffic, in milliseconds after the click, for the report."""
    lines = []
    for m in page.evaluate(TIMELINE, result):
        if m["dir"] == "fetched":
            what = m["head"]
        elif m["dir"] == "sent":
            what = event_name(m["head"]) or m["head"][:60]
        else:
            states = re.findall(r'"reflex___state____state(?:\.\w+)*"', m["head"])
            names = sorted({state.strip('"').rsplit("____", 1)[-1] for state in states})
            what = "delta " + ", ".join(names) if names else m["head"][:60]
        units = {"received": f" ({m['size']:,} chars)", "fetched": f" ({m['size']:,} bytes over the wire)"}
        lines.append(f"+{m['t']:7.1f} ms  {m['dir']:<8}  {what}{units.get(m['dir'], '')}")
    lines.append(f"+{result['ms']:7.1f} ms  {result['rows']} rows painted")
    return sorted(lines, key=lambda line: float(line[1:8]))


def first_visits(context: Any, url: str, runs: int, rows: int, out: dict[str, Measure]) -> list[int]:
    """A new tab per click: the page's first mount in that tab. Returns frames sent per click."""
    frames_per_click: list[int] = []
    example_shown = False
    for i in range((runs + 1) * len(LISTS)):  # the first round warms up and is not counted
        href, table = LISTS[i % len(LISTS)]
        page = context.new_page()
        frames = FramesSent(page)
        page.goto(url + "/dashboard")
        wait_dashboard(page)
        page.wait_for_timeout(SETTLE_MS)  # the dashboard's own events and its chart's animation end
        mark = len(frames.frames)
        result = navigate(page, href, table, rows)
        page.wait_for_timeout(QUIET_MS)
        sent = frames.since(mark)
        steps = timeline(page, result) if len(LISTS) <= i < 2 * len(LISTS) else []
        arrived = answer_after(page, result)
        page.close()
        if i < len(LISTS):
            continue
        if steps:
            print(f"  one first visit to {href}, websocket traffic after the click:", flush=True)
            print("\n".join("    " + line for line in steps), flush=True)
        frames_per_click.append(len(sent))
        measure = out.setdefault(href, Measure(f"navigation {href} (first visit in a tab)", TARGETS_MS["navigation"]))
        measure.samples.append(result["ms"])
        measure.note = f"{result['rows']} rows painted"
        answered = out.setdefault("answer", Measure("navigation, first visit: server's rows arrived", None))
        if arrived is not None:
            answered.samples.append(arrived)
        answered.note = "ws message with the rows, after the click"
        if not example_shown:
            print(f"  frames sent by one navigation to {href}: {event_names(sent)}", flush=True)
            example_shown = True
    return frames_per_click


def revisits(page: Any, url: str, runs: int, rows: int) -> tuple[Measure, Measure, list[int]]:
    """Back and forth between Charges and Customers in one tab (each page's rows kept by the tab)."""
    frames = FramesSent(page)
    page.goto(url + "/charges")
    page.wait_for_selector(f"{LISTS[0][1]} tbody tr")
    painted = Measure("navigation, revisit: rows painted", TARGETS_MS["navigation"])
    answered = Measure("navigation, revisit: server's rows arrived", None)
    counts: list[int] = []
    pair = (LISTS[1], LISTS[0])
    for i in range(runs * 2 + 2):
        href, table = pair[i % 2]
        mark = len(frames.frames)
        result = navigate(page, href, table, rows)
        page.wait_for_timeout(QUIET_MS)
        if i < 2:  # the first visit to each page in this tab is not a revisit
            continue
        if i == 2:
            print(f"  one revisit of {href}, websocket traffic after the click:", flush=True)
            print("\n".join("    " + line for line in timeline(page, result)), flush=True)
        painted.samples.append(result["ms"])
        painted.note = f"{result['rows']} rows painted"
        arrived = answer_after(page, result)
        if arrived is not None:
            answered.samples.append(arrived)
        counts.append(len(frames.since(mark)))
    answered.note = "ws message with the rows, after the click"
    return painted, answered, counts


def debounce_ms() -> float:
    """The header search's debounce, as its component declares it (0: none)."""
    from services.config import PROJECT_ROOT

    source = (PROJECT_ROOT / "billy_app/components/global_search.py").read_text()
    found = re.search(r"debounce_timeout\s*=\s*(\d+)", source) or re.search(r"DEBOUNCE\w*\s*=\s*(\d+)", source)
    return float(found.group(1)) if found else 0.0


def search_as_you_type(page: Any, url: str, runs: int) -> list[Measure] | None:
    """The header search's hits as you type, after the debounce and in all; None when it shows none."""
    page.goto(url + "/dashboard")
    wait_dashboard(page)
    if not page.locator("#global-search").count():
        return None
    page.type("#global-search", SEARCH_QUERIES[0], delay=30)
    try:
        page.wait_for_selector(GLOBAL_RESULTS, state="visible", timeout=3000)
    except Exception:  # noqa: BLE001 - no dropdown: the caller measures the customers search
        page.fill("#global-search", "")
        return None
    debounce = debounce_ms()
    measure = Measure("search keystroke → hits painted (header)", TARGETS_MS["search"])
    measure.note = f"as you type, after its {debounce:.0f} ms debounce"
    whole = Measure("search keystroke → hits, with the debounce", None, note="last keystroke → hits painted")
    for i in range(runs + 2):
        query = SEARCH_QUERIES[(i + 1) % 2]
        page.fill("#global-search", "")
        page.wait_for_timeout(debounce + 200)
        arm = {"input": "#global-search", "results": GLOBAL_RESULTS, "rowSelector": "li"}
        page.evaluate(ARM_SEARCH, {**arm, "query": query, "echo": f"“{query}”"})
        page.type("#global-search", query, delay=20)
        page.wait_for_function("typeof window.__search.done === 'number'", timeout=30_000)
        took = page.evaluate("window.__search.done - window.__search.start")
        if i >= 2:
            measure.samples.append(max(0.0, float(took) - debounce))
            whole.samples.append(float(took))
    return [measure, whole]


def customers_search(page: Any, url: str, runs: int) -> Measure:
    """/customers' own search box: the query typed, then Enter; Enter until the results are painted."""
    page.goto(url + "/customers")
    page.wait_for_selector("#customers-table tbody tr")
    measure = Measure("search: Enter → results (/customers)", TARGETS_MS["search"])
    rows = 0
    for i in range(runs + 2):
        query = SEARCH_QUERIES[i % 2]
        page.fill("#customer-search", query)
        page.evaluate(
            ARM_SEARCH,
            {"input": "#customer-search", "results": "#customers-table tbody", "rowSelector": "tr", "query": query}
            | {"echo": ""},
        )
        page.press("#customer-search", "Enter")
        page.wait_for_function("typeof window.__search.done === 'number'", timeout=30_000)
        took, rows = page.evaluate("[window.__search.done - window.__search.start, window.__search.rows]")
        if i >= 2:
            measure.samples.append(float(took))
    measure.note = f"submit, no debounce; {rows} rows"
    return measure


LOAD_STEPS = """
() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const scripts = performance.getEntriesByType('resource').filter((r) => r.name.split('?')[0].endsWith('.js'));
  const first = (list, pick) => { const m = list.find(pick); return m ? m.t : null; };
  const paint = performance.getEntriesByType('paint').find((p) => p.name === 'first-contentful-paint');
  return [
    ['document received', nav.responseEnd],
    [scripts.length + ' scripts loaded (' + scripts.reduce((n, r) => n + r.transferSize, 0) + ' bytes over the wire)',
     Math.max(0, ...scripts.map((r) => r.responseEnd))],
    ['DOMContentLoaded done', nav.domContentLoadedEventEnd],
    ['first contentful paint', paint ? paint.startTime : null],
    ['load event done', nav.loadEventEnd],
    ['first websocket message sent', first(window.__wsOut, () => true)],
    ['first websocket message received', first(window.__wsIn, () => true)],
    ['dashboard numbers received', first(window.__wsIn, (m) => m.dash)],
    ['key numbers painted', window.__dashPainted],
  ];
}
"""


def load_steps(page: Any) -> list[str]:
    """Where one page load's time went (ms after the navigation started), for the report."""
    steps = [(name, t) for name, t in page.evaluate(LOAD_STEPS) if t is not None]
    return [f"+{t:7.1f} ms  {name}" for name, t in sorted(steps, key=lambda step: step[1])]


def warm_loads(page: Any, url: str, runs: int) -> Measure:
    page.goto(url + "/dashboard")
    wait_dashboard(page)
    measure = Measure("warm load /dashboard (reload)", TARGETS_MS["warm"], note="key numbers painted")
    for i in range(runs + 2):
        page.reload(wait_until="commit")
        took = wait_dashboard(page)
        if i >= 2:
            measure.samples.append(took)
        if i == 2:
            print("  one warm load (reload), ms after the navigation started:", flush=True)
            print("\n".join("    " + line for line in load_steps(page)), flush=True)
        page.wait_for_timeout(200)
    return measure


def cold_loads(browser: Any, cookies: list[dict[str, Any]], url: str, runs: int) -> Measure:
    measure = Measure("cold load /dashboard (new context)", TARGETS_MS["cold"], note="empty cache; key numbers")
    for i in range(runs):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.add_init_script(HARNESS)
        context.add_cookies(cookies)
        page = context.new_page()
        page.goto(url + "/dashboard", wait_until="commit")
        measure.samples.append(wait_dashboard(page))
        if i == 0:
            page.wait_for_load_state("load")
            print("  one cold load, ms after the navigation started:", flush=True)
            print("\n".join("    " + line for line in load_steps(page)), flush=True)
        context.close()
    return measure


# --- running -------------------------------------------------------------------------------------------


@dataclass
class Report:
    measures: list[Measure] = field(default_factory=list)
    frames: dict[str, list[int]] = field(default_factory=dict)
    memory: list[tuple[str, int, int, list[str]]] = field(default_factory=list)
    search_note: str = ""
    load_after: str = ""


def asset_caching(url: str) -> str:
    """The caching headers of one of the page's scripts (hashed names: could be cached for good)."""
    import httpx

    html = httpx.get(url + "/login", timeout=10, follow_redirects=True).text
    found = re.search(r'(?:src|href)="(/assets/[^"]+\.js)"', html)
    if not found:
        return "no /assets/*.js script named in the page"
    headers = httpx.get(url + found.group(1), timeout=10).headers
    kept = {k: headers[k] for k in ("cache-control", "etag", "last-modified", "content-encoding") if k in headers}
    return f"{found.group(1)}: " + (", ".join(f"{k}: {v}" for k, v in kept.items()) or "no caching headers")


def settle_memory(data_dir: Path, label: str, report: Report, seconds: float = 5.0) -> None:
    time.sleep(seconds)
    rss, pss, lines = memory_of(app_pids(data_dir))
    report.memory.append((label, rss, pss, lines))


def run(customers: int, charges: int, runs: int) -> Report:
    from playwright.sync_api import sync_playwright

    import sandbox as sandbox_pkg
    from bench.pages import generate, temporary_store
    from billy_app.state.list_page import ROWS_PER_PAGE
    from devtools.app_runner import CHROMIUM, CHROMIUM_FLAGS, running_app
    from devtools.mailcatcher import run_in_thread as mail_catcher
    from services import db
    from tests.browser.conftest import sign_in_as_owner

    rows = ROWS_PER_PAGE
    report = Report()
    print(f"\n=== SQLite: {customers:,} customers, {charges:,} charges; {runs} runs per measure ===", flush=True)
    with temporary_store("sqlite") as store:
        _, counts, took = generate(store, customers, charges, int(time.time()))
        db.get_engine().dispose()  # the app is the store's only user from here on
        tables = ", ".join(f"{t.removeprefix('stripe_')} {n:,}" for t, n in counts.items())
        print(f"generated in {took:.1f} s: {tables}")
        print(f"store size: {human_bytes(store.size())}", flush=True)
        handle = sandbox_pkg.run_in_thread(port=0)  # empty: the demo key's first sync adds nothing
        started = time.perf_counter()
        try:
            with (
                mail_catcher() as catcher,
                running_app(
                    store.data_dir,
                    sandbox_url=handle.url,
                    demo_key=sandbox_pkg.DEMO_RESTRICTED_KEY,
                    smtp_host=catcher.host,
                    smtp_port=catcher.smtp_port,
                    extra_env={"BILLY_SYNC_ON_START": "false", "BILLY_EVENT_POLL_SECONDS": "0"},
                ) as app,
                sync_playwright() as pw,
            ):
                print(f"app up in {time.perf_counter() - started:.1f} s (a frontend build when pages changed)")
                print(f"static scripts are served with: {asset_caching(app.url)}", flush=True)
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                context.add_init_script(HARNESS)
                page = context.new_page()
                sign_in_as_owner(page, app, email=OWNER_EMAIL, password=OWNER_PASSWORD)
                wait_dashboard(page, timeout=120_000)
                settle_memory(store.data_dir, "idle after sign-in", report)
                steps: list[tuple[str, Callable[[], None]]] = []

                def first() -> None:
                    by_list: dict[str, Measure] = {}
                    report.frames["first visit"] = first_visits(context, app.url, runs, rows, by_list)
                    report.measures.extend(by_list.values())

                def again() -> None:
                    painted, answered, counts = revisits(page, app.url, runs, rows)
                    report.measures.extend([painted, answered])
                    report.frames["revisit"] = counts

                def search() -> None:
                    measures = search_as_you_type(page, app.url, runs)
                    if measures is None:
                        report.search_note = (
                            "The header search (#global-search) shows no results as you type (it opens /search on "
                            "Enter), so the /customers search box was measured instead: Enter → results painted."
                        )
                        measures = [customers_search(page, app.url, runs)]
                    report.measures.extend(measures)

                steps += [("navigation, first visits", first), ("navigation, revisits", again), ("search", search)]
                steps += [("warm loads", lambda: report.measures.append(warm_loads(page, app.url, runs)))]
                steps += [
                    (
                        "cold loads",
                        lambda: report.measures.append(cold_loads(browser, context.cookies(), app.url, runs)),
                    )
                ]
                for name, step in steps:
                    began = time.perf_counter()
                    step()
                    print(f"  {name}: {time.perf_counter() - began:.0f} s", flush=True)
                settle_memory(store.data_dir, "idle after the runs", report)
                report.load_after = load_average()
                browser.close()
        finally:
            handle.stop()
    return report


def _ms(value: float) -> str:
    return f"{value:8.1f}"


def print_report(report: Report) -> None:
    print()
    width = max(len(m.name) for m in report.measures) + 2
    print(f"{'measure':<{width}} {'runs':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'target':>9}  met?  note")
    for m in report.measures:
        if not m.samples:
            print(f"{m.name:<{width}} {0:>5}  (no samples)  {m.note}")
            continue
        target = f"≤ {m.target_ms:.0f}" if m.target_ms is not None else "-"
        met = "-" if m.target_ms is None else ("yes" if percentile(m.samples, 95) <= m.target_ms else "NO")
        print(
            f"{m.name:<{width}} {len(m.samples):>5} {_ms(statistics.median(m.samples))} "
            f"{_ms(percentile(m.samples, 95))} {_ms(max(m.samples))} {target:>9}  {met:<4}  {m.note}"
        )
    for kind, counts in report.frames.items():
        if counts:
            print(
                f"{'ws frames sent per navigation, ' + kind:<{width}} {len(counts):>5} "
                f"{statistics.median(counts):8.0f} {percentile(counts, 95):8.0f} {max(counts):8.0f} {'-':>9}  -     "
                f"frames the page sent from the click until {QUIET_MS} ms after the rows were painted"
            )
    for label, rss, pss, _ in report.memory:
        met = "yes" if rss <= MEMORY_TARGET else ("yes (PSS)" if pss <= MEMORY_TARGET else "NO")
        print(
            f"{'app memory, ' + label:<{width}} {'':>5} {'':>8} {'':>8} {'':>8} {'≤ 200 MB':>9}  {met:<4}  "
            f"RSS {human_bytes(rss)}, PSS {human_bytes(pss)} (all app processes)"
        )
    if report.search_note:
        print(f"\nnote: {report.search_note}")
    print(f"load average when the runs ended: {report.load_after}")
    if report.memory:
        print(f"\napp processes ({report.memory[-1][0]}):")
        for line in report.memory[-1][3]:
            print(f"  {line}")


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds: the app, the sandbox and the temporary store go away


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parser = argparse.ArgumentParser(prog="python -m bench.ui", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--charges", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50, help="timed runs per measure (after 2 untimed)")
    args = parser.parse_args(argv)
    print_facts()
    report = run(args.customers, args.charges, args.runs)
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
