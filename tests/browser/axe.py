"""axe-core (from npm, `devtools/axe`) run inside the page: the accessibility check every main page
passes, for every role. Any violation of any impact fails, listed rule by rule with the elements."""

from __future__ import annotations

from typing import Any

from services.config import PROJECT_ROOT

AXE_SCRIPT = PROJECT_ROOT / "devtools" / "axe" / "node_modules" / "axe-core" / "axe.min.js"

# WCAG 2.1 A and AA plus axe's best practices (landmarks, one main, headings, skip link target).
RUN_OPTIONS = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}}


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """The page's violations as axe reports them (rule id, impact, help, offending elements)."""
    if not AXE_SCRIPT.exists():
        raise AssertionError("axe-core is missing: `make test` installs it (scripts/bootstrap_browser.sh)")
    # Colours mid-animation (a dialog fading in) are not the page's colours: wait for the end.
    page.wait_for_function("() => document.getAnimations().every(a => a.playState !== 'running')")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE_SCRIPT))
    result = page.evaluate("async (options) => (await axe.run(document, options)).violations", RUN_OPTIONS)
    return list(result)


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v.get('impact')}): {v['help']}")
        for node in v["nodes"][:5]:
            lines.append(f"    {', '.join(node['target'])}: {node.get('failureSummary', '').splitlines()[-1:]}")
    return "\n".join(lines)


def assert_accessible(page: Any, where: str) -> None:
    """0 axe violations of any impact on the page as it stands now."""
    violations = axe_violations(page)
    assert not violations, f"axe found {len(violations)} violation(s) on {where}:\n{describe(violations)}"


class AxeWalk:
    """Checks page after page and fails once at the end with every page's violations, so one run
    shows the whole picture instead of the first page's."""

    def __init__(self) -> None:
        self.found: dict[str, list[dict[str, Any]]] = {}

    def check(self, page: Any, where: str) -> None:
        violations = axe_violations(page)
        if violations:
            self.found[where] = violations

    def assert_clean(self) -> None:
        report = "\n".join(f"{where}:\n{describe(v)}" for where, v in self.found.items())
        assert not self.found, f"axe found violations on {len(self.found)} page(s):\n{report}"
