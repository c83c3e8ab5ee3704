"""Sign-in with external identity providers (issue 14): providers as data (providers.py), the
OpenID Connect relying party (oidc.py), and who an external identity is here (linking.py)."""
