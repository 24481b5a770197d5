"""Questions to the knowledge base: answer from the cards, or say plainly we do not know."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from sqlmodel import Session

from bot import texts
from bot.catalogue import t
from bot.messages import Message
from bot.services.types import Button
from knowledge.cards import Card
from knowledge.retrieval import Answer, KnowledgeBase
from knowledge.taxonomy import PARTNER_KINDS
from storage.models import KbQuery

__all__ = ["KbAction", "QuestionService", "looks_like_question"]

PARTNER_KINDS_FILE = (
    Path(__file__).resolve().parents[2] / "knowledge" / "data" / "partner_kinds.yaml"
)
MAX_TEXT = 3500  # well under Telegram's 4,096 characters, entities included


@cache
def _partner_kinds() -> dict[str, dict[str, str]]:
    try:
        rows = yaml.safe_load(PARTNER_KINDS_FILE.read_text(encoding="utf-8")) or []
    except OSError:
        return {}
    return {row["kind"]: row for row in rows if isinstance(row, dict) and "kind" in row}


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
        secret: str | None = None,
    ) -> None:
        self.kb = kb
        # Signs the question ids put in buttons, bound to the chat that asked: forged
        # button data cannot act on another person's question. Without a secret (the
        # terminal try-out), one per process.
        self._key = hashlib.sha256(b"relais-kb-buttons:" + (
            secret.encode() if secret else secrets.token_bytes(32))).digest()
        self.tz = tz
        self.clock = clock or (lambda: datetime.now(tz))

    # --- asking --------------------------------------------------------------------------
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
        """
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
            return [Message.legacy(texts.KB_OUT_OF_SCOPE,
                             ((Button(texts.BTN_KB_FORWARD, f"kb:f:{ref}"),),))]
        assert best is not None
        if outcome == "uncertain":
            buttons = [
                Button(_short(hit.card.title), f"kb:s:{ref}:{hit.card.id}")
                for hit in result.hits[:3]
            ]
            if forward:
                buttons.append(Button(texts.BTN_KB_FORWARD, f"kb:f:{ref}"))
            return [Message.legacy(texts.KB_NOT_SURE, tuple((b,) for b in buttons))]
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
        lead: list[str] = []
        shown = card
        if not card.is_current(today) and card.ends is not None:
            lead.append(f"<b>{texts.esc(card.title)}</b>")
            lead.append(texts.KB_ENDED.format(date=_fr_date(card.ends)))
            successor = self.kb.get(card.successor) if card.successor else None
            if successor is not None:
                lead.append(texts.KB_ENDED_SUCCESSOR.format(title=texts.esc(successor.title)))
                lead.append("")
                shown = successor
        parts = [*lead, f"<b>{texts.esc(shown.title)}</b>", texts.esc(shown.summary)]
        if shown.conditions:
            parts.append("")
            parts.append(texts.KB_CONDITIONS_TITLE)
            parts.extend(f"• {texts.esc(c)}" for c in shown.conditions[:4])
        parts.append("")
        parts.append(f"<i>{texts.KB_VALID_AS_OF.format(date=_fr_date(shown.valid_as_of))}</i>")
        rows: list[tuple[Button, ...]] = [
            (Button(texts.BTN_KB_DETAILS, f"kb:d:{shown.id}"),
             Button(texts.BTN_KB_CONTACTS, f"kb:c:{shown.id}")),
        ]
        second = [Button(texts.BTN_KB_APPLY, f"kb:a:{shown.id}")]
        if query_ref is not None:
            second.insert(0, Button(texts.BTN_KB_NOT_THAT, f"kb:n:{query_ref}"))
        rows.append(tuple(second))
        return Message.legacy(_fit("\n".join(parts)), tuple(rows))

    # --- buttons -------------------------------------------------------------------------
    def on_button(self, session: Session, value: str, owner: int | None = None, *,
                  forward: bool = True) -> KbAction:
        """Handle a `kb:…` button (the part after `kb:`) pressed in chat `owner`.

        `forward=False`: no offer to pass the question on to the animators, and no forwarding.
        """
        action, _, rest = value.partition(":")
        if action == "f" and not forward:
            return KbAction(toast=texts.STALE_BUTTON)
        if action in {"n", "f"}:
            return self._on_query_feedback(session, action, rest, owner, forward=forward)
        if action == "s":
            ref, _, card_id = rest.partition(":")
            card = self.kb.get(card_id)
            if card is None:
                return KbAction(toast=texts.KB_UNKNOWN_CARD)
            row = self._query(session, ref, owner)
            if row is not None:
                row.chosen_card_id = card_id
                session.add(row)
            return KbAction([self._card_message(card, ref if row else None)])
        card = self.kb.get(rest)
        if card is None:
            return KbAction(toast=texts.KB_UNKNOWN_CARD)
        if action == "d":
            return KbAction([Message.legacy(self._details(card),
                                      ((Button(texts.BTN_KB_CONTACTS, f"kb:c:{card.id}"),
                                        Button(texts.BTN_KB_APPLY, f"kb:a:{card.id}")),))])
        if action == "c":
            return KbAction([Message.legacy(self._contacts(card),
                                      ((Button(texts.BTN_KB_APPLY, f"kb:a:{card.id}"),),))])
        if action == "a":
            theme = card.themes[0] if card.themes else "autre"
            return KbAction(apply_theme=theme)
        return KbAction(toast=texts.STALE_BUTTON)

    def _on_query_feedback(self, session: Session, action: str, ref: str,
                           owner: int | None, *, forward: bool = True) -> KbAction:
        row = self._query(session, ref, owner)
        if row is None:
            return KbAction(toast=texts.STALE_BUTTON)
        if action == "n":
            row.outcome = "rejected"
            session.add(row)
            answer = self.kb.ask(row.text)
            others = [h for h in answer.hits[1:4] if h.card.id != row.best_card_id]
            buttons = [Button(_short(h.card.title), f"kb:s:{ref}:{h.card.id}") for h in others]
            if forward:
                buttons.append(Button(texts.BTN_KB_FORWARD, f"kb:f:{ref}"))
            lead = texts.KB_REJECTED + ("\n" + texts.KB_OTHER_CHOICES if others else "")
            return KbAction([Message.legacy(lead, tuple((b,) for b in buttons))])
        row.outcome = "forwarded"
        session.add(row)
        return KbAction([Message.legacy(texts.KB_FORWARDED)], forward_text=row.text)

    def _details(self, card: Card) -> str:
        parts = [f"<b>{texts.esc(card.title)}</b>", "",
                 texts.KB_DETAILS_WHO, texts.esc(card.for_whom), "",
                 texts.KB_DETAILS_WHAT, texts.esc(card.what_you_get), "",
                 texts.KB_DETAILS_HOW, texts.esc(card.how_to_apply)]
        if card.uncertain:
            parts += ["", texts.KB_DETAILS_UNCERTAIN,
                      *(f"• {texts.esc(u)}" for u in card.uncertain)]
        if card.sources:
            parts += ["", texts.KB_DETAILS_SOURCES,
                      *(f'<a href="{texts.esc_attr(u)}">{texts.esc(_host(u))}</a>'
                        for u in card.sources[:4])]
        parts += ["", f"<i>{texts.KB_VALID_AS_OF.format(date=_fr_date(card.valid_as_of))}</i>"]
        return _fit("\n".join(parts))

    def _contacts(self, card: Card) -> str:
        kinds = _partner_kinds()
        parts = [texts.KB_CONTACTS_TITLE.format(title=texts.esc(card.title))]
        for kind in card.contact:
            info = kinds.get(kind, {})
            label = info.get("label") or PARTNER_KINDS.get(kind, kind)
            line = f"• <b>{texts.esc(label)}</b>"
            if info.get("role"):
                line += f" : {texts.esc(info['role'])}"
            if info.get("website"):
                line += f" ({texts.esc(info['website'])})"
            parts.append(line)
        parts += ["", texts.KB_CONTACTS_ANIMATOR]
        return _fit("\n".join(parts))


def _short(title: str, limit: int = 60) -> str:
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


def _host(url: str) -> str:
    return url.split("//", 1)[-1].split("/", 1)[0]


def _fit(text: str) -> str:
    """Keep a message well under Telegram's limit (cards are editable by hand)."""
    if len(text) <= MAX_TEXT:
        return text
    # Cut on a line boundary so no HTML tag is left open (each line is self-contained).
    lines, size = [], 0
    for line in text.split("\n"):
        if size + len(line) + 1 > MAX_TEXT - 2:
            break
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) + "\n…"
