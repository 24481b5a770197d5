"""Questions to the knowledge base: answer from the cards, or say plainly we do not know."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from sqlmodel import Session

from bot.catalogue import entries, label, t
from bot.messages import Message, Paragraph, Span, Text
from bot.services.limits import ChatLimits, Verdict
from bot.services.types import Button
from knowledge.cards import Card
from knowledge.retrieval import Answer, KnowledgeBase
from knowledge.small_talk import small_talk
from knowledge.taxonomy import PARTNER_KINDS
from storage.models import KbQuery

__all__ = ["KbAction", "QuestionService", "looks_like_question"]

PARTNER_KINDS_FILE = (
    Path(__file__).resolve().parents[2] / "knowledge" / "data" / "partner_kinds.yaml"
)


@cache
def _partner_websites() -> dict[str, str]:
    """Each partner kind's website (data; what the firm reads of a kind is in the catalogue)."""
    try:
        data = yaml.safe_load(PARTNER_KINDS_FILE.read_text(encoding="utf-8")) or {}
    except OSError:
        return {}
    return {kind: url for kind, url in data.items() if isinstance(url, str) and url}


# What a person reads for each kind of small talk (knowledge/small_talk.py).
SMALL_TALK_REPLIES: dict[str, str] = {
    "greeting": "firm.small_talk_greeting",
    "thanks": "firm.small_talk_thanks",
    "goodbye": "firm.small_talk_goodbye",
    "ack": "firm.small_talk_ack",
    "how_are_you": "firm.small_talk_how_are_you",
    "who_are_you": "firm.small_talk_who_are_you",
}


def looks_like_question(text: str) -> bool:
    """Whether typed text is a question rather than an answer to a form field."""
    return text.rstrip().endswith("?")


@dataclass(slots=True)
class KbAction:
    """What a knowledge-base button asks of the conversation layer."""

    messages: list[Message] = field(default_factory=list)
    toast: str | None = None
    # "Déposer une demande": start the intake with this theme.
    apply_theme: str | None = None
    forward_text: str | None = None


def _fr_date(value: date) -> str:
    return value.strftime("%d/%m/%Y")


class QuestionService:
    """Answers questions from the cards and records them for the animators."""

    def __init__(
        self, kb: KnowledgeBase, *, tz: ZoneInfo, clock: Callable[[], datetime] | None = None,
        secret: str | None = None, limits: ChatLimits | None = None,
    ) -> None:
        self.kb = kb
        # Questions a person may ask a minute (RELAIS_LIMIT_QUESTIONS_PER_MINUTE).
        self.limits = limits
        # Signs the question ids put in buttons, bound to the chat that asked: forged
        # button data cannot act on another person's question. Without a secret (the
        # terminal try-out), one per process.
        self._key = hashlib.sha256(b"relais-kb-buttons:" + (
            secret.encode() if secret else secrets.token_bytes(32))).digest()
        self.tz = tz
        self.clock = clock or (lambda: datetime.now(tz))

    # --- asking --------------------------------------------------------------------------
    def over_limit(self, person: int, now: datetime) -> list[Message] | None:
        """None when `person` may ask one more question now; else what to say (maybe nothing).

        Checked before the retrieval, which is the costly part of a question.
        """
        if self.limits is None:
            return None
        verdict = self.limits.question(person, now)
        if verdict is Verdict.OK:
            return None
        return [Message(t("firm.limits_questions"))] if verdict is Verdict.NOTICE else []

    def ask(self, query: str) -> Answer:
        """Retrieval only (no recording)."""
        return self.kb.ask(query)

    def answer(
        self,
        session: Session,
        text: str,
        *,
        channel: str,
        now: datetime,
        answer: Answer | None = None,
        owner: int | None = None,
        forward: bool = True,
    ) -> list[Message]:
        """Answer a question; record it; return the messages to send.

        `forward=False` leaves out the offer to pass the question on to the animators (for
        an animator's own questions).

        Politeness alone (« bonjour », « merci beaucoup », « ok super ») gets a short human
        answer, never « pas de fiche », and is not recorded as a question.
        """
        chatter = small_talk(text)
        if chatter is not None:
            return [Message(t(SMALL_TALK_REPLIES[chatter]))]
        result = answer or self.kb.ask(text)
        best = result.best
        outcome = (
            "out_of_scope" if result.out_of_scope or best is None
            else "answered" if result.confident else "uncertain"
        )
        row = KbQuery(
            channel=channel, text=text[:2000], outcome=outcome, asked_at=now,
            best_card_id=best.card.id if best else None, score=best.score if best else 0.0,
            chat_id=owner,
        )
        session.add(row)
        session.flush()
        assert row.id is not None
        ref = self._ref(row.id, owner)
        if outcome == "out_of_scope":
            if not forward:
                return [Message(t("animator.kb_no_card"))]
            return [Message(t("firm.kb_out_of_scope"),
                            ((Button(label("firm.kb_btn_forward"), f"kb:f:{ref}"),),))]
        assert best is not None
        if outcome == "uncertain":
            buttons = [
                Button(_short(hit.card.title), f"kb:s:{ref}:{hit.card.id}")
                for hit in result.hits[:3]
            ]
            if forward:
                buttons.append(Button(label("firm.kb_btn_forward"), f"kb:f:{ref}"))
            return [Message(t("firm.kb_not_sure"), tuple((b,) for b in buttons))]
        return [self._card_message(best.card, ref)]

    def _ref(self, query_id: int, owner: int | None) -> str:
        """`<id>.<signature>`: the question id, signed for the chat it was asked in."""
        mac = hmac.new(self._key, f"{query_id}:{owner}".encode(), hashlib.sha256)
        return f"{query_id}.{mac.hexdigest()[:8]}"

    def _query(self, session: Session, ref: str, owner: int | None) -> KbQuery | None:
        """The question a button refers to, if its signature matches the presser's chat."""
        query_id, _, _sig = ref.partition(".")
        if not query_id.isdigit() or not hmac.compare_digest(ref, self._ref(int(query_id),
                                                                              owner)):
            return None
        return session.get(KbQuery, int(query_id))

    def _card_message(self, card: Card, query_ref: str | None) -> Message:
        today = self.clock().astimezone(self.tz).date()
        ends = None if card.is_current(today) else card.ends
        successor = self.kb.get(card.successor) if ends and card.successor else None
        shown = successor or card
        if successor is not None:
            assert ends is not None
            text = t("firm.kb_ended_successor", card_title=card.title, date=_fr_date(ends),
                     successor=successor.title)
            text += t("firm.kb_card", card_title=successor.title, summary=successor.summary)
        elif ends is not None:
            # No successor: the ended card is the one shown, its title once.
            text = t("firm.kb_ended", card_title=card.title, date=_fr_date(ends),
                     summary=card.summary)
        else:
            text = t("firm.kb_card", card_title=card.title, summary=card.summary)
        if shown.conditions:
            text += t("firm.kb_conditions", conditions=_bullets(shown.conditions[:4]))
        text += t("firm.kb_valid_as_of", date=_fr_date(shown.valid_as_of))
        rows: list[tuple[Button, ...]] = [
            (Button(label("firm.kb_btn_details"), f"kb:d:{shown.id}"),
             Button(label("firm.kb_btn_contacts"), f"kb:c:{shown.id}")),
        ]
        second = [Button(label("firm.kb_btn_apply"), f"kb:a:{shown.id}")]
        if query_ref is not None:
            second.insert(0, Button(label("firm.kb_btn_not_that"), f"kb:n:{query_ref}"))
        rows.append(tuple(second))
        return Message(text, tuple(rows))

    # --- buttons -------------------------------------------------------------------------
    def on_button(self, session: Session, value: str, owner: int | None = None, *,
                  forward: bool = True) -> KbAction:
        """Handle a `kb:…` button (the part after `kb:`) pressed in chat `owner`.

        `forward=False`: no offer to pass the question on to the animators, and no forwarding.
        """
        action, _, rest = value.partition(":")
        if action == "f" and not forward:
            return KbAction(toast=label("common.stale_button"))
        if action in {"n", "f"}:
            return self._on_query_feedback(session, action, rest, owner, forward=forward)
        if action == "s":
            ref, _, card_id = rest.partition(":")
            card = self.kb.get(card_id)
            if card is None:
                return KbAction(toast=label("firm.kb_unknown_card"))
            row = self._query(session, ref, owner)
            if row is not None:
                row.chosen_card_id = card_id
                session.add(row)
            return KbAction([self._card_message(card, ref if row else None)])
        card = self.kb.get(rest)
        if card is None:
            return KbAction(toast=label("firm.kb_unknown_card"))
        if action == "d":
            return KbAction([Message(_details(card),
                                     ((Button(label("firm.kb_btn_contacts"), f"kb:c:{card.id}"),
                                       Button(label("firm.kb_btn_apply"), f"kb:a:{card.id}")),))])
        if action == "c":
            return KbAction([Message(_contacts(card),
                                     ((Button(label("firm.kb_btn_apply"), f"kb:a:{card.id}"),),))])
        if action == "a":
            theme = card.themes[0] if card.themes else "autre"
            return KbAction(apply_theme=theme)
        return KbAction(toast=label("common.stale_button"))

    def _on_query_feedback(self, session: Session, action: str, ref: str,
                           owner: int | None, *, forward: bool = True) -> KbAction:
        row = self._query(session, ref, owner)
        if row is None:
            return KbAction(toast=label("common.stale_button"))
        if action == "n":
            row.outcome = "rejected"
            session.add(row)
            answer = self.kb.ask(row.text)
            others = [h for h in answer.hits[1:4] if h.card.id != row.best_card_id]
            buttons = [Button(_short(h.card.title), f"kb:s:{ref}:{h.card.id}") for h in others]
            if forward:
                buttons.append(Button(label("firm.kb_btn_forward"), f"kb:f:{ref}"))
            lead = t("firm.kb_rejected_others" if others else "firm.kb_rejected")
            return KbAction([Message(lead, tuple((b,) for b in buttons))])
        if row.outcome == "forwarded":
            # Pressed again (the button stays on the message): the animators have it already.
            return KbAction(toast=label("firm.kb_already_forwarded"))
        row.outcome = "forwarded"
        session.add(row)
        return KbAction([Message(t("firm.kb_forwarded"))], forward_text=row.text)


def _details(card: Card) -> Text:
    """Who a programme is for, what it gives, how to apply, what to check, its sources."""
    text = t("firm.kb_details", card_title=card.title, for_whom=card.for_whom,
             what_you_get=card.what_you_get, how_to_apply=card.how_to_apply)
    if card.uncertain:
        text += t("firm.kb_details_uncertain", points=_bullets(card.uncertain))
    if card.sources:
        text += t("firm.kb_details_sources", links=_links(card.sources[:4]))
    return text + t("firm.kb_valid_as_of", date=_fr_date(card.valid_as_of))


def _contacts(card: Card) -> Text:
    """The kinds of partners a card names, each with what it does for the firm."""
    websites = _partner_websites()
    lines = Text()
    for kind in card.contact:
        key = f"firm.partner_kind_{kind}"
        if key not in entries():
            # A kind the catalogue does not describe yet: its name only.
            lines += t("firm.kb_contact_name_only", kind_name=PARTNER_KINDS.get(kind, kind))
            continue
        role = t(f"{key}_role")
        if kind in websites:
            lines += t("firm.kb_contact_website", kind_name=label(key), role=role,
                       website=websites[kind])
        else:
            lines += t("firm.kb_contact", kind_name=label(key), role=role)
    return t("firm.kb_contacts", card_title=card.title, contacts=lines) \
        + t("firm.kb_contacts_animator")


def _bullets(items: Iterable[str]) -> str:
    """Lines of one paragraph, each after a bullet (a card's conditions, its doubts)."""
    return "\n".join(f"• {item}" for item in items)


def _links(urls: Iterable[str]) -> Text:
    """One link a line, each named by its host."""
    spans: list[Span] = []
    for url in urls:
        if spans:
            spans.append(Span("\n"))
        spans.append(Span(_host(url), "link", url))
    return Text((Paragraph(tuple(spans)),))


def _short(title: str, limit: int = 60) -> str:
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


def _host(url: str) -> str:
    return url.split("//", 1)[-1].split("/", 1)[0]
