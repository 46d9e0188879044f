"""Typed amounts: ASCII digits, "," grouping in threes and one "." only; anything else is a
plain ValueError saying what to type, never a crash (issue 10, F5: `Infinity` raised
OverflowError, `１００` refunded $100)."""

from __future__ import annotations

import pytest

from services.money import format_amount, format_money, parse_money


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (123456, "usd", "1,234.56"),
        (5, "usd", "0.05"),
        (0, "usd", "0.00"),
        (100_000_000, "eur", "1,000,000.00"),
        (4599, "cad", "45.99"),
        (1235, "jpy", "1,235"),
        (7, "jpy", "7"),
        (123_456_789, "sek", "1,234,567.89"),
    ],
)
def test_format_amount_has_no_symbol_and_reads_back(amount: int, currency: str, text: str) -> None:
    assert format_amount(amount, currency) == text
    assert parse_money(format_amount(amount, currency), currency) == amount
    assert format_amount(amount, currency) in format_money(amount, currency)


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("45.99", "usd", 4599),
        ("  45.99\t", "usd", 4599),
        ("1,200", "usd", 120_000),
        ("1200", "usd", 120_000),
        ("12,345,678.9", "eur", 1_234_567_890),
        ("1.50", "usd", 150),
        ("1.500", "usd", 150),  # trailing zeros are no extra precision
        ("0", "usd", 0),  # zero parses: refunds refuse it themselves, a filter may want it
        ("1,235", "jpy", 1235),
        ("5.0", "jpy", 5),
    ],
)
def test_what_people_type(text: str, currency: str, minor: int) -> None:
    assert parse_money(text, currency) == minor


@pytest.mark.parametrize(
    "text",
    [
        "Infinity",
        "-Infinity",
        "inf",
        "NaN",
        "1e3",
        "１００",  # full-width digits
        "٣",  # Arabic-Indic three
        "-5",
        "+5",
        "1,00",
        "1000,000",
        ",100",
        "1.2.3",
        "1.",
        ".5",
        "1 000",
        "$5",
        "5$",
        "US$5",
        "€5",
        "5 USD",
        "0x10",
        "1_000",
        "\ud800",  # a lone surrogate, as a forged event can carry
        "1\ud800",
        "5\x00",
        "1" * 10_000,
        "9" * 40,  # short enough to read, too large to be an amount
        "",
        "   ",
        "1.234",
    ],
)
def test_anything_else_is_refused_with_a_message_saying_what_to_type(text: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_money(text, "usd")
    assert type(refused.value) is ValueError
    message = str(refused.value)
    assert message and message.isprintable() and len(message) < 200
    message.encode("utf-8")  # safe to send to a browser: no surrogate from the input
    assert text.strip() == "" or text not in message  # the text is never echoed back


@pytest.mark.parametrize("value", [None, 5, 4.5, ["1"], {"a": 1}, b"45"])
def test_a_value_that_is_not_text_is_refused_plainly(value: object) -> None:
    with pytest.raises(ValueError, match="digits"):
        parse_money(value, "usd")


def test_the_messages_say_what_to_type() -> None:
    with pytest.raises(ValueError, match=r"in digits, like 45\.99"):
        parse_money("Infinity", "usd")
    with pytest.raises(ValueError, match="group thousands by three"):
        parse_money("1,00", "usd")
    with pytest.raises(ValueError, match="at most 2 decimals"):
        parse_money("1.234", "usd")
    with pytest.raises(ValueError, match="JPY amounts have no decimals: type a whole number, like 1,200"):
        parse_money("5.5", "jpy")
    with pytest.raises(ValueError, match="too long"):
        parse_money("1" * 10_000, "usd")
