"""Shared machinery of the platform's web pages: sessions, CSRF, languages, templates, assets and login."""
