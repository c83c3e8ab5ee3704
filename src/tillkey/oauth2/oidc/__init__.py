"""OpenID Connect Core 1.0 on top of the authorization code grant: ID tokens, userinfo, discovery."""
