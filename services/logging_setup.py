"""Logging that cannot leak a Stripe key: every record is scrubbed as it is created.

A log-record factory (rather than a handler filter) covers every logger, including
third-party ones with handlers of their own (the web server's, the Stripe SDK's).
"""

from __future__ import annotations

import logging
import re

# Stripe secret/restricted keys and webhook signing secrets.
SECRET_PATTERN = re.compile(r"\b(?:rk|sk)_(?:live|test)_[A-Za-z0-9]+|\bwhsec_[A-Za-z0-9]+")


def scrub(text: str) -> str:
    return SECRET_PATTERN.sub(lambda m: m.group(0)[:8] + "…[redacted]", text)


_installed = False


def install_scrubber(level: str = "INFO") -> None:
    """Make every future log record secret-free (message, arguments and traceback)."""
    global _installed
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if _installed:
        return
    base_factory = logging.getLogRecordFactory()

    def scrubbing_factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = base_factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not hide the record
            message = str(record.msg)
        record.msg, record.args = scrub(message), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return record

    logging.setLogRecordFactory(scrubbing_factory)
    _installed = True
