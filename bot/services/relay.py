"""The relay: after routing, the firm and its chef de projet write to each other through Relais.

Every relayed message is a row of the need's history (`need_message`: who wrote, to whom,
on which channel, when, the text and the attachment's description) and leaves through
the outbox with that row, so nothing is lost or sent twice across crashes. A person
writes to the other side in two ways: the "Écrire à l'entreprise" / "Répondre" buttons
open a short dialog (a `ChatDraft` of kind "relay") whose next message is relayed; or the
firm answers a relayed message with Telegram's "reply", which names the need by its
reference. A firm with several open needs is asked which one its message is about.

A firm that chose email gets the chef de projet's message by email, sent with the need's
reply address, so its answer comes back through the mailbox (`services.inbound`) and is
relayed to the chef de projet with "Répondre". A routed partner's email reaches a firm on
Telegram through the chef de projet ("Transmettre à l'entreprise"), or directly once the
firm accepted that partner; the firm's answer goes back to the partner by email, in the
same thread, with the chef de projet in copy.

Who may write is checked on every message: the firm that owns the need, or a chef de
projet of the need's territory; anyone else reaches nobody. A partner's email is only
relayed when it was sent to the need's unguessable reply address (see services.inbound).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.catalogue import label, t
from bot.messages import Attachment, Button, Message, Text, plain
from bot.services import outbox
from bot.services.animators import animator_of, is_animator
from bot.services.emails import (
    EmailDraft,
    need_message_id,
    optional_reply_address,
    relay_message_id,
    relayed_email,
    reply_subject,
)
from bot.services.lifecycle import OPEN_STATUSES
from bot.services.routing import animator_chats
from bot.services.types import Delivery, Reply
from bot.turn import Turn
from knowledge.territories import Animator, Territory, TerritoryDirectory
from storage.models import (
    ChatDraft,
    InboundEmail,
    Need,
    NeedAttachment,
    NeedEvent,
    NeedMessage,
    NeedRouting,
    NeedStatus,
    Outbox,
)

__all__ = ["DRAFT", "Content", "RelayService", "email_files", "handler_of", "recipients",
           "relay_content"]

DRAFT = "relay"
# The outbox kind of relayed messages (spacing per chat looks at these only).
RELAYED = outbox.SCHEDULED_KIND
PICK = "relay_pick"
_REFERENCE = re.compile(r"\bTI-\d{4}-\d{4,}\b")
_OPEN = [s.value for s in OPEN_STATUSES]
MAX_TEXT = 3500
# A partner's file is uploaded to Telegram up to this size (the outbox row holds its bytes);
# a larger one is named, with its size.
UPLOAD_MAX = 10 * 1024 * 1024


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
                 lease: timedelta = outbox.LEASE, mail_domain: str = "localhost",
                 reply_local: str | None = None) -> None:
        self.territories = territories
        # Relayed messages sent at once stay claimed this long (RELAIS_OUTBOX_LEASE).
        self.lease = lease
        self.per_minute = per_minute
        # Telegram lets a bot send about one message a second to one private chat.
        self.chat_gap = chat_gap
        self.mail_domain = mail_domain
        # Local part of the bot's address when it reads its mailbox: emails then carry the
        # need's reply address; None, answers go to the chef de projet's own address.
        self.reply_local = reply_local

    # --- who is who --------------------------------------------------------------------
    def _animator(self, session: Session, need: Need, user_id: int) -> Animator | None:
        territory = self.territories.get(need.territory_id or "")
        if territory is None:
            return None
        return animator_of(session, territory, user_id)

    def _role(self, session: Session, need: Need, user_id: int) -> str | None:
        if need.telegram_user_id is not None and need.telegram_user_id == user_id:
            return "firm"
        if self._animator(session, need, user_id) is not None:
            return "animator"
        return None

    # --- buttons -----------------------------------------------------------------------
    def on_button(self, session: Session, user_id: int, chat_id: int, value: str, *,
                  now: datetime) -> Reply:
        """The relay's buttons (`rl:<action>:<id>`, see the module docstring and below).

        `w`, `r`, `p` + need: write, answer, the need picked; `fw` + message: pass a
        partner's email on; `rp`, `ok`, `no` + routing: answer a partner, accept it or not.
        """
        _, action, rest = [*value.split(":", 2), "", ""][:3]
        if action == "fw":
            return self._forward_button(session, user_id, rest, now=now)
        if action in {"rp", "ok", "no"}:
            return self._partner_button(session, user_id, chat_id, action, rest, now=now)
        need = session.get(Need, int(rest)) if rest.isdigit() else None
        role = self._role(session, need, user_id) if need is not None else None
        if need is None or role is None or action not in {"w", "r", "p"}:
            return Reply(toast=label("common.relay_not_yours"))
        if not _open(need):
            return Reply(toast=label("common.relay_need_closed"))
        if action == "p":
            return self._picked(session, need, user_id, chat_id, role, now=now)
        if role == "animator" and not (_on_telegram(need) or _by_email(need)):
            return Reply([self._other_channel(need)])
        _open_draft(session, chat_id, user_id, need, now=now)
        if role == "animator":
            key = "animator.relay_prompt_email" if _by_email(need) else "animator.relay_prompt"
            prompt = t(key, firm=_firm(need), reference=need.reference)
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
        routing_id = draft.data.get("routing_id")
        session.delete(draft)
        if need is None or not content:
            return Reply([Message(t("common.relay_nothing_sent"))])
        if routing_id is not None:
            routing = session.get(NeedRouting, int(routing_id))
            if routing is None or routing.need_id != need.id:
                return Reply([Message(t("common.relay_nothing_sent"))])
            return self.to_partner(session, need, routing, draft.user_id, content, now=now)
        return self.relay(session, need, draft.user_id, content, now=now)

    def on_reply_to(self, session: Session, user_id: int, chat_id: int, replied: str,
                    content: Content, *, now: datetime) -> Reply | None:
        """A firm answering one of the bot's messages with Telegram's "reply".

        None when the answered message is about no need of this person (then it is an
        ordinary question for the knowledge base).
        """
        named_refs = set(_REFERENCE.findall(replied))
        if is_animator(session, self.territories, user_id):
            # A chef de projet answering a firm's relayed message: the reference names it.
            for ref in named_refs:
                need = session.exec(select(Need).where(Need.reference == ref)).first()
                if need is not None and self._role(session, need, user_id) == "animator":
                    return self.relay(session, need, user_id, content, now=now)
            return None
        needs = self._open_needs_of(session, user_id)
        if not needs:
            return None
        named = [n for n in needs if n.reference in named_refs]
        if len(named) == 1:
            # The answer to a partner's relayed message goes back to that partner.
            routing = self._partner_named(session, named[0], replied)
            if routing is not None:
                return self.to_partner(session, named[0], routing, user_id, content, now=now)
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
        role = self._role(session, need, user_id)
        if role is None or not _open(need):
            return Reply([Message(t("common.relay_not_delivered"))])
        text = content.text.strip()[:MAX_TEXT]
        by_email = role == "animator" and _by_email(need)
        if by_email and not text:
            return Reply([Message(t("common.relay_email_text_only"))])
        row = NeedMessage(
            need_id=need.id or 0, author_kind=role,
            channel="email" if by_email else "telegram",
            to_kind="firm" if role == "animator" else "animator",
            author=self._author_name(session, need, user_id, role), sender_user_id=user_id,
            text=text, attachment=_attachment_json(content.attachment), at=now,
        )
        session.add(row)
        if by_email:
            return self._email_to_firm(session, need, user_id, row, content, now=now)
        if role == "animator":
            return self._to_firm(session, need, user_id, text, content.attachment, now=now)
        return self._to_animators(session, need, user_id, text, content.attachment, now=now)

    def _author_name(self, session: Session, need: Need, user_id: int, role: str) -> str:
        if role == "animator":
            animator = self._animator(session, need, user_id)
            return animator.name if animator else ""
        return "entreprise"

    def _to_firm(self, session: Session, need: Need, user_id: int, text: str,
                 attachment: Attachment | None, *, now: datetime) -> Reply:
        animator = self._animator(session, need, user_id)
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

    def _email_to_firm(self, session: Session, need: Need, user_id: int, row: NeedMessage,
                       content: Content, *, now: datetime) -> Reply:
        """A firm that chose email: the message leaves from the need's reply address."""
        animator = self._animator(session, need, user_id)
        territory = self.territories.get(need.territory_id or "")
        assert animator is not None and territory is not None and need.contact_value
        # The thread with the firm: its first email, then its answers and our messages in
        # the order they were written; we answer the last.
        firm_mails = _inbound(session, need, kinds=("firm_new", "firm_reply"))
        thread = session.exec(
            select(NeedMessage.message_id).where(
                NeedMessage.need_id == need.id, NeedMessage.channel == "email",
                col(NeedMessage.message_id).is_not(None),
                # The firm's emails received, and the chef de projet's emails to it.
                ((NeedMessage.author_kind == "firm") & col(NeedMessage.inbound_id).is_not(None))
                | ((NeedMessage.author_kind == "animator") & (NeedMessage.to_kind == "firm")))
            .order_by(col(NeedMessage.id))).all()
        chain = [m.message_id for m in firm_mails if m.kind == "firm_new"]
        chain += [m for m in thread if m and m not in chain]
        last = firm_mails[-1] if firm_mails else None
        reply_to = self._reply_to(need)
        draft = relayed_email(
            reference=need.reference, to_name=need.firm_name or "", to_email=need.contact_value,
            subject=reply_subject(last.subject if last else None, t(
                "firm.relay_email_subject", reference=need.reference, animator=animator.name,
                territory=territory.name).plain(), need.reference),
            intro=t("firm.relay_email_intro", animator=animator.name, territory=territory.name,
                    reference=need.reference).plain(),
            text=row.text, outro=t("firm.relay_email_outro", animator=animator.name).plain(),
            message_id=relay_message_id(need.reference, _key(need), self.mail_domain),
            reply_to=reply_to or str(animator.email),
            reply_to_name=t("partner.reply_to_name", reference=need.reference).plain()
            if reply_to else animator.name,
            in_reply_to=chain[-1] if chain else None, references=chain)
        row.message_id = draft.message_id
        self._send_email(session, need, need.contact_value, draft, now=now)
        said = [Message(t("animator.relay_sent_email", firm=_firm(need)))]
        if content.attachment is not None:
            said.append(Message(t("common.relay_file_not_emailed")))
        return Reply(said)

    def _reply_to(self, need: Need) -> str | None:
        """The need's reply address, when the bot reads its mailbox."""
        return optional_reply_address(self.reply_local, need.reply_token, self.mail_domain)

    def _send_email(self, session: Session, need: Need, recipient: str, draft: EmailDraft, *,
                    now: datetime, not_before: datetime | None = None) -> None:
        outbox.enqueue_payload(
            session, channel="email", recipient=recipient, now=now, not_before=not_before,
            payload={"email": draft.to_payload(), "need_id": need.id,
                     "territory_id": need.territory_id, "key": draft.message_id.strip("<>")})

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
              not_before: datetime | None = None, claim: bool = True) -> list[Delivery]:
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
        now_due = claim and due <= now
        rows = outbox.enqueue(session, channel="telegram", recipient=chat, messages=[message],
                              now=now, claimed=now_due, not_before=due, kind=RELAYED,
                              lease=self.lease)
        return rows if now_due else []

    def _recipients(self, session: Session, territory: Territory, need: Need) -> list[str]:
        return recipients(session, territory, need)

    # --- partners ----------------------------------------------------------------------
    def firm_on_telegram(self, need: Need) -> bool:
        """Whether a partner's message can be relayed to this need's firm on Telegram."""
        return _open(need) and _on_telegram(need)

    def _forward_button(self, session: Session, user_id: int, rest: str, *,
                        now: datetime) -> Reply:
        """"Transmettre à l'entreprise": a chef de projet passes a partner's email on."""
        note = session.get(NeedMessage, int(rest)) if rest.isdigit() else None
        need = session.get(Need, note.need_id) if note is not None else None
        if note is None or need is None or note.author_kind != "partner" or \
                self._role(session, need, user_id) != "animator":
            return Reply(toast=label("common.relay_not_yours"))
        if not _open(need):
            return Reply(toast=label("common.relay_need_closed"))
        if note.to_kind == "firm":
            return Reply(toast=label("animator.relay_partner_already_forwarded"))
        routing = _routing_of(session, need, note.author)
        if routing is None or not _on_telegram(need):
            return Reply(toast=label("animator.relay_firm_not_on_telegram"))
        rows = self.partner_to_firm(session, need, routing, note, now=now, claim=True)
        return Reply([Message(t("animator.relay_partner_forwarded",
                                partner=routing.partner_name, firm=_firm(need)))],
                     deliveries=rows)

    def partner_to_firm(self, session: Session, need: Need, routing: NeedRouting,
                        note: NeedMessage, *, now: datetime, claim: bool) -> list[Delivery]:
        """Relay a partner's email (already in the need's history) to the firm on Telegram.

        The first time, the firm is asked whether that partner may write to it directly.
        `claim`: the rows due now are returned to be sent at once (a turn), else the
        sweeper sends them (an email being read).
        """
        assert need.telegram_chat_id is not None and routing.id is not None
        chat = str(need.telegram_chat_id)
        partner = routing.partner_name
        messages: list[Message] = []
        if note.text.strip():
            head = t("firm.relay_from_partner", partner=partner, reference=need.reference)
            body = _with_body(head, note.text.strip()[:MAX_TEXT]) + t(
                "firm.relay_partner_how_to_answer", partner=partner)
            messages.append(Message(body, _partner_answer_button(routing)))
        messages += self._partner_files(session, need, partner, note)
        if routing.relay_direct is None:
            messages.append(Message(
                t("firm.relay_partner_consent", partner=partner),
                ((Button(label("firm.btn_relay_accept"), f"rl:ok:{routing.id}"),
                  Button(label("firm.btn_relay_refuse"), f"rl:no:{routing.id}")),)))
            routing.relay_direct, routing.relay_direct_at = "asked", now
            session.add(routing)
        note.to_kind = "firm"
        session.add(note)
        rows: list[Delivery] = []
        for message in messages:
            rows += self._send(session, chat, message, now=now, claim=claim)
        return rows

    def _partner_files(self, session: Session, need: Need, partner: str,
                       note: NeedMessage) -> list[Message]:
        """The files of a partner's email: uploaded when small enough, else named."""
        files = (note.attachment or {}).get("files") or []
        cut = bool((note.attachment or {}).get("cut"))
        kept = {a.filename: a for a in session.exec(select(NeedAttachment).where(
            NeedAttachment.need_id == need.id, NeedAttachment.inbound_id == note.inbound_id))
        } if note.inbound_id is not None else {}
        messages = []
        for name, size, _mime in files:
            stored = kept.get(str(name)[:120])
            if stored is not None and stored.size <= UPLOAD_MAX:
                caption = t("firm.relay_partner_file", partner=partner, file=stored.filename,
                            reference=need.reference)
                messages.append(Message(caption, attachment=Attachment(
                    "document", "", stored.filename, stored.size, stored.content_type,
                    stored.data)))
            else:
                size_text = _size_text(int(size))
                if cut:  # the email was read up to the limit only: at least this much
                    size_text = t("common.size_at_least", size=size_text).plain()
                messages.append(Message(t("firm.relay_partner_file_too_big", partner=partner,
                                          file=str(name), size=size_text)))
        return messages

    def _partner_button(self, session: Session, user_id: int, chat_id: int, action: str,
                        rest: str, *, now: datetime) -> Reply:
        """The firm answers a partner ("Répondre"), or accepts it writing here or not."""
        routing = session.get(NeedRouting, int(rest)) if rest.isdigit() else None
        need = session.get(Need, routing.need_id) if routing is not None else None
        if routing is None or need is None or self._role(session, need, user_id) != "firm":
            return Reply(toast=label("common.relay_not_yours"))
        if not _open(need):
            return Reply(toast=label("common.relay_need_closed"))
        partner = routing.partner_name
        if action == "rp":
            if not _partner_wrote(session, need, routing):
                return Reply(toast=label("common.relay_not_yours"))
            draft = _open_draft(session, chat_id, user_id, need, now=now)
            draft.data = {"need_id": need.id, "routing_id": routing.id}
            return Reply([Message(t("firm.relay_prompt_partner", partner=partner,
                                    reference=need.reference))])
        if routing.relay_direct != "asked":
            return Reply(toast=label("firm.stale_button"))
        accepted = action == "ok"
        routing.relay_direct = "accepted" if accepted else "refused"
        routing.relay_direct_at = now
        session.add(routing)
        territory = self.territories.get(need.territory_id or "")
        if territory is not None:
            key = "animator.relay_partner_accepted" if accepted else \
                "animator.relay_partner_refused"
            news = Message(t(key, firm=_firm(need), partner=partner, reference=need.reference))
            for chat in recipients(session, territory, need):
                outbox.enqueue(session, channel="telegram", recipient=chat, messages=[news],
                               now=now, claimed=False)
        key = "firm.relay_partner_accepted" if accepted else "firm.relay_partner_refused"
        return Reply([Message(t(key, partner=partner))])

    def _partner_named(self, session: Session, need: Need, replied: str) -> NeedRouting | None:
        """The partner whose relayed message the firm answered with Telegram's "reply"."""
        for routing in session.exec(select(NeedRouting).where(NeedRouting.need_id == need.id)):
            head = t("firm.relay_from_partner", partner=routing.partner_name,
                     reference=need.reference).plain()
            if replied.startswith(head) and _partner_wrote(session, need, routing):
                return routing
        return None

    def to_partner(self, session: Session, need: Need, routing: NeedRouting, user_id: int,
                   content: Content, *, now: datetime) -> Reply:
        """The firm's answer to a partner: by email, in its thread, chef de projet in copy."""
        territory = self.territories.get(need.territory_id or "")
        if self._role(session, need, user_id) != "firm" or not _open(need) or territory is None:
            return Reply([Message(t("common.relay_not_delivered"))])
        text = content.text.strip()[:MAX_TEXT]
        if not text:
            return Reply([Message(t("common.relay_email_text_only"))])
        row = NeedMessage(
            need_id=need.id or 0, author_kind="firm", channel="email", to_kind="partner",
            author="entreprise", sender_user_id=user_id, text=text,
            attachment=_attachment_json(content.attachment), at=now)
        session.add(row)
        animator = handler_of(session, territory, need)
        partner_mails = [m for m in _inbound(session, need, kinds=("partner_reply",))
                         if m.from_addr.lower() == routing.partner_email.lower()]
        last = partner_mails[-1] if partner_mails else None
        original = need_message_id(need.reference, partner_email=routing.partner_email,
                                   mail_domain=self.mail_domain, partner_id=routing.partner_id)
        reply_to = self._reply_to(need)
        who = animator.name if animator else ""
        outro = "partner.relay_how_to_answer" if reply_to or animator is None else \
            "partner.relay_how_to_answer_animator"
        draft = relayed_email(
            reference=need.reference, to_name=routing.partner_name,
            to_email=routing.partner_email,
            subject=reply_subject(last.subject if last else None, t(
                "partner.relay_subject", reference=need.reference, firm=_firm(need)).plain(),
                need.reference),
            intro=t("partner.relay_from_firm", firm=_firm(need),
                    reference=need.reference).plain(),
            text=text, outro=t(outro, animator=who).plain(),
            message_id=relay_message_id(need.reference, _key(need), self.mail_domain),
            reply_to=reply_to or (str(animator.email) if animator else None),
            reply_to_name=t("partner.reply_to_name", reference=need.reference).plain()
            if reply_to else who,
            cc=[(animator.name, str(animator.email))] if animator else [],
            in_reply_to=last.message_id if last else original,
            references=[original, *(m.message_id for m in partner_mails)])
        row.message_id = draft.message_id
        # The flood limit holds for emails too: one firm cannot bury a partner's inbox.
        held = self._recent(session, user_id, now) >= self.per_minute
        self._send_email(session, need, routing.partner_email, draft, now=now,
                         not_before=now + timedelta(minutes=1) if held else None)
        said = [Message(t("firm.relay_sent_partner", partner=routing.partner_name,
                          reference=need.reference))]
        if held:
            said = [Message(t("firm.relay_slow_down", reference=need.reference))]
        if content.attachment is not None:
            said.append(Message(t("common.relay_file_not_emailed")))
        return Reply(said)

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


def recipients(session: Session, territory: Territory, need: Need) -> list[str]:
    """The chef de projet who took the need, else every chef de projet of the territory."""
    taken = _taken(session, territory, need)
    if taken is not None:
        return [str(taken)]
    return [str(c) for c in animator_chats(session, territory)]


def handler_of(session: Session, territory: Territory, need: Need) -> Animator | None:
    """The chef de projet in charge: the one who took the need, else the territory's first."""
    taken = _taken(session, territory, need)
    animator = animator_of(session, territory, taken) if taken is not None else None
    return animator or (territory.animators[0] if territory.animators else None)


def _taken(session: Session, territory: Territory, need: Need) -> int | None:
    """The Telegram account of the chef de projet who last took the need, if still one."""
    taken = session.exec(
        select(NeedEvent.actor_ref).where(
            NeedEvent.need_id == need.id,
            NeedEvent.to_status == NeedStatus.IN_PROGRESS.value,
            col(NeedEvent.actor_ref).startswith("telegram:"))
        .order_by(col(NeedEvent.id).desc()).limit(1)
    ).first()
    if not taken:
        return None
    user_id = int(taken.removeprefix("telegram:"))
    return user_id if animator_of(session, territory, user_id) is not None else None


def email_files(files: Sequence[tuple[str, str, int, bytes | None]], *,
                cut: bool = False) -> dict[str, object] | None:
    """What a need's history keeps of an email's files: names, sizes and types.

    `cut`: the email was read only up to the size limit, so a size is only what was read.
    """
    if not files:
        return None
    return {"kind": "email", "name": ", ".join(name for name, _, _, _ in files)[:300],
            "files": [[name[:120], size, mime[:100]] for name, mime, size, _ in files],
            "cut": cut}


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


def _open(need: Need) -> bool:
    return need.status in _OPEN and need.anonymized_at is None


def _on_telegram(need: Need) -> bool:
    return need.contact_method == "telegram" and need.telegram_chat_id is not None


def _by_email(need: Need) -> bool:
    return need.contact_method == "email" and bool(need.contact_value)


def _key(need: Need) -> str:
    """A fresh key for a relayed email's Message-ID (the outbox row keeps it on retries)."""
    return f"{need.id}|{secrets.token_hex(8)}"


def _inbound(session: Session, need: Need, *, kinds: tuple[str, ...]) -> list[InboundEmail]:
    """The need's received emails of these kinds, oldest first."""
    return list(session.exec(
        select(InboundEmail).where(InboundEmail.need_id == need.id,
                                   col(InboundEmail.kind).in_(kinds))
        .order_by(col(InboundEmail.id))))


def _routing_of(session: Session, need: Need, email: str) -> NeedRouting | None:
    """The need's partner writing from this address."""
    return next((r for r in session.exec(select(NeedRouting).where(
        NeedRouting.need_id == need.id)) if r.partner_email.lower() == email.lower()), None)


def _partner_wrote(session: Session, need: Need, routing: NeedRouting) -> bool:
    """Whether a message of this partner was relayed to the firm (so it may answer it)."""
    return any(m.author.lower() == routing.partner_email.lower() for m in session.exec(
        select(NeedMessage).where(NeedMessage.need_id == need.id,
                                  NeedMessage.author_kind == "partner",
                                  NeedMessage.to_kind == "firm")))


def _partner_answer_button(routing: NeedRouting) -> tuple[tuple[Button, ...], ...]:
    return ((Button(label("common.btn_relay_answer"), f"rl:rp:{routing.id}"),),)


def _size_text(size: int) -> str:
    """A file's size as people read it: « 850 Ko », « 12,4 Mo »."""
    if size < 1024 * 1024:
        return t("common.size_kilobytes", kilobytes=max(1, round(size / 1024))).plain()
    megabytes = f"{size / (1024 * 1024):.1f}".replace(".", ",").removesuffix(",0")
    return t("common.size_megabytes", megabytes=megabytes).plain()


def _has_relay(session: Session, need: Need) -> bool:
    return session.exec(
        select(NeedMessage.id).where(NeedMessage.need_id == need.id,
                                     NeedMessage.channel == "telegram").limit(1)
    ).first() is not None


def _open_draft(session: Session, chat_id: int, user_id: int, need: Need, *,
                now: datetime) -> ChatDraft:
    draft = session.get(ChatDraft, chat_id) or ChatDraft(chat_id=chat_id, user_id=user_id,
                                                         kind=DRAFT, step="text")
    draft.kind, draft.step, draft.user_id = DRAFT, "text", user_id
    draft.data, draft.updated_at = {"need_id": need.id}, now
    session.add(draft)
    return draft


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
