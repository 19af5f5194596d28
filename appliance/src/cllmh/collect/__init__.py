"""Collectors of the site's state: small read-only functions shared by `cllmh report` (heartbeats to
head office) and the status page. Each reads one thing and never raises for a missing source: what
cannot be read is reported as None/"unknown"."""
