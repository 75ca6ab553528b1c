"""Who may call the API: API tokens, issuer-signed JWTs, single-use stream tickets."""
