"""Signals of the server's life, for the apps to act on (the shared base imports no app)."""

from django.dispatch import Signal

# Sent once by `manage.py serve` before it serves: apps start their periodic work here
# (e.g. messaging's sweep of unused uploads), in the server process and nowhere else.
server_starting = Signal()
