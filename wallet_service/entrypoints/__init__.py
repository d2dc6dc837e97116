"""Wallet entrypoints: gRPC servicer, Flask edge (pages), process main."""
