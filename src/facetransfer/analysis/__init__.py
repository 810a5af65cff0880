"""Analyses of trained models: what the transfer to pain forgot, and at what gain."""
