"""Adapters for the protocols of the servers this one replaces (SPEC 9)."""
