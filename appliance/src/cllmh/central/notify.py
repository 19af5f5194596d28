"""Alert notifications: e-mail over SMTP and JSON webhooks (generic, or Telegram's sendMessage)."""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.request
from email.message import EmailMessage
from typing import Any

from cllmh.central import alerts
from cllmh.central.config import Notify, Smtp, Webhook
from cllmh.central.store import Alert

LOG = logging.getLogger("cllmh.central.notify")


def subject(alert: Alert) -> str:
    where = f"{alert.site}/{alert.subject}" if alert.subject else alert.site
    return f"[CLLMH] {where}: {alerts.title(alert.kind)}"


def text(alert: Alert) -> str:
    """The subject, the detail in English and (when the alert has its values) Bahasa Indonesia."""
    params = json.loads(alert.params or "{}")
    translated = f"\n{alerts.detail(alert.kind, params, 'id')}" if params else ""
    return f"{subject(alert)}\n{alert.detail}{translated}\nalert #{alert.id}"


def payload(alert: Alert, hook: Webhook) -> dict[str, Any]:
    if hook.preset == "telegram":
        return {"chat_id": hook.chat_id, "text": text(alert)}
    return {
        "id": alert.id,
        "site": alert.site,
        "kind": alert.kind,
        "subject": alert.subject,
        "detail": alert.detail,
        "opened_at": alert.opened_at,
        "title": subject(alert),
        "text": text(alert),
    }


def send_mail(alert: Alert, smtp: Smtp) -> None:
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = ", ".join(smtp.recipients)
    message["Subject"] = subject(alert)
    message.set_content(text(alert))
    with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as client:
        if smtp.starttls:
            client.starttls()
        if smtp.username and smtp.password_file:
            client.login(smtp.username, smtp.password_file.read_text(encoding="utf-8").strip())
        client.send_message(message)


def post_webhook(alert: Alert, hook: Webhook) -> None:
    request = urllib.request.Request(
        hook.url,
        data=json.dumps(payload(alert, hook)).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=hook.timeout_s) as response:
        response.read()


def send(alert: Alert, config: Notify) -> bool:
    """Every channel once; True when at least one accepted the alert (else it is retried next tick)."""
    delivered = False
    if config.smtp is not None:
        try:
            send_mail(alert, config.smtp)
            delivered = True
        except (OSError, smtplib.SMTPException) as exc:
            LOG.warning("alert %d: e-mail via %s failed: %s", alert.id, config.smtp.host, exc)
    for hook in config.webhooks:
        try:
            post_webhook(alert, hook)
            delivered = True
        except OSError as exc:
            LOG.warning("alert %d: webhook %s failed: %s", alert.id, hook.url.split("/bot")[0], exc)
    return delivered
