"""Identity use cases: one command in, ports injected."""
