"""The reporter's loop: collect the state, take new events from the index, send what is due."""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time

from cllmh import catalogue
from cllmh import events as ev
from cllmh.collect import cameras, disk, logfwd, system
from cllmh.report import messages
from cllmh.report.config import ReportConfig
from cllmh.report.outbox import Message, Outbox
from cllmh.report.policy import DAY, Backoff, Outcome, outcome
from cllmh.report.transport import Transport

LOG = logging.getLogger("cllmh.report")

EXPIRE_EVERY_S = 600.0
# Each poll reads the events that started in the last RECENT_S; the whole window (event_max_age_days)
# is read every FULL_SCAN_S, for events finished long after their start (an event a restarted
# recorder recovered, a row the guard's sync added back).
RECENT_S = 3600.0
FULL_SCAN_S = 300.0


class Reporter:
    def __init__(
        self, config: ReportConfig, outbox: Outbox, transport: Transport, rng: random.Random | None = None
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.transport = transport
        self.rng = rng or random.Random()
        self.backoff = Backoff(config.backoff_initial_s, config.backoff_max_s)
        self.streams = cameras.StreamTracker()
        self.next_heartbeat = 0.0
        # Monotonic time up to which the outbox's messages have been aged (see Outbox.age).
        self.aged_until = time.monotonic()
        # Head office as a whole: after a failure nothing is sent before this (consecutive failures;
        # monotonic time, so that a clock set back cannot stall the reporter).
        self.failures = 0
        self.host_next_try = 0.0
        # Event ids of the index's window already enqueued: rebuilt by each full scan, so bounded by
        # the window; recent polls add to it.
        self.known: set[str] = set()
        self.next_full_scan = 0.0  # monotonic

    # -- what the site says -------------------------------------------------------------------
    def state(self, now: float) -> dict:
        disk_state, guard = disk.disk_state(self.config.recordings_dir, now)
        stats = self.outbox.stats()
        return {
            "uptime_s": system.uptime_s(),
            "hostname": system.hostname(),
            "temperature_c": system.temperature_c(),
            "disk": disk_state,
            "guard": guard,
            "cameras": cameras.cameras_state(
                self.config.cameras,
                self.streams,
                now,
                stat_url=self.config.rtmp_stat_url,
                application=self.config.rtmp_application,
            ),
            "log_forwarding": {"backlog_bytes": logfwd.backlog_bytes(self.config.log_buffer_dir)},
            "outbox": {"pending": stats.pending, "oldest": stats.oldest},
        }

    def heartbeat(self, now: float) -> None:
        self.outbox.enqueue_heartbeat(messages.heartbeat_body(self.state(now), now), now)

    def take_events(self, now: float, *, full: bool = True) -> int:
        """Enqueue each finished event not enqueued before, of the whole window (`full`) or of the
        last RECENT_S; returns how many."""
        root = self.config.recordings_dir
        window = self.config.event_max_age_days * DAY
        found = ev.finished_events(root, now - (window if full else min(window, RECENT_S)))
        ids = {messages.event_id(e): e for e in found}
        fresh = [i for i in ids if i not in self.known]
        already = self.outbox.seen(fresh) if fresh else set()
        added = 0
        for event_id in fresh:
            if event_id in already:
                continue
            event = ids[event_id]
            body = messages.event_body(root, event, self.config.language)
            if body is None:
                continue
            if self.outbox.enqueue_event(event_id, event.start, body, now) is not None:
                added += 1
        self.known = set(ids) if full else self.known | set(ids)
        return added

    # -- sending ------------------------------------------------------------------------------
    def send_due(self, now: float) -> int:
        """Send the due messages (heartbeat first, then oldest first) until one fails or none is left,
        in batches for at most half a heartbeat interval; returns how many were delivered."""
        started = time.monotonic()
        sent = 0
        while started >= self.host_next_try and time.monotonic() - started < self.config.heartbeat_s / 2:
            batch = self.outbox.due(now, max_wait=self.config.backoff_max_s)
            for message in batch:
                if not self.send(message):
                    return sent
                sent += 1
            if not batch:
                break
        return sent

    def send(self, message: Message) -> bool:
        answer = self.transport.post(messages.PATHS[message.kind], message.key, message.body)
        now = time.time()
        lang = self.config.language
        what = messages.what(message.kind, message.ref, lang)
        result = outcome(answer.status, from_api=answer.json)
        if result is Outcome.DELIVERED:
            self.outbox.delivered(message, now)
            if self.failures:
                catalogue.log(LOG, logging.INFO, "report.answers_again", lang, url=self.config.url, what=what)
            self.failures, self.host_next_try = 0, 0.0
            return True
        if result is Outcome.PARK:
            self.outbox.park(message, now=now, error=f"HTTP {answer.status}: {answer.detail}")
            catalogue.log(
                LOG,
                logging.ERROR,
                "report.parked",
                lang,
                what=what,
                key=message.key,
                status=answer.status,
                detail=answer.detail,
            )
            return True  # this message's problem, not head office's: go on with the others
        self.failures += 1
        if result is Outcome.SITE_REFUSED:
            self.failures = max(self.failures, 64)  # straight to the longest wait: nothing will change soon
        wait = self.backoff.delay(self.failures, self.rng)
        self.host_next_try = time.monotonic() + wait
        error = f"HTTP {answer.status}: {answer.detail}" if answer.status else answer.detail
        self.outbox.failed(
            message, next_try=now + self.backoff.delay(message.attempts + 1, self.rng), error=error
        )
        refused = result is Outcome.SITE_REFUSED
        catalogue.log(
            LOG,
            logging.ERROR if refused else logging.WARNING,
            # The site's certificate refused: is the site registered there, or its certificate revoked?
            "report.site_refused" if refused else "report.undelivered",
            lang,
            what=what,
            url=self.config.url,
            error=error,
            pending=self.outbox.stats().pending,
            wait=f"{wait:.0f}",
        )
        return False

    def age_and_expire(self, now: float) -> None:
        """Count the time waited since the last call, then drop what passed the bound."""
        mono = time.monotonic()
        self.outbox.age(mono - self.aged_until)
        self.aged_until = mono
        self.outbox.expire(now, self.config.event_max_age_days, self.config.language)

    # -- the loop -----------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if time.monotonic() - self.aged_until >= EXPIRE_EVERY_S:
            self.age_and_expire(now)
        full = time.monotonic() >= self.next_full_scan
        self.take_events(now, full=full)
        if full:
            self.next_full_scan = time.monotonic() + FULL_SCAN_S
        if now >= self.next_heartbeat:
            self.heartbeat(now)
            self.next_heartbeat = now + self.config.heartbeat_s
        self.send_due(now)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except (OSError, ValueError, sqlite3.Error) as exc:  # transient: the reporter goes on
                catalogue.log(LOG, logging.ERROR, "report.tick_failed", self.config.language, error=exc)
            stop.wait(self.config.poll_s)
        self.outbox.age(time.monotonic() - self.aged_until)  # the wait so far counts after a restart too
        self.outbox.close()
