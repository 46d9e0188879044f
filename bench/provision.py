"""Provision time (issue 18: ≤ 30 s from signup to a working dashboard), on this machine.

    python -m bench.provision --orgs 5

The local control plane (`devtools.controlplane_runner`: Caddy, the local provisioner, Billy's
Stripe account in a sandbox) signs up `--orgs` organisations in Chromium, one after another, each
timed from the click on "Start my trial" to:

- `handed over`: the browser is on the new instance's onboarding address, signed in;
- `wizard painted`: the wizard's Stripe step is on screen (the instance answers its websocket);
- `dashboard`: the demo key connected and the wizard finished (the Owner's first working dashboard).

The pages are the production build made for the proxy's address; the first organisation pays
for that build unless it exists already (`--warm` builds it before timing), later ones reuse it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import percentile, print_facts
from bench.harness import chromium
from controlplane.local import InstanceSettings
from devtools.controlplane_runner import running_control_plane
from devtools.mailcatcher import run_in_thread

PASSWORD = "quartz-meadow-lantern-47"
WORKDIR = ".web-bench-provision"  # its own build folder, kept between runs
PORT = 8640  # fixed, so the build (made for the proxy's address) is reused from one run to the next


def build_pages(port: int) -> float:
    """The production build for `localhost:<port>` in the bench's own folder; seconds it took (0: current)."""
    env = {**os.environ, "REFLEX_WEB_WORKDIR": WORKDIR}
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "billy_app.serve", "--build-only", "--port", str(port)], env=env, check=True)
    return time.monotonic() - started


def sign_up(page: Any, url: str, slug: str) -> None:
    page.goto(url + "/")
    page.fill("#org_name", f"Bench {slug}")
    page.fill("#slug", slug)
    page.wait_for_selector(f"#slug-preview:has-text('{slug}.localhost')")
    page.check("input[name=plan][value=pro]")
    page.fill("#owner_name", "Bench Owner")
    page.fill("#email", f"owner@{slug}.example")
    page.fill("#password", PASSWORD)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, default=5)
    parser.add_argument("--port", type=int, default=PORT, help="the proxy's port (the build is made for it)")
    parser.add_argument("--warm", action="store_true", help="build the pages before the timed signups")
    args = parser.parse_args()
    import sandbox as sandbox_pkg

    facts = print_facts()
    if args.warm:
        print(f"pages built for localhost:{args.port} in {build_pages(args.port):.1f} s (before timing)")
    rows: list[tuple[str, float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="billy-bench-provision-") as root, run_in_thread() as mail:
        customers = sandbox_pkg.run_in_thread(port=0)
        billy = sandbox_pkg.run_in_process(port=0)  # Billy's own account, apart
        try:
            from sandbox.seed import reset_to_demo

            reset_to_demo(customers.url)
            instance = InstanceSettings(
                stripe_api_base=customers.url,
                sandbox=True,
                sandbox_demo_key=sandbox_pkg.DEMO_RESTRICTED_KEY,
                smtp_host=mail.host,
                smtp_port=mail.smtp_port,
                web_workdir=WORKDIR,
            )
            with (
                running_control_plane(
                    Path(root),
                    proxy_port=args.port,
                    stripe_api_base=billy.url,
                    instance=instance,
                    smtp_port=mail.smtp_port,
                ) as cp,
                chromium() as browser,
            ):
                for n in range(args.orgs):
                    slug = f"bench-{n + 1}-{int(time.time()) % 100000}"
                    context = browser.new_context()
                    page = context.new_page()
                    sign_up(page, cp.url, slug)
                    started = time.monotonic()
                    page.click("#start", timeout=900_000)  # the click waits for the answer: the provisioning
                    page.wait_for_url(
                        re.compile(rf"^http://{slug}\.localhost:{args.port}/onboarding/?$"), timeout=900_000
                    )
                    handed = time.monotonic() - started
                    page.wait_for_selector("#use-demo-key", timeout=120_000)
                    painted = time.monotonic() - started
                    page.click("#use-demo-key")
                    page.wait_for_selector("#form-message:has-text('Stripe connected')")
                    page.click("#finish-onboarding")
                    page.wait_for_url(re.compile(r".*/dashboard/?$"))
                    page.wait_for_selector("#who-am-i")
                    dashboard = time.monotonic() - started
                    rows.append((slug, handed, painted, dashboard))
                    print(f"  {slug}: handed over {handed:.1f} s, wizard {painted:.1f} s, dashboard {dashboard:.1f} s")
                    context.close()
        finally:
            customers.stop()
            billy.stop()
    print(f"\nProvisioning, {len(rows)} organisations one after another (load at the start: {facts['load']}):")
    print(f"  {'measure':<38} {'p50':>7} {'max':>7}  target")
    for label, index in (
        ("signup click → handed over (signed in)", 1),
        ("→ wizard painted", 2),
        ("→ first dashboard", 3),
    ):
        samples = [row[index] for row in rows]
        print(f"  {label:<38} {percentile(samples, 50):>6.1f}s {max(samples):>6.1f}s  {'≤ 30 s' if index == 3 else ''}")


if __name__ == "__main__":
    main()
