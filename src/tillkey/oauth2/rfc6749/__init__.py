"""RFC 6749 (as OAuth 2.1 narrows it): the grants Tillkey supports, their errors and parameters.
No implicit grant and no password grant (OAuth 2.1 §10, RFC 9700 §2.1.2, §2.4)."""
