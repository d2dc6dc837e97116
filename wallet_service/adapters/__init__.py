"""Wallet adapters: database, S3 object storage, signatures."""
