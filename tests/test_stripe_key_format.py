"""Every refusal of a pasted key, before anything reaches Stripe."""

from __future__ import annotations

import pytest

from services.errors import StripeKeyRejected
from services.stripe_keys import KEY_ERRORS, classify_key


@pytest.mark.parametrize(
    ("pasted", "code"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("sk_live_51H8abcdefghijklmnop", "secret_key"),
        ("sk_test_51H8abcdefghijklmnop", "secret_key"),
        ("pk_live_51H8abcdefghijklmnop", "publishable_key"),
        ("pk_test_51H8abcdefghijklmnop", "publishable_key"),
        ("whsec_abcdefghijklmnop", "webhook_secret"),
        ("hello world", "wrong_format"),
        ("rk_prod_51H8abcdefghijklmnop", "wrong_format"),
        ("rk_live_short", "wrong_format"),
        ("rk_live_51H8abc def", "wrong_format"),
        ("rk_live_51H8abc;DROP TABLE", "wrong_format"),
    ],
)
def test_refusals_are_specific(pasted: str, code: str) -> None:
    with pytest.raises(StripeKeyRejected) as refused:
        classify_key(pasted)
    assert refused.value.code == code
    assert refused.value.message == KEY_ERRORS[code]
    assert pasted.strip() == "" or pasted.strip() not in refused.value.message  # never echoed back


def test_secret_key_refusal_explains_what_to_do_instead() -> None:
    with pytest.raises(StripeKeyRejected) as refused:
        classify_key("sk_live_51H8abcdefghijklmnop")
    assert "full secret key" in refused.value.message and "restricted key" in refused.value.message


@pytest.mark.parametrize(
    ("pasted", "mode"), [("rk_live_51H8abcdefghijk", "live"), (" rk_test_51H8abcdefghijk\n", "test")]
)
def test_restricted_keys_are_accepted_with_their_mode(pasted: str, mode: str) -> None:
    assert classify_key(pasted) == mode
