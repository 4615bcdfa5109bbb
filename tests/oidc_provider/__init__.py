"""A real OpenID Connect provider for the SSO tests: django-oauth-toolkit's OIDC
support in its own process and port (fixture `oidc_provider`, tests/oidc_provider/
fixtures.py), with users and groups of its own."""
