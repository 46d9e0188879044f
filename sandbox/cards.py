"""Stripe's documented test cards: what each number does when attached and charged.

Source: Stripe docs, testing#declined-payments and testing#fraud-prevention.
Each decline carries the charge's `failure_code` / `failure_message`, the API
error's `code` / `decline_code`, and the charge `outcome` Stripe records.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

GENERIC_SELLER_MESSAGE = "The bank did not return any further details with this decline."


@dataclass(frozen=True)
class Decline:
    """How a charge on a test card fails."""

    code: str  # error `code` and charge `failure_code`
    decline_code: str
    message: str  # error `message` and charge `failure_message`
    blocked: bool = False  # refused by Radar before reaching the network
    param: str | None = None

    def outcome(self, risk_score: int) -> dict[str, Any]:
        """Stripe's `charge.outcome` for this decline (docs: api/charges/object#outcome)."""
        if self.blocked:
            return {
                "network_status": "not_sent_to_network",
                "reason": "highest_risk_level",
                "risk_level": "highest",
                "risk_score": risk_score,
                "rule": "block_if_high_risk",
                "seller_message": "Stripe blocked this payment as too risky.",
                "type": "blocked",
            }
        seller_message = (
            GENERIC_SELLER_MESSAGE
            if self.decline_code == "generic_decline"
            else f"The bank returned the decline code `{self.decline_code}`."
        )
        return {
            "network_status": "declined_by_network",
            "reason": self.decline_code,
            "risk_level": "normal",
            "risk_score": risk_score,
            "seller_message": seller_message,
            "type": "issuer_declined",
        }


@dataclass(frozen=True)
class CardSpec:
    number: str
    decline: Decline | None = None
    declined_on_attach: bool = False  # Stripe verifies a card when it is saved
    risk_level: str = "normal"
    funding: str = "credit"


def _issuer(code: str, decline_code: str, message: str, param: str | None = None) -> Decline:
    return Decline(code, decline_code, message, param=param)


DECLINED = "Your card was declined."
GENERIC = _issuer("card_declined", "generic_decline", DECLINED)
RADAR_BLOCK = Decline("card_declined", "fraudulent", DECLINED, blocked=True)

# Test card numbers by the names Stripe gives their tokens (`tok_<name>`) and
# PaymentMethods (`pm_card_<name>`); `visa_` prefixed spellings also resolve.
TEST_CARDS: dict[str, CardSpec] = {
    "visa": CardSpec("4242424242424242"),
    "visa_debit": CardSpec("4000056655665556", funding="debit"),
    "mastercard": CardSpec("5555555555554444"),
    "mastercard_debit": CardSpec("5200828282828210", funding="debit"),
    "mastercard_prepaid": CardSpec("5105105105105100", funding="prepaid"),
    "discover": CardSpec("6011111111111117"),
    "chargeDeclined": CardSpec("4000000000000002", GENERIC, True),
    "chargeDeclinedInsufficientFunds": CardSpec(
        "4000000000009995",
        _issuer("card_declined", "insufficient_funds", "Your card has insufficient funds."),
        True,
    ),
    "chargeDeclinedLostCard": CardSpec("4000000000009987", _issuer("card_declined", "lost_card", DECLINED), True),
    "chargeDeclinedStolenCard": CardSpec("4000000000009979", _issuer("card_declined", "stolen_card", DECLINED), True),
    "chargeDeclinedExpiredCard": CardSpec(
        "4000000000000069",
        _issuer("expired_card", "expired_card", "Your card has expired.", "exp_month"),
        True,
    ),
    "chargeDeclinedIncorrectCvc": CardSpec(
        "4000000000000127",
        _issuer("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.", "cvc"),
        True,
    ),
    "chargeDeclinedProcessingError": CardSpec(
        "4000000000000119",
        _issuer(
            "processing_error",
            "processing_error",
            "An error occurred while processing your card. Try again in a little bit.",
        ),
        True,
    ),
    "chargeDeclinedVelocityLimitExceeded": CardSpec(
        "4000000000006975",
        _issuer(
            "card_declined",
            "card_velocity_exceeded",
            "Your card was declined for making repeated attempts too frequently or exceeding its amount limit.",
        ),
        True,
    ),
    # Attaching succeeds; every charge fails (Stripe: "chargeCustomerFail").
    "chargeCustomerFail": CardSpec("4000000000000341", GENERIC),
    # Radar: always blocked / highest risk are refused before the network.
    "radarBlock": CardSpec("4100000000000019", RADAR_BLOCK, risk_level="highest"),
    # The card's older token name, from before Radar: the same number, so the same block.
    "chargeDeclinedFraudulent": CardSpec("4100000000000019", RADAR_BLOCK, risk_level="highest"),
    "riskLevelHighest": CardSpec("4000000000004954", RADAR_BLOCK, risk_level="highest"),
    "riskLevelElevated": CardSpec("4000000000009235", risk_level="elevated"),
}

BY_NUMBER: dict[str, CardSpec] = {card.number: card for card in TEST_CARDS.values()}
# An incorrect number fails Stripe's checksum: refused like a decline.
BY_NUMBER["4242424242424241"] = CardSpec(
    "4242424242424241",
    _issuer("incorrect_number", "incorrect_number", "Your card number is incorrect.", "number"),
    True,
)


def magic_card_name(object_id: str) -> str | None:
    """The test card behind a magic id such as `tok_chargeDeclined` or `pm_card_visa`."""
    for prefix in ("pm_card_", "tok_"):
        if object_id.startswith(prefix):
            name = object_id[len(prefix) :]
            if name in TEST_CARDS:
                return name
            if name.startswith("visa_") and name[5:] in TEST_CARDS:
                return name[5:]
    return None


def card_params(name: str) -> dict[str, str]:
    """Card fields to create a test card: a valid expiry, a three-digit CVC."""
    return {
        "number": TEST_CARDS[name].number,
        "exp_month": "12",
        "exp_year": str(time.gmtime().tm_year + 5),
        "cvc": "123",
    }


def behaviour(number: str | None) -> CardSpec | None:
    return BY_NUMBER.get(number) if number else None


def brand(number: str) -> str:
    """Stripe's lower-case card brand (`payment_method.card.brand`) from the number."""
    if number.startswith("4"):
        return "visa"
    if number[:2] in ("34", "37"):
        return "amex"
    if number.startswith(("6011", "65", "644", "645", "646", "647", "648", "649")):
        return "discover"
    if number.startswith(("35",)):
        return "jcb"
    if number.startswith(("36", "300", "301", "302", "303", "304", "305", "38")):
        return "diners"
    if number[:2] in ("51", "52", "53", "54", "55") or number.startswith("2"):
        return "mastercard"
    return "unknown"


# The display spelling legacy Card objects use (`card.brand`).
CARD_BRANDS = {
    "visa": "Visa",
    "mastercard": "MasterCard",
    "amex": "American Express",
    "discover": "Discover",
    "jcb": "JCB",
    "diners": "Diners Club",
    "unknown": "Unknown",
}


def risk_score(seed: str, level: str) -> int:
    """A stable Radar score for a charge: 0-64 normal, 65-74 elevated, 75-99 highest."""
    low, high = {"normal": (5, 64), "elevated": (65, 74), "highest": (91, 99)}[level]
    digest = int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16)
    return low + digest % (high - low + 1)


def success_outcome(card: CardSpec | None, seed: str) -> dict[str, Any]:
    level = card.risk_level if card else "normal"
    return {
        "network_status": "approved_by_network",
        "reason": "elevated_risk_level" if level == "elevated" else None,
        "risk_level": level,
        "risk_score": risk_score(seed, level),
        "seller_message": "Payment complete.",
        "type": "authorized",
    }
