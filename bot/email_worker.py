"""Delivers the email outbox through SMTP: in order per address, retried for hours.

A server that is down or answers 4xx is tried again with a capped backoff until the retry
horizon (RELAIS_RETRY_HOURS) ends; only a permanent refusal (5xx for the recipient or the
content, an address that cannot be an address) ends a row at once. Either end tells the
territory's animators.

A crash between the SMTP server's acceptance and the row being marked sends the email
again on restart, with the same Message-ID (built from the need and the partner), which
mail clients use to show it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from email.utils import parseaddr

from bot.catalogue import t
from bot.mail import MailSender, PermanentMailError, TransientMailError
from bot.messages import Message
from bot.services import outbox
from bot.services.animators import user_chats
from bot.services.delivery import DeliveryAlerts
from bot.services.emails import REPORT_SLOT, EmailDraft, to_outgoing
from handlers.render import email_body
from knowledge.territories import TerritoryDirectory
from storage.db import Database

__all__ = ["EmailWorker", "mail_domain"]

log = logging.getLogger(__name__)


def mail_domain(mail_from: str) -> str:
    """The domain of the sender address (for Message-IDs)."""
    address = parseaddr(mail_from)[1]
    return address.rpartition("@")[2] or "localhost"


def with_rendered_body(draft: EmailDraft, payload: dict[str, object]) -> EmailDraft:
    """The draft with its parts rendered from the payload's channel-neutral texts, if any.

    ``body`` is the whole email; ``report`` fills the template's `REPORT_SLOT`.

    Services write a `Message` (an animator's card, an invitation) and cannot render it
    (renderers live with the channels): it is rendered here, when the email is sent.
    """
    report = payload.get("report")
    if isinstance(report, dict):
        # A report inside a template (the weekly digest): rendered into its slot.
        part = email_body(Message.from_payload(report).text)
        draft = replace(draft, text=draft.text.replace(REPORT_SLOT, part.text.rstrip("\n")),
                        html=draft.html.replace(REPORT_SLOT, part.html))
    body = payload.get("body")
    if not isinstance(body, dict):
        return draft
    rendered = email_body(Message.from_payload(body).text)
    html = f'<!DOCTYPE html>\n<html lang="fr"><body>\n{rendered.html}\n</body></html>\n'
    return replace(draft, text=rendered.text, html=html)


def mail_local_part(mail_from: str) -> str:
    """The local part of the sender address ("relais"), base of the per-need reply addresses."""
    address = parseaddr(mail_from)[1]
    return address.rpartition("@")[0].split("+", 1)[0] or "relais"


class EmailWorker:
    """Claims email rows, sends them over one reused SMTP connection, records each outcome."""

    def __init__(
        self,
        db: Database,
        sender: MailSender,
        *,
        mail_from: str,
        territories: TerritoryDirectory,
        clock: Callable[[], datetime],
        lease: timedelta | None = None,
        horizon: timedelta | None = None,
        alerts: DeliveryAlerts | None = None,
    ) -> None:
        self.db = db
        self.sender = sender
        self.mail_from = mail_from
        self.territories = territories
        self.clock = clock
        self.lease = lease
        self.horizon = horizon
        self.alerts = alerts
        self.sent = 0

    async def run_once(self, limit: int = 50) -> int:
        """Deliver what is due now; return how many rows were attempted.

        The rows claimed stay leased while they are sent one by one: once half the lease
        has gone, the rest are released for the next claim (a slow server never lets a
        lease expire under a row still to send, which another worker would send too).
        Batches of 50: each claim reads every pending email's address (a burst of 2,000
        reminders spent 5.5 s in claims of 10, 1.2 s in claims of 50).
        """
        claimed_at = self.clock()
        rows = await outbox.claim_raw(self.db, claimed_at, channel="email", limit=limit,
                                      lease=self.lease)
        deadline = claimed_at + (self.lease or outbox.default_lease()) / 2
        for index, (row_id, recipient, payload) in enumerate(rows):
            if index and self.clock() >= deadline:
                await outbox.release(self.db, [other for other, _, _ in rows[index:]])
                return index
            try:
                draft = EmailDraft.from_payload(payload["email"])  # type: ignore[arg-type]
                draft = with_rendered_body(draft, payload)
                message = to_outgoing(draft, mail_from=self.mail_from)
            except (KeyError, TypeError, ValueError) as exc:
                # A stored payload that cannot become an email (an invalid address) never
                # will: fail it for good, without a try, and say so.
                log.error("email %s unusable: %s", row_id, exc)
                await outbox.record_failure(self.db, row_id, error=f"payload: {exc}",
                                            now=self.clock(), permanent=True)
                await self._tell_animators(payload, recipient, str(exc))
                continue
            try:
                await self.sender.send(message)
            except PermanentMailError as exc:
                log.error("email %s refused for good: %s", row_id, exc)
                await outbox.record_failure(self.db, row_id, error=str(exc), now=self.clock(),
                                            permanent=True)
                await self._tell_animators(payload, ", ".join(draft.to), str(exc))
                continue
            except (TransientMailError, OSError, TimeoutError) as exc:
                log.warning("email %s not sent, will retry: %s", row_id, exc)
                await outbox.record_failure(
                    self.db, row_id, error=str(exc), now=self.clock(), horizon=self.horizon,
                    on_give_up=self.alerts.given_up if self.alerts else None)
                # The server is unwell: the rest wait for the next round (their order holds:
                # each is the oldest pending email of its address).
                await outbox.release(self.db, [other for other, _, _ in rows[index + 1:]])
                break
            # Marked at once, not at the end of the batch: a crash then sends again at most
            # the one email the server had just accepted (with the same Message-ID).
            await outbox.mark_delivered(self.db, [row_id], self.clock())
            self.sent += 1
        return len(rows)

    async def _tell_animators(self, payload: dict[str, object], to: str, error: str) -> None:
        territory = self.territories.get(str(payload.get("territory_id") or ""))
        if territory is None:
            return
        email = payload.get("email")
        subject = str(email.get("subject") or "") if isinstance(email, dict) else ""
        message = Message(t("animator.email_refused", to=to, subject=subject,
                            error=error[:300]))
        now = self.clock()

        await self.db.run(lambda session: outbox.enqueue_for_chats(
            session, user_chats(session, territory), message, now=now))

    async def _wait(self, interval: float) -> float:
        """Seconds to sleep when idle: `interval`, or less when an email is held until then.

        A reminder fired ahead of time holds its emails until their due time: the worker
        wakes up for them then, not up to a whole interval later.
        """
        try:
            due = await outbox.next_due(self.db, self.clock(), channel="email")
        except Exception:
            log.exception("could not read the next held email")
            return interval
        return interval if due is None else min(interval, max(0.02, due))

    async def run(self, stop: asyncio.Event, *, interval: float = 1.0) -> None:
        """Loop until stopped."""
        while not stop.is_set():
            try:
                busy = await self.run_once()
            except Exception:
                log.exception("email worker failed")
                busy = 0
            if busy:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=await self._wait(interval))
        await self.sender.close()
