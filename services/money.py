"""Money is integer minor units plus an ISO currency; this is the one place that formats it."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# Stripe's zero-decimal currencies (docs: currencies#zero-decimal).
ZERO_DECIMAL = frozenset(
    ["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"]
)
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$"}


def exponent(currency: str) -> int:
    return 0 if currency.lower() in ZERO_DECIMAL else 2


def format_money(amount: int, currency: str) -> str:
    """`4599, "usd"` → `$45.99`; unknown currencies get their code: `45.99 SEK`."""
    cur = currency.lower()
    digits = exponent(cur)
    value = Decimal(amount).scaleb(-digits)
    text = f"{value:,.{digits}f}"
    symbol = SYMBOLS.get(cur)
    if symbol:
        return f"-{symbol}{text[1:]}" if text.startswith("-") else f"{symbol}{text}"
    return f"{text} {cur.upper()}"


def parse_money(text: str, currency: str) -> int:
    """A typed amount (`45.99`, `$1,200`) → minor units; refuses what is not exactly representable."""
    cleaned = text.strip().replace(",", "").lstrip("$€£¥").strip()
    if not cleaned:
        raise ValueError("Enter an amount.")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"“{text}” is not an amount: type a number like 45.99.") from None
    minor = value.scaleb(exponent(currency))
    if minor != minor.to_integral_value():
        raise ValueError(f"{currency.upper()} amounts have at most {exponent(currency)} decimals.")
    return int(minor)
