"""Payment adapters: database, VietQR images, connectors, outbox dispatcher."""
