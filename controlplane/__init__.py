"""The control plane: signup, plans and provisioning of one isolated Billy instance per organisation.

Separate from the instance app (DESIGN, Tenancy): it never imports `billy_app`, and neither
`services` nor `billy_app` imports it (import-linter contracts in pyproject.toml). It reuses
`services` only for shared data (Billy's plans, the instance's settings rules).
"""
