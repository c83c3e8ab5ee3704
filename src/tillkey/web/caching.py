"""Cache headers for answers that carry credentials or account state, in one place."""

# Tokens, secrets and sign-in answers (RFC 6749 §5.1: no-store, and Pragma for HTTP/1.0 caches).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# Account state and pages that must not be kept, where Pragma was never sent.
NO_STORE_ONLY = {"Cache-Control": "no-store"}
