"""Limits against abuse: how much one person, one sender or everyone may ask of Relais.

Telegram, per person (counted in this process's memory: a turn must not pay a database
write to be counted, and a refused flood must cost nothing):

* messages a minute (`RELAIS_LIMIT_MESSAGES_PER_MINUTE`): every update counts (text,
  command, button, file). Beyond, one notice, then the person's updates are dropped unread
  until the minute that overflowed is over. The chefs de projet are not counted;
* knowledge-base questions a minute (`RELAIS_LIMIT_QUESTIONS_PER_MINUTE`): the same, for
  questions only (retrieval is the costly part of a turn);
* needs a day (`RELAIS_LIMIT_NEEDS_PER_DAY`): counted on the need table; the intake
  refuses to file one more and keeps the form for the next day.

Email, per sender and overall (counted on the database, so that every instance agrees and
a restart forgets nothing):

* needs created an hour, per sender (`RELAIS_LIMIT_MAIL_NEEDS_PER_HOUR`) and overall
  (`RELAIS_LIMIT_MAIL_NEEDS_PER_HOUR_TOTAL`): an email beyond is kept, not answered;
* automatic replies (`RELAIS_LIMIT_MAIL_REPLIES_PER_DAY`): acknowledgements of new emails
  per address a day, answers in one thread a day. Emails about an erasure have their own
  rule (`bot.services.mail_erasure`: one confirmation asked a day per need). Without
  this, forged senders turn Relais into a backscatter source, and a helpdesk answering
  every message (without the Auto-Submitted header) ping-pongs with it;
* loop breaker (`RELAIS_LIMIT_MAIL_THREAD_PER_HOUR`): emails from one sender in one thread
  an hour; beyond, they are set aside (the chefs de projet are told once).

0 turns a limit off. Several instances (webhook mode) each count Telegram messages and
questions on their own: those two limits are then per instance.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func
from sqlmodel import Session, col, select

from storage.models import InboundEmail, Need

__all__ = ["ChatLimits", "MailLimits", "RateWindow", "Verdict"]

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

class Verdict(StrEnum):
    """What a limit says of one more event."""

    OK = "ok"
    # The first refusal of the window: say why, once.
    NOTICE = "notice"
    # Refused again: nothing is said (nor done) until the window is over.
    SILENT = "silent"


@dataclass(slots=True)
class _Bucket:
    times: deque[datetime] = field(default_factory=deque)
    blocked_until: datetime | None = None


class RateWindow:
    """At most `limit` events per `period` for each key; beyond, one notice, then silence.

    A sliding window: the events of the last `period` are kept (at most `limit` of them).
    The first event beyond gets NOTICE and blocks the key until the oldest counted event
    leaves the window; every event meanwhile gets SILENT and is not counted. Then the count
    starts afresh. Memory: `limit` timestamps per active key; idle keys are forgotten once
    there are more than `max_keys`.
    """

    def __init__(self, limit: int, period: timedelta, *, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.period = period
        self.max_keys = max_keys
        self._buckets: dict[int | str, _Bucket] = {}

    def hit(self, key: int | str, now: datetime) -> Verdict:
        """Count one event of `key` at `now`, if the limit allows it."""
        if self.limit <= 0:
            return Verdict.OK
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget_idle(now)
            bucket = self._buckets[key] = _Bucket()
        if bucket.blocked_until is not None:
            if now < bucket.blocked_until:
                return Verdict.SILENT
            bucket.blocked_until = None
            bucket.times.clear()
        times = bucket.times
        while times and times[0] <= now - self.period:
            times.popleft()
        if len(times) < self.limit:
            times.append(now)
            return Verdict.OK
        bucket.blocked_until = times[0] + self.period
        return Verdict.NOTICE

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget_idle(self, now: datetime) -> None:
        """Drop the keys with nothing in the window and no block running."""
        horizon = now - self.period
        for key in [k for k, b in self._buckets.items()
                    if (b.blocked_until is None or b.blocked_until <= now)
                    and (not b.times or b.times[-1] <= horizon)]:
            del self._buckets[key]


class ChatLimits:
    """The per-person limits of the chat (Telegram, and the terminal try-out)."""

    def __init__(self, *, messages_per_minute: int = 20, questions_per_minute: int = 10,
                 needs_per_day: int = 3, exempt: Iterable[int] = ()) -> None:
        self.messages = RateWindow(messages_per_minute, MINUTE)
        self.questions = RateWindow(questions_per_minute, MINUTE)
        self.needs_per_day = needs_per_day
        # The chefs de projet: staff of the territories, who triage in bursts. Those of the
        # files at start, those bound by invitation as they are (`exempt_user`).
        self.exempt = set(exempt)

    def exempt_user(self, user_id: int) -> None:
        """Count nothing for this person from now on (a chef de projet just bound)."""
        self.exempt.add(user_id)

    def message(self, user_id: int, now: datetime) -> Verdict:
        """One more update from this person."""
        if user_id in self.exempt:
            return Verdict.OK
        return self.messages.hit(user_id, now)

    def question(self, user_id: int, now: datetime) -> Verdict:
        """One more question to the knowledge base from this person (or chat)."""
        if user_id in self.exempt:
            return Verdict.OK
        return self.questions.hit(user_id, now)

    def may_file_need(self, session: Session, user_id: int, now: datetime) -> bool:
        """Whether this person may file one more need today (last 24 hours)."""
        if self.needs_per_day <= 0 or user_id in self.exempt:
            return True
        filed = session.exec(select(func.count()).select_from(Need).where(
            Need.telegram_user_id == user_id, col(Need.created_at) > now - DAY)).one()
        return filed < self.needs_per_day


@dataclass(frozen=True, slots=True)
class MailLimits:
    """The limits of the email channel, counted on the database (see the module docstring)."""

    needs_per_hour: int = 3
    needs_per_hour_total: int = 20
    replies_per_day: int = 1
    thread_per_hour: int = 5

    def new_need_refused(self, session: Session, sender: str, now: datetime) -> str | None:
        """Why an email from `sender` may not create a need now (a short note), or None."""
        since = now - HOUR
        email_needs = select(func.count()).select_from(Need).where(
            Need.channel == "email", col(Need.created_at) > since)
        if self.needs_per_hour > 0:
            mine = session.exec(email_needs.where(
                func.lower(col(Need.contact_value)) == sender.lower())).one()
            if mine >= self.needs_per_hour:
                return f"limit: {self.needs_per_hour} needs an hour from this sender"
        if self.needs_per_hour_total > 0:
            everyone = session.exec(email_needs).one()
            if everyone >= self.needs_per_hour_total:
                return f"limit: {self.needs_per_hour_total} needs an hour by email"
        return None

    def may_reply(self, session: Session, *, address: str, kind: str, need_id: int | None,
                  now: datetime) -> bool:
        """Whether an automatic reply of `kind` may go to `address` now.

        A new email's acknowledgement: to the first `replies_per_day` needs an address
        opened by email in a day. An answer in a thread (`update`): to the first
        `replies_per_day` answers of the thread in a day. About an erasure: always (the
        request to confirm goes at most once a day per need, `bot.services.mail_erasure`).
        Counted on the need and inbound email tables (small, or by an indexed need id),
        not on the outbox, which a busy instance makes large.
        """
        if self.replies_per_day <= 0 or kind in ("erased", "erase_confirm"):
            return True
        since = now - DAY
        if kind == "new":
            earlier = session.exec(select(func.count()).select_from(Need).where(
                Need.channel == "email", col(Need.created_at) > since,
                func.lower(col(Need.contact_value)) == address.lower(),
                col(Need.id) != need_id)).one()
        else:
            # This email's own row is not marked yet: only the thread's earlier answers count.
            earlier = session.exec(select(func.count()).select_from(InboundEmail).where(
                InboundEmail.need_id == need_id, InboundEmail.kind == "firm_reply",
                col(InboundEmail.received_at) > since)).one()
        return earlier < self.replies_per_day

    def looping(self, session: Session, *, need_id: int, sender: str, now: datetime) -> bool:
        """Whether this thread already had its share of emails from `sender` this hour."""
        if self.thread_per_hour <= 0:
            return False
        count = session.exec(select(func.count()).select_from(InboundEmail).where(
            InboundEmail.need_id == need_id,
            func.lower(col(InboundEmail.from_addr)) == sender.lower(),
            col(InboundEmail.received_at) > now - HOUR)).one()
        return count >= self.thread_per_hour
