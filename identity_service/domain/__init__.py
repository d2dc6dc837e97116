"""Identity domain: subjects, providers, clients, tokens and their rules; no I/O frameworks."""
