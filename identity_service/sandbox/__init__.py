"""Sandbox OIDC provider standing in for VNeID and agency identity providers."""
