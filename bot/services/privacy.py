"""A person's data: export it, erase it everywhere, and the daily retention pass.

Erasing keeps what the territory counts (theme, commune, EPCI, dates, statuses) and blanks
everything that identifies the person or the firm: names, SIRET, description, contact,
firm facts, messages, attachments, raw emails, consent, conversations and drafts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, update
from sqlmodel import Session, col, select

from storage.models import (
    ChatDraft,
    Consent,
    Conversation,
    FirmLookup,
    InboundEmail,
    Meeting,
    Need,
    NeedAttachment,
    NeedMessage,
    Outbox,
    ProcessedUpdate,
    Satisfaction,
)

__all__ = ["erase_needs", "erase_person", "export_person", "retention_pass"]


def _needs_of(session: Session, telegram_id: int | None, email: str | None) -> list[Need]:
    conditions = []
    if telegram_id is not None:
        conditions.append(col(Need.telegram_user_id) == telegram_id)
    if email:
        conditions.append(col(Need.contact_value) == email.lower())
    if not conditions:
        return []
    return list(session.exec(select(Need).where(or_(*conditions)).order_by(col(Need.id))))


def erase_needs(session: Session, needs: list[Need], *, now: datetime) -> None:
    """Blank what identifies the person in these needs; keep the anonymous counts."""
    # A sole trader's SIRET is personal data: drop the cached directory answers too.
    keys = {f"siret:{n.siret}" for n in needs if n.siret}
    keys |= {f"siren:{n.firm['siren']}" for n in needs if n.firm and n.firm.get("siren")}
    if keys:
        session.execute(delete(FirmLookup).where(col(FirmLookup.key).in_(keys)))
    for need in needs:
        assert need.id is not None
        session.execute(delete(NeedMessage).where(col(NeedMessage.need_id) == need.id))
        session.execute(delete(NeedAttachment).where(col(NeedAttachment.need_id) == need.id))
        session.execute(update(Satisfaction).where(col(Satisfaction.need_id) == need.id)
                        .values(comment=None))
        need.firm_name = need.siret = need.description = need.contact_value = None
        need.firm = None
        need.telegram_chat_id = need.telegram_user_id = None
        need.anonymized_at = need.updated_at = now
        session.add(need)


def erase_person(session: Session, *, telegram_id: int | None = None,
                 email: str | None = None, now: datetime) -> int:
    """Erase a person everywhere (Telegram id and/or email); how many needs were touched."""
    needs = _needs_of(session, telegram_id, email)
    erase_needs(session, needs, now=now)
    if telegram_id is not None:
        # In a private chat the chat id is the user id.
        for model in (Conversation, ChatDraft):
            session.execute(delete(model).where(col(model.chat_id) == telegram_id))
        session.execute(delete(Consent).where(col(Consent.user_id) == telegram_id))
        session.execute(update(Meeting).where(col(Meeting.firm_chat_id) == telegram_id)
                        .values(firm_chat_id=None, firm_note=None))
        session.execute(delete(Outbox).where(col(Outbox.recipient) == str(telegram_id),
                                             col(Outbox.delivered_at).is_not(None)))
    if email:
        address = email.lower()
        session.execute(update(InboundEmail).where(col(InboundEmail.from_addr) == address)
                        .values(raw=None, from_addr="", subject=""))
        session.execute(delete(Outbox).where(col(Outbox.recipient) == address,
                                             col(Outbox.delivered_at).is_not(None)))
    return len(needs)


def export_person(session: Session, *, telegram_id: int | None = None,
                  email: str | None = None) -> dict[str, Any]:
    """Everything stored about a person, as JSON-ready data (right of access)."""
    needs = _needs_of(session, telegram_id, email)
    consent = session.get(Consent, telegram_id) if telegram_id is not None else None
    result: dict[str, Any] = {
        "telegram_id": telegram_id,
        "email": email.lower() if email else None,
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
             "place": m.place}
            for m in session.exec(select(Meeting).where(Meeting.need_id == need.id))]
        rating = session.exec(select(Satisfaction).where(
            Satisfaction.need_id == need.id)).first()
        data["satisfaction"] = ({"score": rating.score, "comment": rating.comment}
                                if rating and rating.score is not None else None)
        result["needs"].append(data)
    if email:
        result["emails"] = [
            {"received_at": r.received_at.isoformat(), "subject": r.subject}
            for r in session.exec(select(InboundEmail).where(
                InboundEmail.from_addr == email.lower()))]
    return result


def retention_pass(session: Session, *, now: datetime, years: int = 3,
                   raw_days: int = 90) -> dict[str, int]:
    """Anonymise needs untouched for `years`; purge old outbox rows and raw emails."""
    old = now - timedelta(days=365 * years)
    stale = list(session.exec(select(Need).where(col(Need.updated_at) < old,
                                                 col(Need.anonymized_at).is_(None))))
    erase_needs(session, stale, now=now)
    raw_limit = now - timedelta(days=raw_days)
    purged = session.execute(delete(Outbox).where(
        col(Outbox.created_at) < raw_limit,
        or_(col(Outbox.delivered_at).is_not(None), col(Outbox.failed_at).is_not(None))))
    emails = session.execute(update(InboundEmail).where(
        col(InboundEmail.received_at) < raw_limit, col(InboundEmail.raw).is_not(None))
        .values(raw=None))
    updates = session.execute(delete(ProcessedUpdate).where(
        col(ProcessedUpdate.processed_at) < raw_limit))
    return {"needs": len(stale), "outbox": int(purged.rowcount),  # type: ignore[attr-defined]
            "emails": int(emails.rowcount),  # type: ignore[attr-defined]
            "updates": int(updates.rowcount)}  # type: ignore[attr-defined]
