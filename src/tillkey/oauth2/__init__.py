"""OAuth 2.1 / OpenID Connect provider. Framework-free core, one module per specification;
surfaces/oauth2.py and console/login.py are the thin HTTP layer over it."""
