"""Citizen e-document wallet: issued results stored once, shared with consent, every access logged."""
