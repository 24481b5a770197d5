"""Database tables (SQLModel). Times are stored in UTC; see `storage.types.UTCDateTime`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    Column,
    Index,
    LargeBinary,
    Text,
    UniqueConstraint,
    event,
    inspect,
    text,
    update,
)
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow

__all__ = [
    "AnimatorBinding",
    "ChatDraft",
    "Consent",
    "Conversation",
    "DeadLetter",
    "DigestRun",
    "FirmLookup",
    "HeldMessage",
    "InboundEmail",
    "KbQuery",
    "MailEraseConfirm",
    "Meeting",
    "MeetingAttendee",
    "MeetingStatus",
    "Need",
    "NeedAttachment",
    "NeedEvent",
    "NeedMessage",
    "NeedRouting",
    "NeedSequence",
    "NeedStatus",
    "Outbox",
    "PendingUpdate",
    "ProcessedUpdate",
    "RadarApart",
    "RadarConsent",
    "RadarMark",
    "Reminder",
    "Satisfaction",
]


def _ts(**kwargs: Any) -> Any:
    """A UTC timestamp column."""
    nullable = kwargs.pop("nullable", False)
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable, **kwargs), **_default(nullable))


def _default(nullable: bool) -> dict[str, Any]:
    return {"default": None} if nullable else {"default_factory": utcnow}


def _followup_default(context: Any) -> datetime | None:
    """A routing waiting for its partner is due for a look when it is written."""
    row = context.get_current_parameters()
    if row.get("status", "routed") != "routed" or (
            row.get("reminded_at") is not None and row.get("escalated_at") is not None):
        return None
    routed_at = row.get("routed_at")
    return routed_at if isinstance(routed_at, datetime) else utcnow()


class NeedStatus(StrEnum):
    """Lifecycle of a need; the allowed moves are in `bot.services.lifecycle`."""

    # Received by email with required fields missing: the firm was asked for them.
    AWAITING_INFO = "awaiting_info"
    SUBMITTED = "submitted"
    ROUTED = "routed"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    CLOSED_HELPED = "closed_helped"
    CLOSED_NOT_HELPED = "closed_not_helped"
    CANCELLED = "cancelled"


class ProcessedUpdate(SQLModel, table=True):
    """A Telegram update already handled: makes a redelivered `update_id` a no-op."""

    __tablename__ = "processed_update"
    # The retention pass forgets old update ids, oldest first.
    __table_args__ = (Index("ix_processed_update_at", "processed_at"),)

    update_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    processed_at: datetime = _ts()


class Consent(SQLModel, table=True):
    """A person's consent to the processing described in the /start notice."""

    __tablename__ = "consent"

    user_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    channel: str = Field(default="telegram", max_length=16)
    given_at: datetime = _ts()


class Conversation(SQLModel, table=True):
    """Where one chat stands in a form: step and answers, saved at every step."""

    __tablename__ = "conversation"

    chat_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    user_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    channel: str = Field(default="telegram", max_length=16)
    form: str = Field(default="intake", max_length=32)
    step: str = Field(max_length=32)
    answers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # After an edit from the summary, go back to the summary instead of the next field.
    return_to_summary: bool = False
    # Bumped at every save: a concurrent writer that read an older version loses.
    version: int = 1
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class NeedSequence(SQLModel, table=True):
    """Last reference number used per year (TI-2026-0042 is year 2026, number 42)."""

    __tablename__ = "need_sequence"

    year: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    last: int = 0


class Need(SQLModel, table=True):
    """A firm's need, as confirmed by the firm."""

    __tablename__ = "need"
    __table_args__ = (
        UniqueConstraint("reference", name="uq_need_reference"),
        Index("ix_need_user", "telegram_user_id"),
        # A territory's needs by status; with the creation time, its open needs at the end of
        # a period are counted in the index (statistics, digests, late acknowledgements).
        Index("ix_need_territory_status_created", "territory_id", "status", "created_at"),
        # A territory's needs of a period (statistics, digests): created, last updated.
        Index("ix_need_territory_created", "territory_id", "created_at"),
        Index("ix_need_territory_updated", "territory_id", "updated_at"),
        UniqueConstraint("reply_token", name="uq_need_reply_token"),
        # The follow-up's close-or-keep question: open needs by when they were last asked.
        Index("ix_need_stale_due", "status", "stale_asked_at", "created_at"),
        # The retention pass: needs not yet anonymised, oldest change first.
        Index("ix_need_retention", "anonymized_at", "updated_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=16)
    status: str = Field(default=NeedStatus.SUBMITTED.value, max_length=24)
    channel: str = Field(default="telegram", max_length=16)
    theme: str = Field(max_length=24)
    urgency: str = Field(max_length=16)
    # Personal or firm-identifying data: blanked by /supprimer (see services.privacy).
    firm_name: str | None = Field(default=None, max_length=200)
    siret: str | None = Field(default=None, max_length=14)
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    contact_method: str = Field(max_length=16)
    contact_value: str | None = Field(default=None, max_length=200)
    telegram_chat_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    telegram_user_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    # Geography is kept after erasure: it is not personal and feeds the territory's counts.
    # None only while a need received by email waits for its commune.
    commune_insee: str | None = Field(default=None, max_length=5)
    commune_name: str | None = Field(default=None, max_length=120)
    # relais+<token>@domain: replies to the need's emails come back to it (see handlers/mail).
    reply_token: str | None = Field(default=None, max_length=32)
    # Fields a need received by email still lacks ("commune", "theme").
    missing: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Public facts of the firm from the company directory (NAF, headcount band, artisan,
    # IDCC, OPCO, source and date of the lookup); None when the firm was not looked up.
    firm: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    epci_siren: str | None = Field(default=None, max_length=9)
    epci_name: str | None = Field(default=None, max_length=200)
    territory_id: str | None = Field(default=None, max_length=32)
    consent_at: datetime | None = _ts(nullable=True)
    # When the animator was last asked whether to close this long-open need.
    stale_asked_at: datetime | None = _ts(nullable=True)
    anonymized_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class NeedEvent(SQLModel, table=True):
    """One time-stamped status change of a need (delays and statistics come from these)."""

    __tablename__ = "need_event"
    # The period's changes (statistics, digests), and those since a period ended: read
    # from the index alone, down to the need (closings, animators' moves).
    __table_args__ = (Index("ix_need_event_at", "at", "to_status", "actor", "need_id"),
                      # The same for one territory: a territory's week reads its own rows,
                      # not the whole country's.
                      Index("ix_need_event_territory_at", "territory_id", "at", "to_status",
                            "actor", "need_id"))

    id: int | None = Field(default=None, primary_key=True)
    need_id: int = Field(foreign_key="need.id", index=True)
    from_status: str | None = Field(default=None, max_length=24)
    to_status: str = Field(max_length=24)
    # A role, never a person: firm | animator | partner:<partner id> | system.
    actor: str = Field(default="system", max_length=64)
    # Which animator ("telegram:<id>"), shown by name in the history; blanked by erasure.
    actor_ref: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=500)
    at: datetime = _ts()
    # A copy of the need's territory, kept equal to it (see `_territory_copies`).
    territory_id: str | None = Field(default=None, max_length=32)


class Outbox(SQLModel, table=True):
    """A message to deliver, written in the same transaction as the change that causes it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "delivered_at", "failed_at", "id"),
        # A recipient's pending messages: a new one waits while an older one is pending.
        Index("ix_outbox_recipient_pending", "recipient", "delivered_at", "failed_at", "id"),
        # The retention pass purges old messages, oldest first.
        Index("ix_outbox_created", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(default="telegram", max_length=16)
    # Telegram chat id as text, or an email address: one column for every channel.
    recipient: str = Field(max_length=320)
    kind: str = Field(default="send", max_length=16)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts()
    not_before: datetime = _ts()
    # Set by whoever is delivering the row; a stale claim (crash) can be taken over.
    claimed_until: datetime | None = _ts(nullable=True)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    delivered_at: datetime | None = _ts(nullable=True)
    failed_at: datetime | None = _ts(nullable=True)
    # When the animators were told this message is late (they are told once).
    late_alerted_at: datetime | None = _ts(nullable=True)


class KbQuery(SQLModel, table=True):
    """A question put to the knowledge base and what became of it (to improve the cards).

    The animators review the question text only; the chat it came from is kept so that the
    person's questions go when they ask to be forgotten (see services.privacy).
    """

    __tablename__ = "kb_query"
    __table_args__ = (Index("ix_kb_query_territory_asked", "territory_id", "asked_at"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(default="telegram", max_length=16)
    text: str = Field(sa_column=Column(Text, nullable=False))
    best_card_id: str | None = Field(default=None, max_length=64)
    score: float = 0.0
    # answered | uncertain | out_of_scope | rejected ("Ce n'est pas ça") | forwarded
    outcome: str = Field(max_length=16, index=True)
    # The card the person picked among uncertain suggestions, if any.
    chosen_card_id: str | None = Field(default=None, max_length=64)
    territory_id: str | None = Field(default=None, max_length=32)
    chat_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True,
                                                               index=True))
    asked_at: datetime = _ts()


class NeedRouting(SQLModel, table=True):
    """One partner chosen for a need, with why (the routing explanation) and its follow-up."""

    __tablename__ = "need_routing"
    __table_args__ = (UniqueConstraint("need_id", "partner_id", name="uq_routing_partner"),
                      # The period's acknowledgements (statistics, digests).
                      Index("ix_need_routing_acknowledged", "acknowledged_at", "need_id"),
                      Index("ix_need_routing_territory_ack", "territory_id",
                            "acknowledged_at", "need_id"),
                      # The follow-up pass reads only the routings due (see followup_at).
                      Index("ix_need_routing_followup", "followup_at"))

    id: int | None = Field(default=None, primary_key=True)
    need_id: int = Field(foreign_key="need.id", index=True)
    partner_id: str = Field(max_length=64)
    partner_kind: str = Field(max_length=32)
    partner_name: str = Field(max_length=200)
    partner_email: str = Field(max_length=320)
    # commune | epci | departement | region | territoire | manual (chosen by an animator)
    level: str = Field(max_length=16)
    reason: str = Field(max_length=500)
    # routed | acknowledged | removed
    status: str = Field(default="routed", max_length=16)
    ack_days: int = 2
    routed_at: datetime = _ts()
    acknowledged_at: datetime | None = _ts(nullable=True)
    # Follow-up: the partner's reminder email, then the animator's alert (each once).
    reminded_at: datetime | None = _ts(nullable=True)
    escalated_at: datetime | None = _ts(nullable=True)
    # When the follow-up pass must look at this routing next (its relance or alert falls
    # due); None once nothing is left to do. A new routing still waiting for its partner is
    # looked at on the next pass, which sets the real date (working days need the territory's
    # calendar): rows inserted by any means are followed up.
    followup_at: datetime | None = Field(default=None, sa_column=Column(
        UTCDateTime(), nullable=True, default=_followup_default))
    # The firm on Telegram asked once whether this partner may write to it there:
    # asked | accepted | refused (None: never asked). Accepted, the partner's emails in
    # the need's thread reach the firm directly (see services.relay).
    relay_direct: str | None = Field(default=None, max_length=16)
    relay_direct_at: datetime | None = _ts(nullable=True)
    # A copy of the need's territory, kept equal to it (see `_territory_copies`).
    territory_id: str | None = Field(default=None, max_length=32)


class FirmLookup(SQLModel, table=True):
    """A cached answer of the public firm directory (API Recherche d'entreprises)."""

    __tablename__ = "firm_lookup"

    # "siret:<14 digits>" or "siren:<9 digits>".
    key: str = Field(primary_key=True, max_length=24)
    # False caches a "not found" too, so an unknown number does not hit the API on every retry.
    found: bool = False
    # FirmRecord as JSON; None when not found.
    payload: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    fetched_at: datetime = _ts()


class MeetingStatus(StrEnum):
    """Where a meeting stands: proposed to the firm, confirmed, declined or cancelled."""

    PROPOSED = "proposed"
    CONFIRMED = "confirmed"
    # The firm asked for another slot: the animator moves it (or cancels).
    OTHER_SLOT = "other_slot"
    DECLINED = "declined"
    CANCELLED = "cancelled"


class Meeting(SQLModel, table=True):
    """A meeting about a need, proposed by an animator; times in UTC."""

    __tablename__ = "meeting"
    __table_args__ = (Index("ix_meeting_territory_start", "territory_id", "start_at"),)

    id: int | None = Field(default=None, primary_key=True)
    # The iCalendar UID: the same for every version of the meeting (clients update in place).
    uid: str = Field(max_length=120, unique=True)
    need_id: int = Field(foreign_key="need.id", index=True)
    territory_id: str | None = Field(default=None, max_length=32)
    start_at: datetime = _ts()
    end_at: datetime = _ts()
    place: str | None = Field(default=None, max_length=300)
    video_url: str | None = Field(default=None, max_length=500)
    status: str = Field(default=MeetingStatus.PROPOSED.value, max_length=16)
    # iCalendar SEQUENCE: +1 on every reschedule and on cancel.
    sequence: int = 0
    organizer_name: str = Field(max_length=120)
    organizer_email: str | None = Field(default=None, max_length=320)
    organizer_telegram_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, nullable=True)
    )
    # Whether the firm is invited (Telegram), and its last answer.
    firm_invited: bool = True
    firm_chat_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    firm_note: str | None = Field(default=None, max_length=500)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class MeetingAttendee(SQLModel, table=True):
    """A partner or an animator invited by email to a meeting."""

    __tablename__ = "meeting_attendee"
    __table_args__ = (UniqueConstraint("meeting_id", "email", name="uq_attendee_email"),)

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    # partner | animator
    kind: str = Field(max_length=16)
    partner_id: str | None = Field(default=None, max_length=64)
    name: str = Field(max_length=200)
    email: str = Field(max_length=320)


class Reminder(SQLModel, table=True):
    """One reminder of one version of a meeting: the source of truth the scheduler reads.

    Claimed by an atomic ``pending → sent`` update in the transaction that writes its
    messages to the outbox, so it is sent once across crashes and instances.
    """

    __tablename__ = "reminder"
    __table_args__ = (
        Index("ix_reminder_due", "status", "due_at"),
        UniqueConstraint("meeting_id", "sequence", "offset_minutes", name="uq_reminder_slot"),
    )

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    # The meeting's SEQUENCE when the reminder was planned: a moved meeting gets new rows.
    sequence: int = 0
    offset_minutes: int
    due_at: datetime = _ts()
    # pending | sent | skipped (fell due after the meeting) | cancelled (moved or cancelled)
    status: str = Field(default="pending", max_length=12)
    done_at: datetime | None = _ts(nullable=True)
    note: str | None = Field(default=None, max_length=200)


class ChatDraft(SQLModel, table=True):
    """A multi-step action in progress in a chat (an animator proposing a meeting...)."""

    __tablename__ = "chat_draft"

    chat_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    user_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str = Field(max_length=16)
    step: str = Field(max_length=24)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = _ts()


class InboundEmail(SQLModel, table=True):
    """An email read from the bot's mailbox, recorded before it is flagged on the server.

    The unique Message-ID makes a re-read (crash between recording and flagging) a no-op.
    """

    __tablename__ = "inbound_email"
    __table_args__ = (UniqueConstraint("message_id", name="uq_inbound_message_id"),
                      Index("ix_inbound_status", "status"),
                      # The retention pass drops raw messages: only rows still holding one.
                      Index("ix_inbound_raw_kept", "received_at",
                            sqlite_where=text("raw IS NOT NULL"),
                            postgresql_where=text("raw IS NOT NULL")))

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(max_length=300)
    from_addr: str = Field(default="", max_length=320)
    subject: str = Field(default="", max_length=300)
    # Raw message, kept for 90 days (retention) to reprocess or inspect.
    raw: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    # new | processed | ignored | failed
    status: str = Field(default="new", max_length=12)
    # firm_new | firm_reply | partner_reply | animator_reply | automatic | own | ...
    kind: str | None = Field(default=None, max_length=24)
    note: str | None = Field(default=None, max_length=300)
    need_id: int | None = Field(default=None, index=True)
    received_at: datetime = _ts()
    processed_at: datetime | None = _ts(nullable=True)


class NeedMessage(SQLModel, table=True):
    """A message in a need's history: an email received, or a message relayed between people.

    Relayed messages (`channel` "telegram", or an email sent on behalf of the chef de
    projet) record who wrote (`author_kind`, `author`), to whom (`to_kind`), and the
    attachment's description; the file itself stays on Telegram (its id).
    """

    __tablename__ = "need_message"
    __table_args__ = (Index("ix_need_message_sender_at", "sender_user_id", "at"),
                      # The period's messages (first response times).
                      Index("ix_need_message_at", "at"),
                      # A territory's messages of a period (first response times).
                      Index("ix_need_message_territory_at", "territory_id", "at",
                            "author_kind", "to_kind", "need_id"))

    id: int | None = Field(default=None, primary_key=True)
    need_id: int = Field(foreign_key="need.id", index=True)
    inbound_id: int | None = Field(default=None)
    # firm | partner | animator
    author_kind: str = Field(max_length=16)
    author: str = Field(max_length=320)
    text: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime = _ts()
    # How it travelled: "email" (received by the mailbox) or "telegram" (relayed).
    channel: str = Field(default="email", max_length=16)
    # Who it was for: firm | animator | partner (None for a received email).
    to_kind: str | None = Field(default=None, max_length=16)
    # The Telegram user who wrote it (flood limits, erasure); None for email.
    sender_user_id: int | None = Field(default=None,
                                       sa_column=Column(BigInteger, nullable=True))
    # {kind, file_id, name, size, mime} of a relayed photo or document; for an email,
    # {kind: "email", name, files: [[name, size, mime]]} of the files it carried.
    attachment: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # The email's Message-ID (received or sent): the next email of the thread answers it.
    message_id: str | None = Field(default=None, max_length=300)
    # For an email received: whether our mail server vouched for its sender (None for a
    # message relayed from Telegram, whose sender Telegram identifies).
    verified: bool | None = Field(default=None)
    # A copy of the need's territory, kept equal to it (see `_territory_copies`).
    territory_id: str | None = Field(default=None, max_length=32)


class MailEraseConfirm(SQLModel, table=True):
    """An erasure asked by email, waiting for the reply that confirms it.

    The confirmation goes to the address the need has on file, with a one-time reply
    address ``relais+<token>@…``; only a reply to it, from that address, erases. The token
    is kept as its SHA-256 only; nothing personal is stored here.
    """

    __tablename__ = "mail_erase_confirm"
    __table_args__ = (UniqueConstraint("token_hash", name="uq_mail_erase_confirm_token"),)

    id: int | None = Field(default=None, primary_key=True)
    need_id: int = Field(foreign_key="need.id", index=True)
    token_hash: str = Field(max_length=64)
    created_at: datetime = _ts()
    expires_at: datetime = _ts()
    used_at: datetime | None = _ts(nullable=True)


class NeedAttachment(SQLModel, table=True):
    """A file sent by email with a need: kept as bytes, listed, never executed or rendered."""

    __tablename__ = "need_attachment"

    id: int | None = Field(default=None, primary_key=True)
    need_id: int = Field(foreign_key="need.id", index=True)
    inbound_id: int | None = Field(default=None)
    filename: str = Field(max_length=120)
    content_type: str = Field(max_length=100)
    size: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    at: datetime = _ts()


class Satisfaction(SQLModel, table=True):
    """The firm's rating of the help it got, asked once per need closed as helped."""

    __tablename__ = "satisfaction"
    __table_args__ = (UniqueConstraint("need_id", name="uq_satisfaction_need"),
                      Index("ix_satisfaction_territory_answered", "territory_id",
                            "answered_at"))

    id: int | None = Field(default=None, primary_key=True)
    need_id: int = Field(foreign_key="need.id")
    territory_id: str | None = Field(default=None, max_length=32)
    score: int | None = None
    comment: str | None = Field(default=None, max_length=1000)
    asked_at: datetime = _ts()
    answered_at: datetime | None = _ts(nullable=True)


class DigestRun(SQLModel, table=True):
    """One periodic job's run for one period: inserting the row claims it (once per period)."""

    __tablename__ = "digest_run"
    __table_args__ = (UniqueConstraint("kind", "period", name="uq_digest_period"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    period: str = Field(max_length=64)
    ran_at: datetime = _ts()


class RadarMark(SQLModel, table=True):
    """What became of a mutualisation group: dismissed, or proposed to its firms."""

    __tablename__ = "radar_mark"
    __table_args__ = (UniqueConstraint("territory_id", "group_key", name="uq_radar_group"),)

    id: int | None = Field(default=None, primary_key=True)
    territory_id: str = Field(max_length=32)
    group_key: str = Field(max_length=32)
    # dismissed | proposed
    status: str = Field(max_length=12)
    at: datetime = _ts()


class RadarApart(SQLModel, table=True):
    """A need in a set of needs the animator separated: no group holds two of a set again.

    A need taken out of a group makes one set with each other member
    (``out-<group key>-<other member>``); a group set aside is one set of all its members
    (``aside-<group key>``): its rows grow with the group, not with its pairs. Sets of two
    converted from migration 0016's pairs are ``pair-<a>-<b>``. The group key lets « Annuler »
    and « Rétablir » find an action's sets again. Ids only, no text: nothing to erase.
    """

    __tablename__ = "radar_apart"
    __table_args__ = (UniqueConstraint("set_key", "need_id", name="uq_radar_apart_sets"),
                      Index("ix_radar_apart_territory", "territory_id"))

    id: int | None = Field(default=None, primary_key=True)
    territory_id: str = Field(max_length=32)
    set_key: str = Field(max_length=40)
    need_id: int = Field(foreign_key="need.id")
    at: datetime = _ts()


class RadarConsent(SQLModel, table=True):
    """A firm's answer: may the other firms of the group know who it is?"""

    __tablename__ = "radar_consent"
    __table_args__ = (UniqueConstraint("need_id", "group_key", name="uq_radar_consent"),)

    id: int | None = Field(default=None, primary_key=True)
    need_id: int = Field(foreign_key="need.id")
    group_key: str = Field(max_length=32)
    # asked | yes | no
    answer: str = Field(default="asked", max_length=8)
    at: datetime = _ts()


class DeadLetter(SQLModel, table=True):
    """An update set aside: the library could not read it, or its id is out of range.

    Kept so that a person can see what was skipped and why, without the update's content
    (names, typed text): only its id as received, its chat and its top-level fields.
    """

    __tablename__ = "dead_letter"
    __table_args__ = (Index("ix_dead_letter_received", "received_at"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=12)  # webhook | polling
    # As received: an out-of-range id does not fit an integer column.
    update_id: str = Field(max_length=40)
    chat_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    fields: str = Field(default="", max_length=300)
    reason: str = Field(max_length=300)
    received_at: datetime = _ts()


class PendingUpdate(SQLModel, table=True):
    """A Telegram update received by webhook: stored before Telegram gets its 200 OK.

    Any instance may then handle it: claimed with a lease, so an instance that dies in the
    middle leaves it to another one after the lease.
    """

    __tablename__ = "pending_update"
    __table_args__ = (Index("ix_pending_update_todo", "done_at", "claimed_until"),
                      Index("ix_pending_update_chat", "chat_id", "update_id"))

    update_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    # The chat the update belongs to: one chat's updates are handled in update_id order,
    # whichever instance received them.
    chat_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    received_at: datetime = _ts()
    claimed_until: datetime | None = _ts(nullable=True)
    done_at: datetime | None = _ts(nullable=True)


# Marks a webhook update done and gives the next one of its chat still to do (PostgreSQL):
# one round trip in the turn's transaction instead of two statements; `first` is False when
# the update was done already (handled before: the turn is a duplicate). Two statements they
# stay, in one VOLATILE function: under READ COMMITTED the look-up takes a fresh snapshot,
# so it sees an update whose store the UPDATE had to wait for (see `_PG_STORE` in
# bot/webhook.py). Created with the table, and by migration 0014 on existing databases.
DONE_AND_NEXT_FUNCTION = """
CREATE OR REPLACE FUNCTION relais_done_and_next(done_id bigint, chat bigint, done timestamptz,
                                                OUT first boolean, OUT following bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    UPDATE pending_update SET done_at = done, payload = '{}'
    WHERE update_id = done_id AND done_at IS NULL;
    first := FOUND;
    IF chat IS NOT NULL THEN
        SELECT p.update_id INTO following FROM pending_update p
        WHERE p.chat_id = chat AND p.update_id > done_id AND p.done_at IS NULL
        ORDER BY p.update_id LIMIT 1;
    END IF;
END
$$
"""
event.listen(PendingUpdate.__table__, "after_create",  # type: ignore[attr-defined]
             DDL(DONE_AND_NEXT_FUNCTION).execute_if(dialect="postgresql"))


class AnimatorBinding(SQLModel, table=True):
    """A Telegram account bound to a configured animator by their invitation link.

    The territory files stay the configuration; a binding adds the account the animator
    opened the link with (see `bot.services.animators`). One account per animator: opening
    the link again from another account moves the binding.
    """

    __tablename__ = "animator_binding"

    territory_id: str = Field(primary_key=True, max_length=32)
    # As written in the territory file, lower case.
    email: str = Field(primary_key=True, max_length=320)
    telegram_user_id: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    bound_at: datetime = _ts()


class HeldMessage(SQLModel, table=True):
    """A message for an animator that Telegram could not take: shown after their /start.

    It went to the animator by email when it was held; `shown_at` is set when it is shown
    on Telegram. `source` names what it is a copy of (an outbox row, a need's card), so that
    holding the same message twice keeps one.
    """

    __tablename__ = "held_message"
    __table_args__ = (UniqueConstraint("email", "source", name="uq_held_message_source"),
                      Index("ix_held_message_waiting", "email", "shown_at"),
                      Index("ix_held_message_created", "created_at"))

    id: int | None = Field(default=None, primary_key=True)
    territory_id: str = Field(max_length=32)
    email: str = Field(max_length=320)
    source: str = Field(max_length=64)
    # The need the message is about (a card), when known.
    need_id: int | None = Field(default=None, index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts()
    shown_at: datetime | None = _ts(nullable=True)


@event.listens_for(Session, "before_flush")
def _territory_copies(session: Session, _context: object, _instances: object) -> None:
    """Keep `territory_id` of events, routings and messages equal to their need's.

    New rows take it from their need; a need whose territory changes (found later from the
    firm's commune) carries its rows along. Every service that writes them goes through
    here, so none has to remember.
    """
    with session.no_autoflush:
        for obj in session.new:
            if isinstance(obj, NeedEvent | NeedRouting | NeedMessage) \
                    and obj.territory_id is None \
                    and obj.need_id is not None:
                need = session.get(Need, obj.need_id)
                obj.territory_id = need.territory_id if need is not None else None
        for obj in session.dirty:
            if isinstance(obj, Need) and obj.id is not None \
                    and inspect(obj).attrs.territory_id.history.has_changes():
                for table in (NeedEvent, NeedRouting, NeedMessage):
                    session.execute(update(table).where(
                        table.need_id == obj.id).values(  # type: ignore[arg-type]
                        territory_id=obj.territory_id))
