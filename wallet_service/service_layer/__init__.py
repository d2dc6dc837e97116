"""Wallet use cases: one command in, ports injected."""
