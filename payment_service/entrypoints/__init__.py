"""Payment entrypoints: gRPC servicer, Flask edge (callbacks, payment page), process main."""
