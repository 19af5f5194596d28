"""`cllmh report`: the site's heartbeats and kept events, sent to head office through an on-disk outbox.

config (validated YAML) -> service (the loop) -> messages (bodies) -> outbox (SQLite) -> transport
(HTTPS with the fleet client certificate); policy holds the pure decisions. The wire format is the
site -> head office contract v1 (POST /api/v1/site/heartbeat and /api/v1/site/events)."""
