"""The small runtime the three services share: settings, database, gRPC server, auth, logging, metrics."""
