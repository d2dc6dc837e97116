"""Counterpart simulators for banks and intermediaries, speaking their real protocols."""
