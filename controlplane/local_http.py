"""One HTTP client for calls to this machine: Caddy's admin API, a starting instance's health.

`httpx.get(...)` and its siblings build a client per call, and each client builds a TLS context
from the CA bundle even for a plain `http://127.0.0.1` address: about 30 ms of CPU on a 2-core
machine (py-spy of the test suite: 5 % of its samples). A readiness poll every 0.1 s spent a
third of a core on it while the instance it waited for was starting on the same cores. One
client per process, kept alive, costs that once; each call still gives its own timeout.

It keeps no cookies, as `httpx.get` keeps none: a cookie set in one caller's answer must never
ride along on another caller's request.
"""

from __future__ import annotations

from functools import cache
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx


@cache
def local_http() -> httpx.Client:
    """The process's client for local addresses (safe to share between threads)."""
    return httpx.Client(cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])))
