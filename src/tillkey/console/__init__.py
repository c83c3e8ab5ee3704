"""The admin console. For now: its login and session, which /oauth2/authorize signs users in with."""
