"""Agent Billy's local Stripe sandbox: localstripe with Stripe-faithful extensions.

Development and test only: localstripe is GPL-3.0 and never ships with the app.
See sandbox/README.md.
"""

from sandbox.keys import DEMO_RESTRICTED_KEY
from sandbox.server import SandboxHandle, run_in_process, run_in_thread
from sandbox.state import ACCOUNT_ID

__all__ = [
    "ACCOUNT_ID",
    "DEMO_RESTRICTED_KEY",
    "SandboxHandle",
    "run_in_process",
    "run_in_thread",
]
