"""Tests of the local Stripe sandbox (sandbox/)."""
