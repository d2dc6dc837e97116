"""Payment domain: payments, fee lines, money, the state machine and events; no I/O frameworks."""
