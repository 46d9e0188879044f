"""Logging that cannot leak a Stripe key or be made to forge a line: every record is cleaned as it is created.

A log-record factory (rather than a handler filter) covers every logger, including
third-party ones with handlers of their own (the web server's, the Stripe SDK's).
Messages are escaped to one physical line; a traceback keeps its lines, but each one is
indented under the record, so client text inside an exception cannot pass for a record.
"""

from __future__ import annotations

import logging
import re

# Stripe secret/restricted keys and webhook signing secrets, and Billy's own agent tokens.
SECRET_PATTERN = re.compile(r"\b(?:rk|sk)_(?:live|test)_[A-Za-z0-9]+|\bwhsec_[A-Za-z0-9]+|\bbilly_at_[A-Za-z0-9_-]+")

# C0 and C1 controls (with DEL; U+0085 NEL is in C1), Unicode line/paragraph separators, and the
# bidirectional overrides/isolates that can make a line display differently from what it contains.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Every line of a traceback is written under the record with this prefix, so none starts like a record.
TRACEBACK_MARKER = "    | "
# A traceback line longer than this is an exception message carrying data, not code: cut it.
TRACEBACK_LINE_LIMIT = 2000
# Loggers that write a record per request at INFO: heard only when Billy's own level is DEBUG.
CHATTY_LOGGERS = ("stripe",)


def scrub(text: str) -> str:
    return SECRET_PATTERN.sub(lambda m: m.group(0)[:8] + "…[redacted]", text)


def _visible(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """One physical line: controls and line separators become visible escapes such as `\\n` and `\\x1b`."""
    return _UNSAFE.sub(_visible, text)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more chars cut]"


def client_text(value: object, limit: int = 200) -> str:
    """A client-supplied value made safe to log: one line, at most `limit` of its characters (before escaping)."""
    text = value if isinstance(value, str) else repr(value)
    return escape_controls(_cut(text, limit))


def indent_block(text: str) -> str:
    """A multi-line block (traceback, stack) whose every line is marked as a continuation of its record."""
    lines = _UNSAFE_BUT_NEWLINE.sub(_visible, text.rstrip("\n")).split("\n")
    return "\n".join(TRACEBACK_MARKER + _cut(line, TRACEBACK_LINE_LIMIT) for line in lines)


_installed = False


def install_scrubber(level: str = "INFO") -> None:
    """Make every future log record secret-free and one record per line (message, arguments, traceback).

    The Stripe SDK writes two INFO records per request. A first sync makes thousands of requests,
    so at INFO they buried what Billy itself said (a failed browser test's report, which ends with
    the app's last 80 lines, held nothing else: CI, stop 32). They are kept for a DEBUG run."""
    global _installed
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format=LOG_FORMAT)
    verbose = logging.getLevelName(level.upper()) == logging.DEBUG
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
    if _installed:
        return
    base_factory = logging.getLogRecordFactory()

    def scrubbing_factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = base_factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not hide the record
            message = str(record.msg)
        record.msg, record.args = escape_controls(scrub(message)), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = indent_block(scrub(logging.Formatter().formatException(record.exc_info)))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = indent_block(scrub(record.stack_info))
        return record

    logging.setLogRecordFactory(scrubbing_factory)
    _installed = True
