"""A person's data: export it, erase it everywhere, and the daily retention pass.

`erase_person` is the one erasure, whichever way the person asked: `/supprimer` on
Telegram, "supprimer mes données" by email, or `relais privacy erase`. It keeps what the
territory counts (a need's theme, commune, EPCI, channel, dates and statuses; ratings
without their comments; routing rows) and removes, table by table, whatever identifies
the person or the firm:

* needs: name, SIRET, description, contact, chat and user ids, firm facts;
* what hangs off their needs: messages and attachments, satisfaction comments, meeting
  notes and the firm's chat, radar consents, history notes, inbound emails (raw, subject),
  erasure confirmations pending by email;
* what the person left elsewhere: consent, conversation and drafts, knowledge-base
  questions, cached company lookups of their SIRET/SIREN, emails they sent;
* messages: outbox rows addressed to them or about their needs (delivered or not), and
  webhook updates of their chat. Other rows that quote them (an animator's card, a digest
  listing several firms) are deleted once delivered, and rewritten without their name,
  number or text while still waiting, so other people's messages still leave;
* history references that name them (an erased animator's `need_event.actor_ref`);
* for an animator: the Telegram account bound by their invitation, and the messages kept
  for them; messages kept for any animator about their needs, or that quote them.

Emails are compared case-insensitively. Erasing again finds only what is left (an
erasure's own confirmation message, for instance) and reports zero when nothing is.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, and_, cast, delete, func, or_, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from bot.catalogue import label
from storage.models import (
    AnimatorBinding,
    ChatDraft,
    Consent,
    Conversation,
    DeadLetter,
    FirmLookup,
    HeldMessage,
    InboundEmail,
    KbQuery,
    MailEraseConfirm,
    Meeting,
    MeetingAttendee,
    Need,
    NeedAttachment,
    NeedEvent,
    NeedMessage,
    Outbox,
    PendingUpdate,
    ProcessedUpdate,
    RadarConsent,
    Satisfaction,
)

__all__ = ["LEFTOVER_MARGIN", "PURGE_SLICE", "RETENTION_SLICE", "Erasure", "RetentionPass",
           "erase_needs", "erase_person", "export_person", "retention_pass"]

# Shorter words would match other people's text.
MIN_MARK = 3
# A description is recognised by its beginning: messages cut long ones.
DESCRIPTION_MARK = 60
# Payload keys holding base64 data: never searched, never rewritten.
_BINARY_KEYS = frozenset({"content", "photo", "ics"})
_PHONE = re.compile(r"\+?[\d .\-]{8,}")
_ERASED_ID = "erased:"
# Emails about a need from people who are not the firm: their sender address is theirs.
_THIRD_PARTY_KINDS = frozenset({"partner_reply", "animator_reply"})


@dataclass(slots=True)
class Erasure:
    """What an erasure did: needs anonymised, and other rows deleted or blanked."""

    needs: int = 0
    rows: int = 0


@dataclass(slots=True)
class _Marks:
    """What identifies a person in free text: names, numbers, contact, description."""

    # (text, whether it is only the beginning of the text to find)
    items: set[tuple[str, bool]] = field(default_factory=set)
    # Public references of their needs: a delivered message naming one is about them.
    references: set[str] = field(default_factory=set)

    def add(self, value: object, *, prefix_of: int | None = None) -> None:
        if value is None:
            return
        text = " ".join(str(value).split())
        if len(text) < MIN_MARK:
            return
        self.items.add((text, False))
        if prefix_of is not None and len(text) > prefix_of:
            # Messages that cut it keep its beginning.
            self.items.add((text[:prefix_of], True))
        if _PHONE.fullmatch(text):
            digits = re.sub(r"\D", "", text)
            if len(digits) >= 8:
                self.items.add((digits, False))

    def add_firm(self, firm: dict[str, Any] | None) -> None:
        for key in ("name", "siren", "siret"):
            self.add((firm or {}).get(key))

    def _forms(self, *, with_references: bool) -> list[tuple[str, bool]]:
        forms: set[tuple[str, bool]] = set()
        for text, prefix in self.items:
            # As typed, and as the Telegram, Jinja and html.escape renderings write it.
            for form in (text, html.escape(text, quote=False), html.escape(text),
                         html.escape(text).replace("&#x27;", "&#39;")):
                forms.add((form, prefix))
        if with_references:
            forms |= {(reference, False) for reference in self.references}
        return sorted(forms, key=lambda f: (-len(f[0]), f))

    def pattern(self, *, with_references: bool) -> re.Pattern[str] | None:
        """One case-insensitive regex for every form, on word boundaries."""
        parts = []
        for form, prefix in self._forms(with_references=with_references):
            body = r"\s+".join(re.escape(word) for word in form.split())
            parts.append(r"(?<!\w)" + body + ("" if prefix else r"(?!\w)"))
        return re.compile("|".join(parts), re.IGNORECASE) if parts else None

    def like(self, column: Any, *, json_text: bool) -> list[ColumnElement[bool]]:
        """SQL pre-filters (a superset of `pattern`): LIKE over the column's lowercase text.

        Only plain letters and digits are matched: anything else is a wildcard, since JSON
        escapes accents and quotes, and SQLite's lower() folds ASCII only.
        """
        target = func.lower(cast(column, Text)) if json_text else func.lower(column)
        patterns = {re.sub(r"[^a-z0-9]+", "%", f"%{form.lower()}%")
                    for form, _prefix in self._forms(with_references=True)}
        return [target.like(p) for p in sorted(patterns)]


def erase_person(session: Session, *, telegram_id: int | None = None,
                 email: str | None = None, now: datetime) -> Erasure:
    """Erase a person everywhere (Telegram id and/or email); see the module docstring."""
    chats = {telegram_id} if telegram_id is not None else set()
    emails = {email.strip().lower()} if email and email.strip() else set()
    if not chats and not emails:
        return Erasure()
    needs = _needs_of(session, chats, emails)
    # A Telegram account that gave this address as its contact is the same person: its
    # consent, forms, questions and other needs go too. Not the other way round: an address
    # typed on Telegram proves nothing about who reads it, so a /supprimer never erases
    # what an email address sent on its own.
    linked = {n.telegram_user_id for n in needs if n.telegram_user_id is not None
              and (n.contact_value or "").lower() in emails} - chats
    if linked:
        chats |= linked
        needs = _needs_of(session, chats, emails)
    conversations = (list(session.exec(select(Conversation).where(or_(
        col(Conversation.chat_id).in_(chats), col(Conversation.user_id).in_(chats)))))
        if chats else [])
    marks = _Marks()
    for address in emails:
        marks.add(address)
    for need in needs:
        marks.add(need.firm_name)
        marks.add(need.siret)
        marks.add(need.siret[:9] if need.siret else None)
        marks.add(need.contact_value)
        marks.add(need.description, prefix_of=DESCRIPTION_MARK)
        marks.add_firm(need.firm)
        marks.references.add(need.reference)
    for conversation in conversations:
        answers = conversation.answers or {}
        for key in ("company_name", "siret", "siren", "contact_value"):
            marks.add(answers.get(key))
        marks.add(answers.get("description"), prefix_of=DESCRIPTION_MARK)
        marks.add_firm(answers.get("firm"))
    need_ids = {n.id for n in needs if n.id is not None}
    done = Erasure(needs=len(needs))
    done.rows += _delete_lookups(session, needs, conversations)
    done.rows += _erase_need_rows(session, sorted(need_ids))
    _blank(needs, now)
    done.rows += _erase_own_rows(session, chats, emails)
    if emails:
        done.rows += _blank_inbound(
            session, func.lower(col(InboundEmail.from_addr)).in_(emails), senders=emails)
    done.rows += _erase_meetings(session, chats, emails, need_ids, marks)
    done.rows += _erase_questions(session, chats, marks)
    done.rows += _erase_outbox(session, chats, emails, need_ids, marks)
    done.rows += _erase_held(session, chats, emails, need_ids, marks)
    done.rows += _erase_updates(session, chats, marks)
    return done


def erase_needs(session: Session, needs: Sequence[Need], *, now: datetime) -> None:
    """Blank what identifies the person in these needs; keep the anonymous counts."""
    _erase_need_rows(session, [n.id for n in needs if n.id is not None])
    _blank(needs, now)


def _needs_of(session: Session, chats: set[int], emails: set[str]) -> list[Need]:
    conditions: list[ColumnElement[bool]] = []
    if chats:
        conditions += [col(Need.telegram_user_id).in_(chats),
                       col(Need.telegram_chat_id).in_(chats)]
    if emails:
        conditions.append(func.lower(col(Need.contact_value)).in_(emails))
    if not conditions:
        return []
    return list(session.exec(select(Need).where(or_(*conditions)).order_by(col(Need.id))))


def _blank(needs: Iterable[Need], now: datetime) -> None:
    for need in needs:
        need.firm_name = need.siret = need.description = need.contact_value = None
        need.firm = None
        need.telegram_chat_id = need.telegram_user_id = None
        need.anonymized_at = need.updated_at = now


def _count(result: Any) -> int:
    return int(result.rowcount or 0)


def _erase_need_rows(session: Session, need_ids: Sequence[int] | Any) -> int:
    """What hangs off these needs (a list of ids, or a subquery of ids)."""
    if isinstance(need_ids, Sequence) and not need_ids:
        return 0
    rows = 0
    for model in (NeedMessage, NeedAttachment, RadarConsent, MailEraseConfirm):
        rows += _count(session.execute(delete(model).where(col(model.need_id).in_(need_ids))))
    rows += _count(session.execute(
        update(Satisfaction).where(col(Satisfaction.need_id).in_(need_ids),
                                   col(Satisfaction.comment).is_not(None))
        .values(comment=None)))
    rows += _count(session.execute(
        update(NeedEvent).where(col(NeedEvent.need_id).in_(need_ids),
                                col(NeedEvent.note).is_not(None))
        .values(note=None)))
    rows += _count(session.execute(
        update(Meeting).where(col(Meeting.need_id).in_(need_ids),
                              or_(col(Meeting.firm_note).is_not(None),
                                  col(Meeting.firm_chat_id).is_not(None)))
        .values(firm_note=None, firm_chat_id=None)))
    return rows + _blank_inbound(session, col(InboundEmail.need_id).in_(need_ids))


def _delete_lookups(session: Session, needs: Sequence[Need],
                    conversations: Sequence[Conversation]) -> int:
    """The directory's cached answers for their numbers (a sole trader's SIRET is personal)."""
    numbers: set[str] = set()
    for need in needs:
        numbers |= {need.siret or "", *(str((need.firm or {}).get(k) or "")
                                         for k in ("siren", "siret"))}
    for conversation in conversations:
        answers = conversation.answers or {}
        numbers |= {str(answers.get(k) or "") for k in ("siret", "siren")}
        numbers |= {str((answers.get("firm") or {}).get(k) or "") for k in ("siren", "siret")}
    keys = set()
    for number in filter(None, numbers):
        keys |= {f"siret:{number}", f"siren:{number[:9]}"}
    if not keys:
        return 0
    return _count(session.execute(delete(FirmLookup).where(col(FirmLookup.key).in_(keys))))


def _erase_own_rows(session: Session, chats: set[int], emails: set[str]) -> int:
    """Consent, conversation, drafts, and history references naming them."""
    rows = 0
    if chats:
        rows += _count(session.execute(delete(Conversation).where(or_(
            col(Conversation.chat_id).in_(chats), col(Conversation.user_id).in_(chats)))))
        rows += _count(session.execute(delete(ChatDraft).where(or_(
            col(ChatDraft.chat_id).in_(chats), col(ChatDraft.user_id).in_(chats)))))
        rows += _count(session.execute(delete(Consent).where(col(Consent.user_id).in_(chats))))
    references = {f"telegram:{c}" for c in chats} | {f"email:{e}" for e in emails}
    rows += _count(session.execute(
        update(NeedEvent).where(col(NeedEvent.actor_ref).in_(references))
        .values(actor_ref=None)))
    return rows


def _blank_inbound(session: Session, where: ColumnElement[bool], *,
                   senders: set[str] | None = None) -> int:
    """Blank received emails: raw message, subject, note; the Message-ID becomes a hash.

    The hash still makes a re-read of the same message a no-op. The sender's address goes
    too, unless it is a partner's or an animator's reply about the need.
    """
    changed = [col(InboundEmail.raw).is_not(None), col(InboundEmail.subject) != "",
               col(InboundEmail.note).is_not(None),
               ~col(InboundEmail.message_id).startswith(_ERASED_ID)]
    if senders:
        changed.append(func.lower(col(InboundEmail.from_addr)).in_(senders))
    count = 0
    for row in session.exec(select(InboundEmail).where(where, or_(*changed))):
        row.raw, row.subject, row.note = None, "", None
        if not row.message_id.startswith(_ERASED_ID):
            row.message_id = _ERASED_ID + hashlib.sha256(row.message_id.encode()).hexdigest()
        if row.kind not in _THIRD_PARTY_KINDS or row.from_addr.lower() in (senders or ()):
            row.from_addr = ""
        session.add(row)
        count += 1
    return count


def _erase_meetings(session: Session, chats: set[int], emails: set[str], need_ids: set[int],
                    marks: _Marks) -> int:
    """The firm's place in meetings, a place that names it; them as organiser or attendee."""
    rows = 0
    if chats:
        rows += _count(session.execute(
            update(Meeting).where(col(Meeting.firm_chat_id).in_(chats))
            .values(firm_chat_id=None, firm_note=None)))
        rows += _count(session.execute(
            update(Meeting).where(col(Meeting.organizer_telegram_id).in_(chats))
            .values(organizer_telegram_id=None, organizer_name="")))
    if emails:
        rows += _count(session.execute(
            update(Meeting).where(func.lower(col(Meeting.organizer_email)).in_(emails))
            .values(organizer_email=None, organizer_name="")))
        rows += _count(session.execute(delete(MeetingAttendee).where(
            func.lower(col(MeetingAttendee.email)).in_(emails))))
    pattern = marks.pattern(with_references=False)
    if need_ids and pattern is not None:
        for meeting in session.exec(select(Meeting).where(col(Meeting.need_id).in_(need_ids),
                                                          col(Meeting.place).is_not(None))):
            if pattern.search(meeting.place or ""):
                meeting.place = None
                session.add(meeting)
                rows += 1
    return rows


def _erase_questions(session: Session, chats: set[int], marks: _Marks) -> int:
    """Their questions to the knowledge base; a question from an unknown chat that names them.

    Questions of other known chats stay: a firm whose name is a common word must not take
    other people's questions with it.
    """
    conditions: list[ColumnElement[bool]] = []
    if chats:
        conditions.append(col(KbQuery.chat_id).in_(chats))
    likes = marks.like(col(KbQuery.text), json_text=False)
    if likes:
        conditions.append(and_(col(KbQuery.chat_id).is_(None), or_(*likes)))
    if not conditions:
        return 0
    pattern = marks.pattern(with_references=False)
    rows = 0
    for row in session.exec(select(KbQuery).where(or_(*conditions))):
        if row.chat_id in chats or (row.chat_id is None and pattern is not None
                                    and pattern.search(row.text)):
            session.delete(row)
            rows += 1
    return rows


def _erase_outbox(session: Session, chats: set[int], emails: set[str], need_ids: set[int],
                  marks: _Marks) -> int:
    """Messages to them or about their needs go; others that quote them are cleaned."""
    recipients = {str(c) for c in chats}
    conditions: list[ColumnElement[bool]] = []
    if recipients:
        conditions.append(col(Outbox.recipient).in_(recipients))
    if emails:
        conditions.append(func.lower(col(Outbox.recipient)).in_(emails))
    if need_ids:
        conditions.append(col(Outbox.payload)["need_id"].as_integer().in_(need_ids))
    conditions += marks.like(col(Outbox.payload), json_text=True)
    if not conditions:
        return 0
    mentions = marks.pattern(with_references=True)
    quoted = marks.pattern(with_references=False)
    rows = 0
    for row in session.exec(select(Outbox).where(or_(*conditions))):
        theirs = row.recipient in recipients or row.recipient.lower() in emails
        about = row.payload.get("need_id") in need_ids
        finished = row.delivered_at is not None or row.failed_at is not None
        if theirs or about or (finished and _mentions(row.payload, mentions)):
            session.delete(row)
            rows += 1
        elif not finished and quoted is not None:
            cleaned = _redact(row.payload, quoted)
            if cleaned != row.payload:
                row.payload = cleaned
                session.add(row)
                rows += 1
    return rows


def _erase_held(session: Session, chats: set[int], emails: set[str], need_ids: set[int],
                marks: _Marks) -> int:
    """An animator's binding and kept messages; kept messages about their needs or naming them.

    A kept message is a copy of one already emailed: it goes rather than being rewritten.
    """
    rows = 0
    if chats:
        # The addresses of the animators these accounts are: their kept messages go too.
        emails = emails | set(session.exec(select(AnimatorBinding.email).where(
            col(AnimatorBinding.telegram_user_id).in_(chats))).all())
        rows += _count(session.execute(delete(AnimatorBinding).where(
            col(AnimatorBinding.telegram_user_id).in_(chats))))
    if emails:
        rows += _count(session.execute(delete(AnimatorBinding).where(
            col(AnimatorBinding.email).in_(emails))))
    conditions: list[ColumnElement[bool]] = []
    if emails:
        conditions.append(col(HeldMessage.email).in_(emails))
    if need_ids:
        conditions.append(col(HeldMessage.need_id).in_(need_ids))
    conditions += marks.like(col(HeldMessage.payload), json_text=True)
    if not conditions:
        return rows
    mentions = marks.pattern(with_references=True)
    for row in session.exec(select(HeldMessage).where(or_(*conditions))):
        if (row.email in emails or row.need_id in need_ids
                or _mentions(row.payload, mentions)):
            session.delete(row)
            rows += 1
    return rows


def _erase_updates(session: Session, chats: set[int], marks: _Marks) -> int:
    """Webhook updates: theirs go (an unhandled one is kept empty); others are cleaned."""
    # Updates set aside (dead letters) keep no content, only their chat: theirs go.
    dead = session.execute(delete(DeadLetter).where(col(DeadLetter.chat_id).in_(chats))) \
        if chats else None
    conditions: list[ColumnElement[bool]] = []
    if chats:
        conditions.append(col(PendingUpdate.chat_id).in_(chats))
    conditions += marks.like(col(PendingUpdate.payload), json_text=True)
    if not conditions:
        return 0
    mentions = marks.pattern(with_references=True)
    quoted = marks.pattern(with_references=False)
    rows = _count(dead) if dead is not None else 0
    for row in session.exec(select(PendingUpdate).where(or_(*conditions))):
        if row.done_at is not None and (row.chat_id in chats
                                        or _mentions(row.payload, mentions)):
            session.delete(row)
            rows += 1
        elif row.chat_id in chats:
            # Still to be handled (it may be this very /supprimer): an update with nothing
            # in it and no chat, so whoever handles it does nothing and marks it done.
            row.payload, row.chat_id = {"update_id": row.update_id}, None
            session.add(row)
            rows += 1
        elif quoted is not None:
            cleaned = _redact(row.payload, quoted)
            if cleaned != row.payload:
                row.payload = cleaned
                session.add(row)
                rows += 1
    return rows


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in _BINARY_KEYS:
                yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _mentions(payload: Any, pattern: re.Pattern[str] | None) -> bool:
    return pattern is not None and any(pattern.search(s) for s in _strings(payload))


def _redact(value: Any, pattern: re.Pattern[str]) -> Any:
    """The same JSON with every mention replaced by a neutral mark."""
    if isinstance(value, str):
        return pattern.sub(label("common.erased_mark"), value)
    if isinstance(value, dict):
        return {k: (v if k in _BINARY_KEYS else _redact(v, pattern)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(item, pattern) for item in value]
    return value


def export_person(session: Session, *, telegram_id: int | None = None,
                  email: str | None = None) -> dict[str, Any]:
    """Everything stored about a person, as JSON-ready data (right of access)."""
    chats = {telegram_id} if telegram_id is not None else set()
    address = email.strip().lower() if email and email.strip() else None
    needs = _needs_of(session, chats, {address} if address else set())
    consent = session.get(Consent, telegram_id) if telegram_id is not None else None
    result: dict[str, Any] = {
        "telegram_id": telegram_id,
        "email": address,
        "consent": consent.given_at.isoformat() if consent else None,
        "needs": [],
    }
    for need in needs:
        data = need.model_dump(mode="json", exclude={"reply_token"})
        data["messages"] = [
            {"at": m.at.isoformat(), "from": m.author_kind, "text": m.text}
            for m in session.exec(select(NeedMessage).where(NeedMessage.need_id == need.id))]
        data["attachments"] = [
            {"filename": a.filename, "content_type": a.content_type, "size": a.size}
            for a in session.exec(select(NeedAttachment).where(
                NeedAttachment.need_id == need.id))]
        data["meetings"] = [
            {"start": m.start_at.isoformat(), "end": m.end_at.isoformat(), "status": m.status,
             "place": m.place, "note": m.firm_note}
            for m in session.exec(select(Meeting).where(Meeting.need_id == need.id))]
        rating = session.exec(select(Satisfaction).where(
            Satisfaction.need_id == need.id)).first()
        data["satisfaction"] = ({"score": rating.score, "comment": rating.comment}
                                if rating and rating.score is not None else None)
        result["needs"].append(data)
    if chats:
        result["questions"] = [
            {"asked_at": q.asked_at.isoformat(), "text": q.text}
            for q in session.exec(select(KbQuery).where(col(KbQuery.chat_id).in_(chats))
                                  .order_by(col(KbQuery.id)))]
    if chats or address:
        bound: list[ColumnElement[bool]] = []
        if chats:
            bound.append(col(AnimatorBinding.telegram_user_id).in_(chats))
        if address:
            bound.append(col(AnimatorBinding.email) == address)
        bindings = session.exec(select(AnimatorBinding).where(or_(*bound))).all()
        if bindings:  # an animator: the Telegram account their invitation bound
            result["animator_accounts"] = [
                {"territory_id": b.territory_id, "email": b.email,
                 "telegram_id": b.telegram_user_id, "bound_at": b.bound_at.isoformat()}
                for b in bindings]
    if address:
        result["emails"] = [
            {"received_at": r.received_at.isoformat(), "subject": r.subject}
            for r in session.exec(select(InboundEmail).where(
                func.lower(col(InboundEmail.from_addr)) == address))]
    return result


# Needs a slice of the retention pass anonymises at most (each touches several tables),
# and old rows a slice purges at most: one short transaction either way. (200 needs made
# a flush whose parameters held PostgreSQL's event loop 56 ms.)
RETENTION_SLICE = 50
PURGE_SLICE = 2000


# How far before the last completed pass the leftovers are looked for again: a write
# still in flight when that pass read (a transaction committed just after) is not missed.
LEFTOVER_MARGIN = timedelta(hours=1)


class RetentionPass:
    """The daily retention pass, as steps run slice after slice, each its own transaction.

    Anonymise needs untouched for `years`; purge old messages, raw emails and updates.
    Needs anonymised before (by an erasure, or by this pass) lose what still hangs off
    them: a message (an email to an old need's address, and its attachments), a note
    written afterwards. With `since` (the last completed pass, minus `LEFTOVER_MARGIN`),
    only the needs that got such a row since are looked at, found through the indexes on
    the rows' times; without it (a first pass), every anonymised need. Either way they
    are cleaned 50 at a time. (A rating's comment or a firm's note on a meeting is
    not stored for an anonymised need at all.) The other steps read only due rows, oldest
    first, through an index, and leave them not due: a step is done when a slice finds
    fewer than `limit`.
    """

    def __init__(self, *, now: datetime, years: int = 3, raw_days: int = 90,
                 limit: int = RETENTION_SLICE, purge_limit: int = PURGE_SLICE,
                 since: datetime | None = None) -> None:
        self.now = now
        self.since = since
        self.old = now - timedelta(days=365 * years)
        self.raw_limit = now - timedelta(days=raw_days)
        self.limit = limit
        self.purge_limit = purge_limit
        self.done = {"needs": 0, "leftovers": 0, "outbox": 0, "emails": 0, "updates": 0}
        self._anonymised: list[int] | None = None

    def steps(self) -> list[tuple[Callable[[Session], int], int]]:
        """The steps in order, each with its slice size; a call does one slice and returns
        the rows it took (the step is done when that is less than its slice size)."""
        return [(self._leftovers, self.limit), (self._needs, self.limit),
                *((step, self.purge_limit) for step in (
                    self._outbox, self._held, self._emails, self._updates, self._handled,
                    self._dead))]

    def _leftovers(self, session: Session) -> int:
        if self._anonymised is None:
            # Read once, before this pass anonymises more: those it erases have nothing
            # left.
            self._anonymised = self._touched(session)
        chunk, self._anonymised = (self._anonymised[:self.limit],
                                   self._anonymised[self.limit:])
        self.done["leftovers"] += _erase_need_rows(session, chunk)
        return len(chunk)

    def _touched(self, session: Session) -> list[int]:
        """The anonymised needs that may have something left (a reply to an old need's
        address can still arrive): all of them, or those written to since `since`."""
        anonymised = col(Need.anonymized_at).is_not(None)
        if self.since is None:
            return sorted(session.exec(select(Need.id).where(anonymised)))  # type: ignore[arg-type]
        written: set[int] = set()
        # Each through the index on the row's time: the needs written to since the last
        # pass (then, by primary key, those of them anonymised). Never a join: a planner
        # could start it from every anonymised need.
        probes: tuple[tuple[Any, Any, tuple[ColumnElement[bool], ...]], ...] = (
            (NeedMessage.need_id, NeedMessage.at, ()),
            (NeedEvent.need_id, NeedEvent.at, (col(NeedEvent.note).is_not(None),)),
            (InboundEmail.need_id, InboundEmail.received_at,
             (col(InboundEmail.raw).is_not(None),)),
        )
        for need_id, when, more in probes:
            # No DISTINCT: SQLite would walk the need_id index to avoid a sort.
            written.update(session.exec(select(need_id).where(col(when) >= self.since, *more)))
        ids = sorted(i for i in written if i is not None)
        found: list[int] = []
        for start in range(0, len(ids), 500):
            found += session.exec(select(Need.id).where(
                col(Need.id).in_(ids[start:start + 500]), anonymised))  # type: ignore[arg-type]
        return sorted(found)

    def _needs(self, session: Session) -> int:
        stale = list(session.exec(
            select(Need).where(col(Need.anonymized_at).is_(None), col(Need.updated_at) < self.old)
            .order_by(col(Need.updated_at)).limit(self.limit)))
        erase_needs(session, stale, now=self.now)
        self.done["needs"] += len(stale)
        return len(stale)

    def _outbox(self, session: Session) -> int:
        due = (select(Outbox.id).where(
            col(Outbox.created_at) < self.raw_limit,
            or_(col(Outbox.delivered_at).is_not(None), col(Outbox.failed_at).is_not(None)))
            .order_by(col(Outbox.created_at)).limit(self.purge_limit))
        return self._tally(session, "outbox", delete(Outbox).where(col(Outbox.id).in_(due)))

    def _held(self, session: Session) -> int:
        # Kept for an animator: emailed when kept, shown on Telegram if they came in time.
        due = (select(HeldMessage.id).where(col(HeldMessage.created_at) < self.raw_limit)
               .order_by(col(HeldMessage.created_at)).limit(self.purge_limit))
        return self._tally(session, "outbox",
                           delete(HeldMessage).where(col(HeldMessage.id).in_(due)))

    def _emails(self, session: Session) -> int:
        due = (select(InboundEmail.id).where(col(InboundEmail.received_at) < self.raw_limit,
                                             col(InboundEmail.raw).is_not(None))
               .order_by(col(InboundEmail.received_at)).limit(self.purge_limit))
        return self._tally(session, "emails", update(InboundEmail)
                           .where(col(InboundEmail.id).in_(due)).values(raw=None))

    def _updates(self, session: Session) -> int:
        due = (select(ProcessedUpdate.update_id)
               .where(col(ProcessedUpdate.processed_at) < self.raw_limit)
               .order_by(col(ProcessedUpdate.processed_at)).limit(self.purge_limit))
        return self._tally(session, "updates", delete(ProcessedUpdate)
                           .where(col(ProcessedUpdate.update_id).in_(due)))

    def _handled(self, session: Session) -> int:
        # Webhook updates carry what people typed and their names, like the raw emails.
        due = (select(PendingUpdate.update_id).where(col(PendingUpdate.done_at) < self.raw_limit)
               .order_by(col(PendingUpdate.done_at)).limit(self.purge_limit))
        return self._tally(session, "updates", delete(PendingUpdate)
                           .where(col(PendingUpdate.update_id).in_(due)))

    def _dead(self, session: Session) -> int:
        due = (select(DeadLetter.id).where(col(DeadLetter.received_at) < self.raw_limit)
               .order_by(col(DeadLetter.received_at)).limit(self.purge_limit))
        return self._tally(session, "updates",
                           delete(DeadLetter).where(col(DeadLetter.id).in_(due)))

    def _tally(self, session: Session, key: str, statement: Any) -> int:
        count = _count(session.execute(statement.execution_options(synchronize_session=False)))
        self.done[key] += count
        return count


def retention_pass(session: Session, *, now: datetime, years: int = 3,
                   raw_days: int = 90) -> dict[str, int]:
    """The whole retention pass in this one transaction (see `RetentionPass`)."""
    work = RetentionPass(now=now, years=years, raw_days=raw_days)
    for step, limit in work.steps():
        while step(session) >= limit:
            pass
    return work.done
