"""Emails that reach the bot: a firm's new need, a firm's answer, a partner's reply.

The mail adapter (`handlers/mail`) decodes the message, drops automatic ones and extracts
the thread candidates; this service decides, in one transaction per message:

* the message belongs to a need only if its sender belongs to that need's thread (the firm,
  a routed partner or an animator of the territory). A stranger quoting a reference, or a
  reply address, starts a new need instead of reading or changing someone else's;
* a new email from a firm creates a need through the same records and routing as the
  Telegram intake, and gets exactly one reply (reference, programme cards, what is missing);
* a firm's answer fills what was missing (then the need is routed), or is passed on to the
  animator;
* a partner's reply is kept in the need's history; an acknowledgement or a refusal is
  recognised (`bot.services.replies`) and the animator told, or asked when unsure. For a
  firm on Telegram, the animator may pass the partner's message on ("Transmettre à
  l'entreprise"); once the firm accepted that partner, its messages go to the firm
  directly. Either needs the email sent to the need's unguessable reply address: a From:
  header alone, forgeable, never reaches the firm;
* only a verified email sent to the need's reply address changes the need (acknowledges,
  refuses, completes, routes): any other is kept as unverified and the animator decides
  (`bot.services.mail_trust`). "Supprimer mes données" erases only once confirmed by a
  reply to a one-time address sent to the address on file (`bot.services.mail_erasure`).

The inbound row moves out of ``new`` in the same transaction, so a message is acted on once.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from bot.catalogue import label, t
from bot.messages import Message
from bot.services import outbox
from bot.services.emails import (
    FirmReplyView,
    firm_reply_email,
    new_reply_token,
    reply_address,
)
from bot.services.extract import extract_fields
from bot.services.lifecycle import (
    FIRM,
    acknowledge,
    change_status,
    decline,
    next_reference,
    partner,
    record_created,
)
from bot.services.limits import MailLimits
from bot.services.mail_erasure import ask_confirmation, confirmed_need
from bot.services.mail_notices import NewNeedNotices, set_aside_loop
from bot.services.mail_trust import UNVERIFIED, state_change_refusal
from bot.services.privacy import erase_person
from bot.services.questions import QuestionService
from bot.services.relay import RelayService, email_files, recipients
from bot.services.replies import ReplyKind, classify_reply
from bot.services.routing import RoutingService, animator_chats
from bot.services.types import Button, IncomingEmail
from knowledge.geography import Commune, Geography, normalize_name
from knowledge.taxonomy import THEMES, theme_label
from knowledge.territories import Territory, TerritoryDirectory
from knowledge.text import fold
from storage.models import (
    InboundEmail,
    Need,
    NeedAttachment,
    NeedMessage,
    NeedRouting,
    NeedStatus,
)

__all__ = ["InboundService", "IncomingEmail", "guess_theme"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
DESCRIPTION_MAX = 2000
FORWARD_MAX = 1200
REQUIRED = ("commune", "theme")

# Words that name a theme in a firm's short answer ("c'est pour du recrutement").
_THEME_WORDS: dict[str, tuple[str, ...]] = {
    "recrutement": ("recrut", "embauch", "poste", "candidat"),
    "competences": ("formation", "former", "competence", "apprenti", "qualification"),
    "foncier": ("foncier", "terrain", "batiment", "locaux", "friche", "immobilier"),
    "innovation": ("innov", "moderni", "robot", "numerique", "industrie du futur"),
    "mutualisation": ("mutualis", "mettre en commun", "partage"),
    "financement": ("financ", "pret", "subvention", "investiss", "tresorerie"),
    "transition": ("transition", "energie", "decarbon", "environnement", "dechet"),
    "export": ("export", "international", "etranger"),
    "mobilite": ("mobilite", "transport", "deplacement", "logement"),
    "difficulte": ("difficulte", "redressement", "impaye", "sauvegarde"),
}


def guess_theme(text: str, questions: QuestionService | None) -> str | None:
    """The theme of a free text: the knowledge base's best programmes, or plain words."""
    folded = fold(text)
    votes: dict[str, float] = {}
    for key, words in _THEME_WORDS.items():
        hits = sum(1 for w in words if w in folded)
        if hits:
            votes[key] = votes.get(key, 0.0) + hits
    if questions is not None:
        answer = questions.ask(text[:500])
        if not answer.out_of_scope:
            for rank, hit in enumerate(answer.hits[:3]):
                for position, theme in enumerate(hit.card.themes):
                    if theme in THEMES and theme != "autre":
                        weight = hit.score * (1.0 if position == 0 else 0.4) / (rank + 1)
                        votes[theme] = votes.get(theme, 0.0) + weight
    if not votes:
        return None
    ranked = sorted(votes.items(), key=lambda kv: kv[1], reverse=True)
    if len(ranked) > 1 and ranked[1][1] > 0.75 * ranked[0][1]:
        return None  # two themes as likely: ask rather than guess
    return ranked[0][0]


class InboundService:
    """Acts on the emails the bot receives (see the module docstring for the rules)."""

    def __init__(
        self,
        geography: Geography,
        territories: TerritoryDirectory,
        *,
        routing: RoutingService,
        questions: QuestionService | None,
        tz: ZoneInfo,
        mail_domain: str,
        reply_local: str,
        max_bytes: int,
        relay: RelayService | None = None,
        limits: MailLimits | None = None,
        notices: NewNeedNotices | None = None,
    ) -> None:
        self.relay = relay
        self.geography = geography
        self.territories = territories
        self.routing = routing
        self.questions = questions
        self.tz = tz
        self.mail_domain = mail_domain
        self.reply_local = reply_local
        self.max_bytes = max_bytes
        # Limits against abuse and grouped notices (bot/services/limits.py); None: none.
        self.limits = limits
        self.notices = notices

    # --- entry points -----------------------------------------------------------------------
    def prepare(self, mail: IncomingEmail) -> IncomingEmail:
        """The email with what its text says (fields, kind of reply): no database, any thread.

        The work is proportional to the text, so the mail adapter runs it in a worker
        thread; `handle` then only looks the results up.
        """
        return dataclasses.replace(
            mail, facts=extract_fields(mail.text, geography=self.geography),
            verdict=classify_reply(mail.text))

    def ignore(self, session: Session, inbound_id: int, *, kind: str, note: str,
               now: datetime) -> None:
        """Close an email without acting on it (automatic message, our own...)."""
        row = session.get(InboundEmail, inbound_id)
        if row is None or row.status != "new":
            return
        row.status, row.kind, row.note, row.processed_at = "ignored", kind, note[:300], now
        session.add(row)

    def after_pass(self, session: Session, *, now: datetime) -> None:
        """After each look at the mailbox: the grouped notice of needs that waited, if due."""
        if self.notices is not None:
            self.notices.flush(session, now=now)

    def handle(self, session: Session, mail: IncomingEmail, *, now: datetime) -> str | None:
        """Act on one email; returns its kind, or None when it was already handled."""
        row = session.get(InboundEmail, mail.inbound_id)
        if row is None or row.status != "new":
            return None
        confirmed = confirmed_need(session, tokens=mail.tokens, sender=mail.from_addr,
                                   text=mail.text, now=now)
        need, role = (confirmed, "firm") if confirmed else self._thread(session, mail)
        if need is None and self.limits is not None:
            refused = self.limits.new_need_refused(session, mail.from_addr, now=now)
            if refused is not None:
                # Kept, neither answered nor announced: a flood must not make Relais send
                # mail to whoever it names, nor ping the chefs de projet once per email.
                row.status, row.kind, row.note, row.processed_at = (
                    "ignored", "limited", refused, now)
                session.add(row)
                log.warning("email %s set aside: %s", mail.inbound_id, refused)
                return "limited"
        elif need is not None and confirmed is None and self.limits is not None \
                and self.limits.looping(session, need_id=need.id, sender=mail.from_addr,
                                        now=now):
            set_aside_loop(session, self.territories, row, need, mail.from_addr, now=now)
            return "loop"
        if need is None:
            kind = "firm_new"
            need = self._new_need(session, mail, now=now)
        elif confirmed is not None:
            kind = "firm_erase"
            self._erase(session, need, mail, now=now)
        elif role == "firm" and _ERASE.search(mail.text):
            kind = "firm_erase_asked"
            self._ask_erase(session, need, mail, now=now)
        elif role == "firm":
            kind = "firm_reply"
            self._firm_reply(session, need, mail, now=now)
        elif role == "partner":
            kind = "partner_reply"
            self._partner_reply(session, need, mail, now=now)
        else:
            kind = "animator_reply"
            self._note(session, need, mail, "animator", now)
        row.status, row.kind, row.need_id, row.processed_at = "processed", kind, need.id, now
        if kind != "firm_erase":  # the erasure blanked the row: it stays blank
            row.note = (("verified: " if mail.verified else "unverified: ")
                        + mail.auth_verdict)[:300]
        session.add(row)
        return kind

    # --- threading --------------------------------------------------------------------------
    def _thread(self, session: Session, mail: IncomingEmail) -> tuple[Need | None, str | None]:
        """The need this email answers, if its sender belongs to that need's thread."""
        candidates: list[Need] = []
        for token in mail.tokens:
            found = session.exec(select(Need).where(Need.reply_token == token)).first()
            if found is not None:
                candidates.append(found)
        for reference in (*mail.need_refs, *mail.subject_refs):
            found = session.exec(select(Need).where(Need.reference == reference)).first()
            if found is not None:
                candidates.append(found)
        sender = mail.from_addr.lower()
        for need in candidates:
            role = self._role(session, need, sender)
            if role is not None:
                return need, role
        if candidates:
            log.info("email %s names a need but its sender is not in the thread: new need",
                     mail.inbound_id)
        return None, None

    def _role(self, session: Session, need: Need, sender: str) -> str | None:
        if need.channel == "email" and (need.contact_value or "").lower() == sender:
            return "firm"
        if need.contact_method == "email" and (need.contact_value or "").lower() == sender:
            return "firm"
        routed = session.exec(select(NeedRouting).where(NeedRouting.need_id == need.id)).all()
        if any(r.partner_email.lower() == sender for r in routed):
            return "partner"
        territory = self.territories.get(need.territory_id or "")
        if territory is not None and any(str(a.email).lower() == sender
                                         for a in territory.animators):
            return "animator"
        return None

    # --- a firm's first email ---------------------------------------------------------------
    def _new_need(self, session: Session, mail: IncomingEmail, *, now: datetime) -> Need:
        body = f"{mail.subject}\n{mail.text}".strip()
        facts = mail.facts or extract_fields(mail.text, geography=self.geography)
        commune = self._commune(facts.commune_hint, facts.postcode, mail.text)
        theme = guess_theme(body, self.questions)
        missing = [m for m, ok in (("commune", commune is not None), ("theme", theme is not None))
                   if not ok]
        territory = self.territories.for_epci(commune.epci_siren) if commune else None
        need = Need(
            reference=next_reference(session, now.astimezone(self.tz).year),
            status=(NeedStatus.AWAITING_INFO if missing else NeedStatus.SUBMITTED).value,
            channel="email", theme=theme or "autre", urgency="none",
            firm_name=(facts.firm_name or mail.from_name or None),
            siret=facts.siret, description=(mail.text or mail.subject)[:DESCRIPTION_MAX],
            contact_method="email", contact_value=mail.from_addr.lower(),
            commune_insee=commune.insee if commune else None,
            commune_name=commune.name if commune else None,
            epci_siren=commune.epci_siren if commune else None,
            epci_name=commune.epci_name if commune else None,
            territory_id=territory.id if territory else None,
            reply_token=new_reply_token(), missing=missing or None,
            # Writing to the territory's address is asking to be helped; the reply says
            # who sees the data and how to have it erased.
            consent_at=now, created_at=now, updated_at=now)
        session.add(need)
        session.flush()
        assert need.id is not None
        record_created(session, need, actor=FIRM, now=now)
        kept = self._attachments(session, need, mail, now)
        partners: list[str] = []
        announce: list[tuple[str, Message]] = []
        if not missing:
            routed = self.routing.route_new_need(session, need, now)
            partners, announce = routed.partner_names, routed.animator_messages
        elif territory is not None:
            incomplete = t("animator.email_new_need_incomplete", reference=need.reference,
                           sender=mail.from_addr, missing=", ".join(
                               label(f"animator.email_missing_{m}") for m in missing))
            announce = [(c, Message(incomplete)) for c in animator_chats(session, territory)]
        if self.notices is not None:
            # A stranger's email: at once if first of the period, else in a grouped notice.
            self.notices.announce(session, need, announce, now=now)
        else:
            for chat, message in announce:
                outbox.enqueue(session, channel="telegram", recipient=chat,
                               messages=[message], now=now, claimed=False)
        self._reply(session, need, mail, kind="new", partners=partners, kept=kept,
                    cards_for=body, now=now)
        return need

    def _commune(self, hint: str | None, postcode: str | None,
                 text: str = "") -> Commune | None:
        for query in (hint, postcode):
            if not query:
                continue
            found = self.geography.resolve(query, limit=5)
            if found.status == "found":
                return found.communes[0]
        return self._named_commune(text) if text else None

    def _named_commune(self, text: str) -> Commune | None:
        """A commune written out in the text ("notre atelier de Paray-le-Monial").

        Only exact names count (no typo repair here), and only names that cannot be an
        ordinary word: compound names, or a capitalised word after "à", "de", "sur"...
        """
        tried: set[str] = set()
        for match in _PLACE.finditer(text):
            name = match.group("name")
            if ("-" not in name and not match.group("prep")) or name in tried:
                continue
            # Each name is looked up once, and only so many: a hostile text is long.
            tried.add(name)
            if len(tried) > _PLACE_LOOKUPS:
                break
            found = self.geography.resolve(name, limit=5, fuzzy=False)
            if found.status == "found" and normalize_name(found.communes[0].name) == (
                    normalize_name(name)):
                return found.communes[0]
        return None

    def _route(self, session: Session, need: Need, now: datetime) -> list[str]:
        routed = self.routing.route_new_need(session, need, now)
        for chat, message in routed.animator_messages:
            outbox.enqueue(session, channel="telegram", recipient=chat, messages=[message],
                           now=now, claimed=False)
        return routed.partner_names

    # --- a firm's answer --------------------------------------------------------------------
    def _firm_reply(self, session: Session, need: Need, mail: IncomingEmail, *,
                    now: datetime) -> None:
        # Completing a need routes it: only a verified email to its reply address may.
        refused = (state_change_refusal(need, mail) if need.missing
                   else None if mail.verified else UNVERIFIED)
        self._note(session, need, mail, "firm", now,
                   forward=not need.missing or refused is not None, refused=refused)
        kept = self._attachments(session, need, mail, now)
        if not need.missing or refused is not None:
            return  # passed on to the animator; no automatic answer to a conversation
        missing = list(need.missing)
        if "commune" in missing:
            facts = mail.facts or extract_fields(mail.text, geography=self.geography)
            commune = self._commune(facts.commune_hint or mail.text.strip()[:60],
                                    facts.postcode, mail.text)
            if commune is not None:
                territory = self.territories.for_epci(commune.epci_siren)
                need.commune_insee, need.commune_name = commune.insee, commune.name
                need.epci_siren, need.epci_name = commune.epci_siren, commune.epci_name
                need.territory_id = territory.id if territory else None
                missing.remove("commune")
        if "theme" in missing:
            theme = guess_theme(mail.text, None) or guess_theme(mail.text, self.questions)
            if theme is not None:
                need.theme = theme
                missing.remove("theme")
        need.missing = missing or None
        need.updated_at = now
        session.add(need)
        partners: list[str] = []
        if not missing:
            change_status(session, need, NeedStatus.SUBMITTED, actor=FIRM, now=now,
                          note="complétée par e-mail")
            partners = self._route(session, need, now)
        self._reply(session, need, mail, kind="update", partners=partners, kept=kept,
                    cards_for=None, now=now)

    def _ask_erase(self, session: Session, need: Need, mail: IncomingEmail, *,
                   now: datetime) -> None:
        """"Supprimer mes données": ask the address on file to confirm (mail_erasure)."""
        token = ask_confirmation(session, need, now=now)
        if token is None:
            log.info("email %s: an erasure confirmation is already pending for need %s",
                     mail.inbound_id, need.id)
            return
        # To the address on file, never to a From: that differs; nothing of the request
        # (name, subject) in it: the request may be forged.
        assert need.contact_value is not None
        address = need.contact_value.strip().lower()
        self._reply(session, need, replace(mail, from_addr=address, from_name="",
                                           subject=label("firm.email_erase_confirm_subject")),
                    kind="erase_confirm", partners=[], kept=(), cards_for=None, now=now,
                    reply_token=token)

    def _erase(self, session: Session, need: Need, mail: IncomingEmail, *,
               now: datetime) -> None:
        """The erasure confirmed: erase the address on file everywhere, then say so."""
        address = (need.contact_value or mail.from_addr).strip().lower()
        erase_person(session, email=address, now=now)
        # The confirmation carries nothing of theirs but the address it goes to: no name,
        # and not their subject line (it may name the firm).
        self._reply(session, need, replace(mail, from_addr=address, from_name="", subject=""),
                    kind="erased", partners=[], kept=(), cards_for=None, now=now)

    # --- a partner's reply ------------------------------------------------------------------
    def _partner_reply(self, session: Session, need: Need, mail: IncomingEmail, *,
                       now: datetime) -> None:
        note = self._note(session, need, mail, "partner", now)
        note.attachment = email_files(mail.attachments, cut=mail.truncated)
        self._attachments(session, need, mail, now)
        routing = session.exec(select(NeedRouting).where(
            NeedRouting.need_id == need.id,
            NeedRouting.partner_email == mail.from_addr.lower())).first()
        if routing is None:  # case differences in the directory
            routing = next(r for r in session.exec(select(NeedRouting).where(
                NeedRouting.need_id == need.id)) if r.partner_email.lower()
                == mail.from_addr.lower())
        verdict = mail.verdict or classify_reply(mail.text)
        territory = self.territories.get(need.territory_id or "")
        chats = animator_chats(session, territory) if territory else []
        name = routing.partner_name
        refused = state_change_refusal(need, mail)
        if refused is not None:
            # Possibly forged: the animator reads it and decides, the need stays as it is.
            message = Message(t("animator.email_partner_unverified", partner=name,
                                reference=need.reference, text=_excerpt(mail.text),
                                why=label(f"animator.email_unverified_{refused}")),
                              _verdict_buttons(f"{need.id}:{routing.id}"))
        elif verdict.kind == ReplyKind.ACK:
            acknowledge(session, need, routing, actor=partner(routing.partner_id), now=now)
            message = Message(t("animator.email_partner_ack", partner=name,
                                reference=need.reference, cue=verdict.reason))
        elif verdict.kind == ReplyKind.REFUSED:
            decline(session, routing)
            message = Message(t("animator.email_partner_refused", partner=name,
                                reference=need.reference, cue=verdict.reason),
                              ((Button(label("animator.email_btn_reassign"),
                                       f"ani:re:{need.id}"),),))
        else:
            message = Message(t("animator.email_partner_unsure", partner=name,
                                reference=need.reference, text=_excerpt(mail.text)),
                              _verdict_buttons(f"{need.id}:{routing.id}"))
        if refused is None:
            # Only a verified email to the need's reply address may reach the firm.
            message = self._relay_partner(session, need, routing, note, mail, message,
                                          unsure=verdict.kind not in (ReplyKind.ACK,
                                                                      ReplyKind.REFUSED),
                                          now=now)
        for chat in chats:
            outbox.enqueue(session, channel="telegram", recipient=chat, messages=[message],
                           now=now, claimed=False)

    def _relay_partner(self, session: Session, need: Need, routing: NeedRouting,
                       note: NeedMessage, mail: IncomingEmail, notice: Message, *,
                       unsure: bool, now: datetime) -> Message:
        """A firm on Telegram: the partner's message goes to it, directly or by the animator.

        Only an email sent to the need's reply address (its unguessable token) is relayed:
        the partner's address in From: proves nothing by itself.
        """
        relay = self.relay
        has_content = bool(mail.text.strip() or note.attachment)
        if relay is None or not has_content or need.reply_token not in mail.tokens or \
                not relay.firm_on_telegram(need):
            return notice
        text = notice.text
        if not unsure and mail.text.strip():
            # The ack / refusal notice names a cue only: the animator reads the message too.
            text = text + t("animator.relay_partner_text", text=_excerpt(mail.text))
        if routing.relay_direct == "accepted":
            session.flush()  # the note's id, and the files kept, for the firm's messages
            relay.partner_to_firm(session, need, routing, note, now=now, claim=False)
            return Message(text + t("animator.relay_partner_went_direct",
                                    firm=need.firm_name
                                    or label("animator.relay_unnamed_firm")),
                           notice.buttons)
        session.flush()
        forward = (Button(label("animator.btn_relay_forward"), f"rl:fw:{note.id}"),)
        return Message(text, (*notice.buttons, forward))

    # --- shared -----------------------------------------------------------------------------
    def _note(self, session: Session, need: Need, mail: IncomingEmail, kind: str,
              now: datetime, *, forward: bool = False,
              refused: str | None = None) -> NeedMessage:
        assert need.id is not None
        note = NeedMessage(need_id=need.id, inbound_id=mail.inbound_id, author_kind=kind,
                           author=mail.from_addr.lower(), text=mail.text[:20_000], at=now,
                           message_id=mail.message_id[:300] or None, verified=mail.verified)
        session.add(note)
        territory = self.territories.get(need.territory_id or "")
        if forward and territory is not None:
            # The firm's answer, relayed to the chef de projet with "Répondre": the answer
            # leaves by email again, from the need's address (services.relay).
            note.to_kind = "animator"
            wrote = t("animator.email_firm_message", firm=need.firm_name or mail.from_addr,
                      reference=need.reference, text=_excerpt(mail.text))
            if refused is not None:
                wrote = t("animator.email_firm_unverified", firm=need.firm_name or mail.from_addr,
                          reference=need.reference, text=_excerpt(mail.text),
                          why=label(f"animator.email_unverified_{refused}"))
            answer = ((Button(label("common.btn_relay_answer"), f"rl:r:{need.id}"),),)
            for chat in recipients(session, territory, need):
                outbox.enqueue(session, channel="telegram", recipient=chat,
                               messages=[Message(wrote, answer)], now=now, claimed=False)
        return note

    def _attachments(self, session: Session, need: Need, mail: IncomingEmail,
                     now: datetime) -> tuple[str, ...]:
        assert need.id is not None
        kept = []
        if mail.oversized:
            return ()
        for filename, content_type, size, data in mail.attachments:
            if data is None:
                continue
            session.add(NeedAttachment(need_id=need.id, inbound_id=mail.inbound_id,
                                       filename=filename[:120], content_type=content_type[:100],
                                       size=size, data=data, at=now))
            kept.append(filename)
        return tuple(kept)

    def _reply(self, session: Session, need: Need, mail: IncomingEmail, *, kind: str,
               partners: list[str], kept: tuple[str, ...], cards_for: str | None,
               now: datetime, reply_token: str | None = None) -> None:
        """The one automatic answer to this email, through the outbox (if the limits allow).

        Replies come back to the need's address, or to `reply_token`'s (a confirmation).
        """
        assert need.reply_token is not None
        if self.limits is not None and not self.limits.may_reply(
                session, address=mail.from_addr, kind=kind, need_id=need.id, now=now):
            log.info("no automatic reply to email %s: %s replies a day at most",
                     mail.inbound_id, self.limits.replies_per_day)
            return
        territory: Territory | None = self.territories.get(need.territory_id or "")
        cards: list[tuple[str, str, str]] = []
        if cards_for and self.questions is not None:
            answer = self.questions.ask(cards_for[:500])
            if not answer.out_of_scope:
                for hit in answer.hits[:3]:
                    card = hit.card
                    cards.append((card.title, card.summary,
                                  card.sources[0] if card.sources else ""))
        if kind in {"erased", "erase_confirm"}:
            partners, kept, cards = [], (), []
        view = FirmReplyView(
            kind=kind, reference=need.reference,
            theme_label=theme_label(need.theme) if "theme" not in (need.missing or []) else None,
            commune=need.commune_name, missing=tuple(
                label(f"firm.email_missing_{m}") for m in (need.missing or [])),
            partners=tuple(partners),
            animator_name=territory.animators[0].name if territory else None,
            territory_name=territory.name if territory else None,
            cards=tuple(cards), attachments=kept, oversized=mail.oversized,
            max_size=t("firm.email_max_size",
                       megabytes=self.max_bytes // (1024 * 1024)).plain())
        draft = firm_reply_email(
            view=view, to_email=mail.from_addr, to_name=mail.from_name, subject=mail.subject,
            in_reply_to=mail.message_id, references=mail.references,
            reply_to=reply_address(self.reply_local, reply_token or need.reply_token,
                                   self.mail_domain),
            mail_domain=self.mail_domain)
        outbox.enqueue_payload(
            session, channel="email", recipient=mail.from_addr, now=now,
            payload={"email": draft.to_payload(), "need_id": need.id,
                     "territory_id": need.territory_id, "key": draft.message_id.strip("<>")})


# A capitalised name, compound or not, optionally after a preposition of place.
_PLACE_LOOKUPS = 100
_PLACE = re.compile(
    r"(?:(?P<prep>\b(?:à|a|de|d'|sur|au|aux|près de|proche de)\s+))?"
    r"(?P<name>(?:L[ea]s? |L')?[A-ZÀ-Ý][\w'’]+(?:-[\w'’]+)*)")

# "supprimer mes données", "effacer mes données", with or without accents.
_ERASE = re.compile(r"\b(?:supprimer|effacer)\s+(?:toutes\s+)?mes\s+donn[ée]es\b",
                    re.IGNORECASE)


def _verdict_buttons(key: str) -> tuple[tuple[Button, ...], ...]:
    """The animator says what a partner's reply was (bot.services.animator, "ani:p…")."""
    return ((Button(label("animator.btn_partner_ack"), f"ani:pack:{key}"),
             Button(label("animator.btn_partner_refused"), f"ani:pref:{key}")),
            (Button(label("animator.btn_partner_neither"), f"ani:pnone:{key}"),))


def _excerpt(text: str) -> str:
    text = re.sub(r"\n{3,}", "\n\n", text.strip())
    return text if len(text) <= FORWARD_MAX else text[: FORWARD_MAX - 1] + "…"
