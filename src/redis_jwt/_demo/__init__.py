"""The demo web app behind ``redis-jwt demo``: log in, list and revoke sessions, watch events."""
