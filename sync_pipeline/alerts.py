"""Alerts: what went wrong, posted where people look, each problem once.

An :class:`Alert` goes to a generic JSON webhook (``SYNC_ALERT_WEBHOOK_URL``: PagerDuty,
Opsgenie, a Slack incoming webhook, anything that takes a POST) and to Slack through
``dagster-slack`` when ``SLACK_BOT_TOKEN`` and ``SYNC_ALERT_SLACK_CHANNEL`` are set.

Every alert has a fingerprint. Delivered fingerprints are remembered in
``<schema>.alerts_sent`` (migration 0003), so a problem that persists (an address shared by two users, a
check that fails every day until someone fixes the data) is announced once, not daily.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

logger = logging.getLogger("sync_pipeline.alerts")


@dataclass(frozen=True)
class Alert:
    title: str
    summary: str
    link: str
    run_id: str | None = None
    job_name: str | None = None
    severity: str = "error"
    details: dict = field(default_factory=dict)
    # Same fingerprint, same problem: announced once. Defaults to the run (one alert per failed run).
    fingerprint_parts: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> str:
        parts = self.fingerprint_parts or (self.title, self.run_id or "")
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]

    def as_json(self) -> dict:
        body = asdict(self)
        body.pop("fingerprint_parts")
        body["fingerprint"] = self.fingerprint
        body["source"] = "sync_pipeline"
        # Slack incoming webhooks read "text"; others read the structured fields.
        body["text"] = f"*{self.title}*\n{self.summary}\n<{self.link}|Open in Dagster>"
        return body


class _Retryable(Exception):
    pass


@retry(
    retry=retry_if_exception_type((_Retryable, httpx.TransportError)),
    stop=stop_after_attempt(4),
    wait=wait_exponential_jitter(initial=0.5, max=8),
    reraise=True,
)
def post_json(url: str, body: dict, *, timeout: float = 10.0) -> None:
    response = httpx.post(url, json=body, timeout=timeout)
    if response.status_code >= 500 or response.status_code == 429:
        raise _Retryable(f"alert destination answered {response.status_code}")
    response.raise_for_status()


def post_to_slack(token: str, channel: str, alert: Alert) -> None:
    from dagster_slack import SlackResource  # optional: only when Slack is configured

    SlackResource(token=token).get_client().chat_postMessage(channel=channel, text=alert.as_json()["text"])


@dataclass
class AlertDestinations:
    """Where alerts go. Nothing configured means alerts are only logged."""

    webhook_url: str = ""
    slack_token: str = ""
    slack_channel: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.webhook_url or (self.slack_token and self.slack_channel))

    def send(self, alert: Alert) -> None:
        logger.warning("%s: %s (%s)", alert.title, alert.summary, alert.link)
        if self.webhook_url:
            post_json(self.webhook_url, alert.as_json())
        if self.slack_token and self.slack_channel:
            post_to_slack(self.slack_token, self.slack_channel, alert)


def send_once(engine: Engine, schema: str, destinations: AlertDestinations, alert: Alert) -> bool:
    """Send ``alert`` unless its fingerprint was sent before; returns whether it was sent.

    The fingerprint is recorded only after the destination accepted the alert, so a
    destination that is down gets the alert on the next attempt instead of never.
    """
    with engine.begin() as connection:
        seen = connection.execute(
            sa.text(
                f'UPDATE "{schema}".alerts_sent SET last_seen_at = now(), times_seen = times_seen + 1 '
                "WHERE fingerprint = :fingerprint RETURNING fingerprint"
            ),
            {"fingerprint": alert.fingerprint},
        ).first()
    if seen:
        return False
    destinations.send(alert)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                f'INSERT INTO "{schema}".alerts_sent (fingerprint, title) VALUES (:fingerprint, :title) '
                "ON CONFLICT (fingerprint) DO NOTHING"
            ),
            {"fingerprint": alert.fingerprint, "title": alert.title},
        )
    return True
