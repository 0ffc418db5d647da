"""The reference: the Channels tutorial's chat app, as small as it gets (no DB, no auth)."""
