"""Which origins a form may be posted from: one rule for the instance and the control plane.

The CSRF defence of every cookie-authenticated POST (OWASP "verify origin with standard headers"):
a browser names the page a POST comes from in Origin (or at least Referer) and no other site can
forge it. A local address has a loopback twin (localhost and 127.0.0.1 are one place).
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost", "127.0.0.1")


def origins_of(public_url: str) -> list[str]:
    """The origins of `public_url`: its own, or both loopback names with its port for a local one."""
    parts = urlsplit(public_url)
    if parts.hostname not in LOOPBACK_NAMES:
        return [f"{parts.scheme}://{parts.netloc}".lower()]
    port = f":{parts.port}" if parts.port else ""
    return [f"{parts.scheme}://{host}{port}" for host in LOOPBACK_NAMES]


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


def posted_from(origin: str, referer: str, allowed: Collection[str]) -> bool:
    """Whether a POST naming `origin` (else `referer`'s origin) comes from one of `allowed`; a POST
    that names none, or `null` (a sandboxed or privacy-stripped page), is refused."""
    sent = (origin or origin_of(referer)).lower()
    return bool(sent) and sent != "null" and sent in allowed
