"""A real Billy (production build) per browser test module, and one Chromium per worker.

The app runs as `make run` runs it (the kept production build, `billy_app.serve`) on a fresh
data folder, against the worker's Stripe sandbox, seeded with the demo data, sending its mail
to a mail catcher in this process (`mail_catcher`).

Each module meets its own instance, first-run signup open: its first test signs up (or uses
`sign_in_as_owner`, which signs up, signs in or finishes the wizard as the instance's state
asks). `make test` runs two workers, each taking whole modules in file order."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from billy_app.components.layout import SETTINGS_TABS
from devtools.app_runner import CHROMIUM, CHROMIUM_FLAGS, RunningApp, free_port, running_app
from devtools.mailcatcher import CatcherHandle, run_in_thread
from services.config import PROJECT_ROOT

ARTIFACTS = PROJECT_ROOT / "artifacts" / "screenshots"


# How much of its app's log a failed browser test's report ends with.
APP_LOG_LINES = 80


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed browser test's report ends with what its app logged last and, for a scaled
    instance, what its PostgreSQL sessions were doing: a flake seen once in CI is diagnosed from
    its report, not from reruns that pass (stop 28: all of test_scale_out.py failed once)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    scaled = funcargs.get("scaled")
    app = funcargs.get("app_server") or getattr(scaled, "app", None)
    if isinstance(app, RunningApp) and app.log.exists():
        lines = app.log.read_text(errors="replace").splitlines()[-APP_LOG_LINES:]
        report.sections.append(("Billy's log, last lines", "\n".join(lines)))
    browser = funcargs.get("browser")
    if browser is not None:
        report.sections.append(("Open tabs at the failure", describe_tabs(browser)))
    for title, method in (
        ("Billy's PostgreSQL sessions", "store_sessions"),
        ("Tabs and workers in Redis", "socket_records"),
    ):
        describe = getattr(scaled, method, None)
        if callable(describe):
            report.sections.append((f"{title} at the failure", describe()))


# How much of each open tab's visible text a failed test's report shows.
TAB_TEXT_CHARS = 600


def describe_tabs(browser) -> str:  # type: ignore[no-untyped-def]
    """Each open tab as the person would have seen it when the test gave up: its address, its
    Reflex token and the start of its visible text (a spinner, an error, a sign-in page)."""
    lines = []
    for c, context in enumerate(browser.contexts):
        for p, page in enumerate(context.pages):
            try:
                token = page.evaluate("() => window.sessionStorage.getItem('token')")
                text = " ".join(page.inner_text("body", timeout=2_000).split())[:TAB_TEXT_CHARS]
            except Exception as exc:  # a report of what could be read, never a second failure
                token, text = None, f"(unreadable: {type(exc).__name__})"
            lines.append(f"context {c} tab {p}: {page.url} token={token}\n    {text}")
    return "\n".join(lines) or "(no open tabs)"


@pytest.fixture(scope="module")
def mail_catcher() -> Iterator[CatcherHandle]:
    """Where the app's invites and reset mails land (plain SMTP, no login)."""
    with run_in_thread() as catcher:
        yield catcher


@pytest.fixture(scope="session")
def app_port() -> int:
    """One port for every browser module's app on this worker (its modules run one after another),
    so the frontend, which is built for the address it calls back to, is built once per worker and
    run (`billy_app.serve`, in the worker's own `.web-gwN`: devtools/app_runner.py)."""
    return free_port()


@pytest.fixture(scope="session")
def browser_store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite store migrated by alembic for the whole browser run; each module's instance
    starts from a copy (the same schema, without a migration subprocess per module)."""
    from services.cli import migrate

    template = tmp_path_factory.mktemp("browser-store-template") / "billy.db"
    migrate(f"sqlite:///{template}")
    return template


# Module scope: each browser test module meets a fresh instance (its own data folder, first-run
# signup open), started with the module's `APP_ENV` overrides; a worker runs one app at a time, and
# `make test` runs two workers, each taking whole modules (`--dist loadfile`).
@pytest.fixture(scope="module")
def app_server(  # type: ignore[no-untyped-def]
    request: pytest.FixtureRequest,
    sandbox,
    mail_catcher: CatcherHandle,
    tmp_path_factory: pytest.TempPathFactory,
    app_port: int,
    browser_store_template: Path,
) -> Iterator[RunningApp]:
    import sandbox as sandbox_pkg
    from sandbox.seed import reset_to_demo

    reset_to_demo(sandbox.url)
    with running_app(
        tmp_path_factory.mktemp("browser-instance"),
        sandbox_url=sandbox.url,
        demo_key=sandbox_pkg.DEMO_RESTRICTED_KEY,
        smtp_host=mail_catcher.host,
        smtp_port=mail_catcher.smtp_port,
        extra_env=getattr(request.module, "APP_ENV", {}),
        port=app_port,
        store_template=browser_store_template,
    ) as app:
        yield app


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


class Shots:
    """Numbered screenshots of each step, kept under artifacts/ (git-ignored)."""

    def __init__(self, page, name: str) -> None:  # type: ignore[no-untyped-def]
        self.page, self.folder, self.n = page, ARTIFACTS / name, 0
        self.folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, step: str) -> None:
        self.n += 1
        self.page.screenshot(path=str(self.folder / f"{self.n:02d}-{step}.png"), full_page=True)


def at(path: str) -> re.Pattern[str]:
    """The page at `path`, with or without the trailing slash the static server adds."""
    return re.compile(rf"^https?://[^/]+{re.escape(path)}/?(\?.*)?$")


def search_customers(page, words: str) -> None:  # type: ignore[no-untyped-def]
    """On the customer list: search for `words` and wait until the list shows only matches. A
    click on a row before then can land on the unfiltered list as it is replaced, and be lost
    (CI: a click on Jane Smith that never opened her page)."""
    page.fill("#customer-search", words)
    page.click("#customer-search-submit")
    page.wait_for_function(
        "w => { const l = [...document.querySelectorAll('.customer-link')];"
        " return l.length > 0 && l.every(e => e.textContent.toLowerCase().includes(w)); }",
        arg=words.lower(),
    )


def sign_in_as_owner(  # type: ignore[no-untyped-def]
    page,
    app_server: RunningApp,
    *,
    email: str,
    password: str,
    org_name: str = "Northwind Traders",
    plan: str = "business",
    stripe_key: str | None = None,
) -> None:
    """Bring the Owner to the dashboard from whatever state the shared instance is in:
    sign up while signup is open, else sign in; then finish the wizard (`stripe_key` pasted, else
    the sandbox's demo key; invites left for later) if nobody has yet."""
    page.goto(app_server.url + "/")
    page.wait_for_url(re.compile(r".*/(signup|login|onboarding|dashboard)/?(\?.*)?$"))
    if at("/signup").match(page.url):
        page.fill("#org_name", org_name)
        page.click(f"#plan-{plan}")
        page.fill("#name", "Olivia Owner")
        page.fill("#email", email)
        page.fill("#password", password)
        page.click("#signup-submit")
        page.wait_for_url(at("/onboarding"))
    elif at("/login").match(page.url):
        page.fill("#email", email)
        page.fill("#password", password)
        page.click("#login-submit")
        page.wait_for_url(re.compile(r".*/(onboarding|dashboard)/?(\?.*)?$"))
    if at("/onboarding").match(page.url):
        page.wait_for_selector("#stripe-key, #finish-onboarding")
        if page.locator("#stripe-key").count():
            if stripe_key:
                page.fill("#stripe-key", stripe_key)
                page.click("#connect-key")
            else:
                page.click("#use-demo-key")  # a form post: the server connects its key, the page never has it
            page.wait_for_selector("#form-message:has-text('Stripe connected')")
        page.click("#finish-onboarding")
    page.wait_for_url(at("/dashboard"))
    page.wait_for_selector(f"#who-am-i:has-text('{email}')")


# Each settings tab's address, as the layout declares them.
SETTINGS_PAGES = {key: href for key, _label, href, _owner_only in SETTINGS_TABS}


def app_store(app: RunningApp) -> sa.Engine:
    """The running app's own SQLite store, for a test to arrange or check rows the UI does not show."""
    return sa.create_engine(f"sqlite:///{app.data_dir / 'db' / 'billy.db'}")


def open_settings(page, tab: str) -> None:  # type: ignore[no-untyped-def]
    """Settings from the sidebar's one entry, then the tab (`team`, `roles`, `spend`, `audit`, `sync`, ...)."""
    page.click("#sidebar .nav-settings")
    page.wait_for_url(re.compile(r".*/settings/"))
    page.click(f"#settings-tab-{tab}")
    page.wait_for_url(at(SETTINGS_PAGES[tab]))
