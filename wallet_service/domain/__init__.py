"""Wallet domain: documents, types, shares, access log; no I/O frameworks."""
