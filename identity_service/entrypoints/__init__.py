"""Identity entrypoints: gRPC servicer, Flask edge (OIDC discovery, JWKS, login redirect), process main."""
