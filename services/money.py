"""Money is integer minor units plus an ISO currency; this is the one place that formats it."""

from __future__ import annotations

import re
from decimal import Decimal

# Stripe's zero-decimal currencies (docs: currencies#zero-decimal).
ZERO_DECIMAL = frozenset(
    ["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"]
)
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$"}

# What a person may type for an amount: ASCII digits, optionally grouped by "," in threes, and
# at most one "." followed by digits. Nothing else: no symbols, signs, exponents, NaN/Infinity
# or other scripts' digits (`１００` once refunded $100), so what is refunded is what was meant.
_AMOUNT = re.compile(r"(?P<whole>[0-9]+|[0-9]{1,3}(?:,[0-9]{3})+)(?:\.(?P<fraction>[0-9]+))?", re.ASCII)
_AMOUNT_CHARACTERS = frozenset("0123456789,.")
_SPACE = " \t\r\n"
MAX_TEXT = 40  # characters: longer is not an amount anyone types
MAX_MINOR = 10**14  # minor units: a trillion dollars is no refund, cap or filter; keeps SQL integers safe


def is_currency_code(text: str) -> bool:
    """Three lowercase letters, as Stripe names a currency ("usd")."""
    return re.fullmatch(r"[a-z]{3}", text) is not None


def exponent(currency: str) -> int:
    return 0 if currency.lower() in ZERO_DECIMAL else 2


def format_amount(amount: int, currency: str) -> str:
    """`123456, "usd"` → `1,234.56`; `1235, "jpy"` → `1,235`: the number alone, without symbol or
    code, in the form `parse_money` reads back (for a form's pre-filled amount)."""
    digits = exponent(currency)
    return f"{Decimal(amount).scaleb(-digits):,.{digits}f}"


def format_money(amount: int, currency: str) -> str:
    """`4599, "usd"` → `$45.99`; unknown currencies get their code: `45.99 SEK`."""
    cur = currency.lower()
    text = format_amount(amount, cur)
    symbol = SYMBOLS.get(cur)
    if symbol:
        return f"-{symbol}{text[1:]}" if text.startswith("-") else f"{symbol}{text}"
    return f"{text} {cur.upper()}"


def _example(currency: str) -> str:
    return "1,200" if exponent(currency) == 0 else "45.99"


def parse_money(text: object, currency: str) -> int:
    """A typed amount (`45.99`, `1,200`) → minor units (zero included: callers judge the range).

    Refuses, with a ValueError whose message says what to type, anything but ASCII digits with
    optional "," grouping in threes and one "." decimal point; and amounts with more decimals
    than the currency has. The message never repeats the text, which may be anything a client
    sent (a lone surrogate, ten thousand characters)."""
    example = _example(currency)
    if not isinstance(text, str):
        raise ValueError(f"Type the amount in digits, like {example}.")
    if len(text) > MAX_TEXT:
        raise ValueError(f"That amount is too long: type it in digits, like {example}.")
    cleaned = text.strip(_SPACE)
    if not cleaned:
        raise ValueError(f"Enter an amount, like {example}.")
    match = _AMOUNT.fullmatch(cleaned)
    if match is None:
        if set(cleaned) <= _AMOUNT_CHARACTERS:
            raise ValueError(
                f"Type the amount like {example}: group thousands by three with ',' "
                "(or leave the commas out) and use one '.' for the decimals."
            )
        raise ValueError(f"Type the amount in digits, like {example}: no currency symbols, signs, spaces or letters.")
    digits = exponent(currency)
    fraction = (match["fraction"] or "").rstrip("0")
    if len(fraction) > digits:
        if digits == 0:
            raise ValueError(f"{currency.upper()} amounts have no decimals: type a whole number, like {example}.")
        raise ValueError(f"{currency.upper()} amounts have at most {digits} decimals, like {example}.")
    minor = int(match["whole"].replace(",", "")) * 10**digits + int(fraction.ljust(digits, "0") or "0")
    if minor > MAX_MINOR:
        raise ValueError("That amount is too large.")
    return minor
