"""Identity adapters: database, OIDC client, key store."""
