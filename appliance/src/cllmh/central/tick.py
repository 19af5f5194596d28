"""One evaluation round at head office: conditions -> alerts -> notifications, then pruning.

Run by `cllmh central tick` from a systemd timer (every 30 s), not by a thread in the app: a
silent site sends no request, gunicorn runs several workers (a thread in each would evaluate and
notify several times), and a timer's run is visible in the journal on its own."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cllmh.central import alerts, notify, search
from cllmh.central.config import CentralConfig
from cllmh.central.store import Store

LOG = logging.getLogger("cllmh.central.tick")
HOUR = 3600.0
DAY = 86400.0


@dataclass(frozen=True)
class TickResult:
    opened: int
    closed: int
    notified: int
    pruned_events: int
    indexed: int = 0


def run(store: Store, config: CentralConfig, now: float) -> TickResult:
    found: list[alerts.Condition] = []
    for site in store.sites():
        if site.revoked_at is not None:
            continue
        view = alerts.SiteView(site.name, site.last_seen or site.enrolled_at, site.clock_offset_s, site.state)
        found.extend(alerts.conditions(view, now, config.thresholds))
    plan = alerts.reconcile(store.active_alerts(), found)
    for condition in plan.open:
        alert_id = store.open_alert(
            condition.site, condition.kind, condition.subject, condition.detail, now, dict(condition.params)
        )
        LOG.info("alert %d opened: %s %s %s", alert_id, condition.site, condition.kind, condition.detail)
    for alert_id in plan.close:
        store.close_alert(alert_id, now)
        LOG.info("alert %d closed: condition cleared", alert_id)
    notified = 0
    if config.notify.smtp is not None or config.notify.webhooks:
        for alert in alerts.due(store.active_alerts(), now, config.notify.repeat_minutes * 60):
            if notify.send(alert, config.notify):
                store.notified(alert.id, now)
                notified += 1
    pruned, _ = store.prune(
        events_before=now - config.event_retention_days * DAY,
        snapshots_before=now - config.snapshot_retention_days * DAY,
        keys_before=now - config.idempotency_retention_hours * HOUR,
        history_before=now - config.history_retention_hours * HOUR,
    )
    indexed = 0
    if config.elasticsearch is not None:
        indexed = search.flush(store, config.elasticsearch).indexed
    return TickResult(len(plan.open), len(plan.close), notified, pruned, indexed)
