"""The relay: after routing, the firm and its chef de projet write to each other through Relais.

Every relayed message is a row of the need's history (`need_message`: who wrote, to whom,
on which channel, when, the text and the attachment's description) and leaves through
the outbox with that row, so nothing is lost or sent twice across crashes. A person
writes to the other side in two ways: the "Écrire à l'entreprise" / "Répondre" buttons
open a short dialog (a `ChatDraft` of kind "relay") whose next message is relayed; or the
firm answers a relayed message with Telegram's "reply", which names the need by its
reference. A firm with several open needs is asked which one its message is about.

Who may write is checked on every message: the firm that owns the need, or a chef de
projet of the need's territory; anyone else reaches nobody.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.catalogue import label, t
from bot.messages import Attachment, Button, Message, Text, plain
from bot.services import outbox
from bot.services.lifecycle import OPEN_STATUSES
from bot.services.routing import animator_chats
from bot.services.types import Delivery, Reply
from bot.turn import Turn
from knowledge.territories import Animator, Territory, TerritoryDirectory
from storage.models import ChatDraft, Need, NeedEvent, NeedMessage, NeedStatus, Outbox

__all__ = ["DRAFT", "Content", "RelayService", "relay_content"]

DRAFT = "relay"
# The outbox kind of relayed messages (spacing per chat looks at these only).
RELAYED = "relay"
PICK = "relay_pick"
_REFERENCE = re.compile(r"\bTI-\d{4}-\d{4,}\b")
_OPEN = [s.value for s in OPEN_STATUSES]
MAX_TEXT = 3500


@dataclass(frozen=True, slots=True)
class Content:
    """What a person sends to be relayed: text, or a file with its caption."""

    text: str = ""
    attachment: Attachment | None = None

    def __bool__(self) -> bool:
        return bool(self.text.strip()) or self.attachment is not None


class RelayService:
    """Relays messages between a firm and the chefs de projet of its need."""

    def __init__(self, territories: TerritoryDirectory, *, per_minute: int = 6,
                 chat_gap: timedelta = timedelta(seconds=1),
                 lease: timedelta = outbox.LEASE) -> None:
        self.territories = territories
        # Relayed messages sent at once stay claimed this long (RELAIS_OUTBOX_LEASE).
        self.lease = lease
        self.per_minute = per_minute
        # Telegram lets a bot send about one message a second to one private chat.
        self.chat_gap = chat_gap

    # --- who is who --------------------------------------------------------------------
    def _animator(self, need: Need, user_id: int) -> Animator | None:
        territory = self.territories.get(need.territory_id or "")
        if territory is None:
            return None
        return next((a for a in territory.animators if a.telegram_user_id == user_id), None)

    def _role(self, need: Need, user_id: int) -> str | None:
        if need.telegram_user_id is not None and need.telegram_user_id == user_id:
            return "firm"
        if self._animator(need, user_id) is not None:
            return "animator"
        return None

    # --- buttons -----------------------------------------------------------------------
    def on_button(self, session: Session, user_id: int, chat_id: int, value: str, *,
                  now: datetime) -> Reply:
        """`rl:w:<id>` write to the firm, `rl:r:<id>` answer, `rl:p:<id>` the need picked."""
        _, action, rest = [*value.split(":", 2), "", ""][:3]
        need = session.get(Need, int(rest)) if rest.isdigit() else None
        role = self._role(need, user_id) if need is not None else None
        if need is None or role is None or action not in {"w", "r", "p"}:
            return Reply(toast=label("common.relay_not_yours"))
        if need.status not in _OPEN or need.anonymized_at is not None:
            return Reply(toast=label("common.relay_need_closed"))
        if action == "p":
            return self._picked(session, need, user_id, chat_id, role, now=now)
        if role == "animator" and need.contact_method != "telegram":
            return Reply([self._other_channel(need)])
        _open_draft(session, chat_id, user_id, need, now=now)
        if role == "animator":
            prompt = t("animator.relay_prompt", firm=_firm(need), reference=need.reference)
        else:
            prompt = t("firm.relay_prompt", reference=need.reference)
        return Reply([Message(prompt)])

    def _other_channel(self, need: Need) -> Message:
        """A firm that chose the phone or email: how to reach it directly."""
        key = "animator.relay_by_phone" if need.contact_method == "phone" else \
            "animator.relay_by_email"
        return Message(t(key, firm=_firm(need), reference=need.reference,
                         contact=need.contact_value or label("firm.not_given")))

    def _picked(self, session: Session, need: Need, user_id: int, chat_id: int, role: str,
                *, now: datetime) -> Reply:
        draft = session.get(ChatDraft, chat_id)
        if draft is None or draft.kind != PICK or role != "firm":
            return Reply(toast=label("firm.stale_button"))
        content = Content(draft.data.get("text", ""), _attachment(draft.data.get("attachment")))
        session.delete(draft)
        return self.relay(session, need, user_id, content, now=now)

    # --- messages ----------------------------------------------------------------------
    def on_draft(self, session: Session, draft: ChatDraft, content: Content, *,
                 now: datetime) -> Reply:
        """The message typed (or the file sent) after "Écrire…" / "Répondre"."""
        need = session.get(Need, int(draft.data.get("need_id", 0)))
        session.delete(draft)
        if need is None or not content:
            return Reply([Message(t("common.relay_nothing_sent"))])
        return self.relay(session, need, draft.user_id, content, now=now)

    def on_reply_to(self, session: Session, user_id: int, chat_id: int, replied: str,
                    content: Content, *, now: datetime) -> Reply | None:
        """A firm answering one of the bot's messages with Telegram's "reply".

        None when the answered message is about no need of this person (then it is an
        ordinary question for the knowledge base).
        """
        named_refs = set(_REFERENCE.findall(replied))
        if user_id in self.territories.animator_user_ids():
            # A chef de projet answering a firm's relayed message: the reference names it.
            for ref in named_refs:
                need = session.exec(select(Need).where(Need.reference == ref)).first()
                if need is not None and self._role(need, user_id) == "animator":
                    return self.relay(session, need, user_id, content, now=now)
            return None
        needs = self._open_needs_of(session, user_id)
        if not needs:
            return None
        named = [n for n in needs if n.reference in named_refs]
        if len(named) == 1:
            return self.relay(session, named[0], user_id, content, now=now)
        relayed = [n for n in needs if _has_relay(session, n)] if not named else named
        if not relayed:
            return None
        if len(relayed) == 1:
            return self.relay(session, relayed[0], user_id, content, now=now)
        return self._ask_which(session, chat_id, user_id, relayed, content, now=now)

    def _ask_which(self, session: Session, chat_id: int, user_id: int, needs: list[Need],
                   content: Content, *, now: datetime) -> Reply:
        """Several open needs: the firm says which one its message is about."""
        data = {"text": content.text[:MAX_TEXT],
                "attachment": _attachment_json(content.attachment)}
        draft = session.get(ChatDraft, chat_id) or ChatDraft(chat_id=chat_id, user_id=user_id,
                                                             kind=PICK, step="pick")
        draft.kind, draft.step, draft.user_id, draft.data, draft.updated_at = (
            PICK, "pick", user_id, data, now)
        session.add(draft)
        buttons = tuple(
            (Button(f"{n.reference} · {label_theme(n)}", f"rl:p:{n.id}"),) for n in needs[:6]
        )
        return Reply([Message(t("firm.relay_which_need"), buttons)])

    def relay(self, session: Session, need: Need, user_id: int, content: Content, *,
              now: datetime) -> Reply:
        """Relay one message about `need` from `user_id` to the other side."""
        role = self._role(need, user_id)
        if role is None or need.status not in _OPEN or need.anonymized_at is not None:
            return Reply([Message(t("common.relay_not_delivered"))])
        text = content.text.strip()[:MAX_TEXT]
        row = NeedMessage(
            need_id=need.id or 0, author_kind=role, channel="telegram",
            to_kind="firm" if role == "animator" else "animator",
            author=self._author_name(need, user_id, role), sender_user_id=user_id,
            text=text, attachment=_attachment_json(content.attachment), at=now,
        )
        session.add(row)
        if role == "animator":
            return self._to_firm(session, need, user_id, text, content.attachment, now=now)
        return self._to_animators(session, need, user_id, text, content.attachment, now=now)

    def _author_name(self, need: Need, user_id: int, role: str) -> str:
        if role == "animator":
            animator = self._animator(need, user_id)
            return animator.name if animator else ""
        return "entreprise"

    def _to_firm(self, session: Session, need: Need, user_id: int, text: str,
                 attachment: Attachment | None, *, now: datetime) -> Reply:
        animator = self._animator(need, user_id)
        territory = self.territories.get(need.territory_id or "")
        assert animator is not None and territory is not None
        if need.contact_method != "telegram" or need.telegram_chat_id is None:
            return Reply([self._other_channel(need)])
        head = t("firm.relay_from_animator", animator=animator.name, territory=territory.name,
                 reference=need.reference)
        body = _with_body(head, text) + t("firm.relay_how_to_answer")
        message = Message(body, _answer_button(need), attachment=attachment)
        now_rows = self._send(session, str(need.telegram_chat_id), message, now=now)
        return Reply([Message(t("animator.relay_sent", firm=_firm(need)))],
                     deliveries=now_rows)

    def _to_animators(self, session: Session, need: Need, user_id: int, text: str,
                      attachment: Attachment | None, *, now: datetime) -> Reply:
        territory = self.territories.get(need.territory_id or "")
        if territory is None:
            return Reply([Message(t("common.relay_not_delivered"))])
        head = t("animator.relay_from_firm", firm=_firm(need), reference=need.reference)
        message = Message(_with_body(head, text), _answer_button(need), attachment=attachment)
        # Flood: past the limit a message waits a minute, so one firm cannot bury the
        # chef de projet's chat; nothing is dropped.
        held = self._recent(session, user_id, now) >= self.per_minute
        later = now + timedelta(minutes=1) if held else now
        now_rows: list[Delivery] = []
        for chat in self._recipients(session, territory, need):
            now_rows += self._send(session, chat, message, now=now, not_before=later)
        key = "firm.relay_slow_down" if held else "firm.relay_sent"
        return Reply([Message(t(key, reference=need.reference))], deliveries=now_rows)

    def _send(self, session: Session, chat: str, message: Message, *, now: datetime,
              not_before: datetime | None = None) -> list[Delivery]:
        """Queue a relayed message; the ones due now are returned, to be sent at once.

        Telegram accepts about one message a second in a private chat: a relayed message
        follows the last one relayed to that chat by a second at least, so a burst is
        spread out instead of refused (429).
        """
        last = session.exec(
            select(func.max(Outbox.not_before)).where(
                Outbox.channel == "telegram", Outbox.recipient == chat, Outbox.kind == RELAYED,
                col(Outbox.not_before) > now - self.chat_gap)
        ).one()
        due = max(not_before or now, last + self.chat_gap if last is not None else now)
        rows = outbox.enqueue(session, channel="telegram", recipient=chat, messages=[message],
                              now=now, claimed=due <= now, not_before=due, kind=RELAYED,
                              lease=self.lease)
        return rows if due <= now else []

    def _recipients(self, session: Session, territory: Territory, need: Need) -> list[str]:
        """The chef de projet who took the need, else every chef de projet of the territory."""
        taken = session.exec(
            select(NeedEvent.actor_ref).where(
                NeedEvent.need_id == need.id,
                NeedEvent.to_status == NeedStatus.IN_PROGRESS.value,
                col(NeedEvent.actor_ref).startswith("telegram:"))
            .order_by(col(NeedEvent.id).desc()).limit(1)
        ).first()
        if taken:
            user_id = int(taken.removeprefix("telegram:"))
            if any(a.telegram_user_id == user_id for a in territory.animators):
                return [str(user_id)]
        return [str(c) for c in animator_chats(territory)]

    def _recent(self, session: Session, user_id: int, now: datetime) -> int:
        """Messages this person had relayed in the last minute (this one not counted)."""
        return session.exec(
            select(func.count()).select_from(NeedMessage).where(
                NeedMessage.sender_user_id == user_id,
                col(NeedMessage.at) > now - timedelta(minutes=1))
        ).one() - 1

    def _open_needs_of(self, session: Session, user_id: int) -> list[Need]:
        return list(session.exec(
            select(Need).where(Need.telegram_user_id == user_id,
                               col(Need.status).in_(_OPEN))
            .order_by(col(Need.id).desc()).limit(20)
        ))


def relay_content(turn: Turn) -> Content:
    """What the person just sent, as something to relay."""
    event = turn.event
    if event.kind == "media":
        return Content(event.caption, event.attachment)
    return Content(event.value)


def label_theme(need: Need) -> str:
    """A need's theme in French, for a button."""
    from knowledge.taxonomy import theme_label

    return theme_label(need.theme)


def _firm(need: Need) -> str:
    return need.firm_name or label("animator.relay_unnamed_firm")


def _answer_button(need: Need) -> tuple[tuple[Button, ...], ...]:
    return ((Button(label("common.btn_relay_answer"), f"rl:r:{need.id}"),),)


def _with_body(head: Text, text: str) -> Text:
    return head + plain(text) if text else head


def _has_relay(session: Session, need: Need) -> bool:
    return session.exec(
        select(NeedMessage.id).where(NeedMessage.need_id == need.id,
                                     NeedMessage.channel == "telegram").limit(1)
    ).first() is not None


def _open_draft(session: Session, chat_id: int, user_id: int, need: Need, *,
                now: datetime) -> None:
    draft = session.get(ChatDraft, chat_id) or ChatDraft(chat_id=chat_id, user_id=user_id,
                                                         kind=DRAFT, step="text")
    draft.kind, draft.step, draft.user_id = DRAFT, "text", user_id
    draft.data, draft.updated_at = {"need_id": need.id}, now
    session.add(draft)


def _attachment_json(attachment: Attachment | None) -> dict[str, object] | None:
    if attachment is None:
        return None
    return {"kind": attachment.kind, "file_id": attachment.file_id, "name": attachment.name,
            "size": attachment.size, "mime": attachment.mime}


def _attachment(data: dict[str, object] | None) -> Attachment | None:
    if not data:
        return None
    return Attachment(data["kind"], str(data["file_id"]), str(data.get("name", "")),  # type: ignore[arg-type]
                      int(data.get("size", 0) or 0), str(data.get("mime", "")))  # type: ignore[call-overload]
