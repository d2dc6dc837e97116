"""One connector per bank or intermediary, all behind one interface."""
