"""Screenshots of the dashboard at a desktop's 1366 px and a phone's 390 px, for the checkout it
runs in: before and after a UI change, taken the same way (issue 14 keeps them in artifacts/ui-pass/).

    python -m devtools.screens artifacts/ui-pass/after

Starts the Stripe sandbox with the demo data and a real Billy (production build, as `make run`),
signs an Owner up in Chromium, waits for the first sync, then saves `dashboard-1366.png` and
`dashboard-390.png` (full page) in the folder given.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from devtools.app_runner import CHROMIUM, CHROMIUM_FLAGS, running_app

WIDTHS = {"1366": {"width": 1366, "height": 850}, "390": {"width": 390, "height": 844}}
OWNER, PASSWORD = "screens-owner@example.com", "screens-owner-password"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.screens", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    import sandbox as sandbox_pkg
    from sandbox.seed import reset_to_demo
    from tests.browser.conftest import sign_in_as_owner

    handle = sandbox_pkg.run_in_thread(port=0)
    try:
        reset_to_demo(handle.url)
        with (
            tempfile.TemporaryDirectory() as data,
            running_app(Path(data), sandbox_url=handle.url, demo_key=sandbox_pkg.DEMO_RESTRICTED_KEY) as app,
            sync_playwright() as pw,
        ):
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport=WIDTHS["1366"])
            sign_in_as_owner(page, app, email=OWNER, password=PASSWORD)
            time.sleep(8)  # the first sync of the demo data, and the chart's animation
            cookies = page.context.cookies()
            for name, viewport in WIDTHS.items():
                context = browser.new_context(viewport=viewport)
                context.add_cookies(cookies)
                shot = context.new_page()
                shot.goto(app.url + "/dashboard")
                shot.wait_for_selector("#who-am-i", state="attached")
                time.sleep(3)
                shot.screenshot(path=str(args.out / f"dashboard-{name}.png"), full_page=True)
                print(f"saved {args.out / f'dashboard-{name}.png'}")
                context.close()
            browser.close()
    finally:
        handle.stop()


if __name__ == "__main__":
    main()
