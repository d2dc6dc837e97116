"""Fee payments for dossiers through bank and intermediary connectors, VietQR, callbacks, reconciliation."""
