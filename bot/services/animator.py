"""What animators do on Telegram: list and open needs, take, reassign, close.

Every command and button checks that the person is an animator of the need's territory;
anyone else gets a polite refusal and learns nothing about the need.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.catalogue import entries, label, t
from bot.catalogue.labels import status_label
from bot.messages import Bullets, Message, Text
from bot.services import lifecycle
from bot.services.animators import animator_of, territories_of
from bot.services.animators import names as animator_names
from bot.services.followup import FollowUpService
from bot.services.lifecycle import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    Actor,
    IllegalTransition,
    acknowledge,
    change_status,
    decline,
)
from bot.services.routing import RoutingService, animator_card
from bot.services.types import Button, Reply
from knowledge.territories import Territory, TerritoryDirectory
from storage.models import Need, NeedEvent, NeedMessage, NeedRouting, NeedStatus

__all__ = ["AnimatorService"]

PAGE_SIZE = 8
# Messages of a need shown in its history (the most recent ones).
HISTORY_MESSAGES = 15
# Why a need is closed: its status and the catalogue key of the button (and history note).
CLOSE_REASONS = {
    "helped": (NeedStatus.CLOSED_HELPED, "animator.btn_close_helped"),
    "not_helped": (NeedStatus.CLOSED_NOT_HELPED, "animator.btn_close_not_helped"),
    "cancelled": (NeedStatus.CANCELLED, "animator.btn_close_cancelled"),
}


class AnimatorService:
    """Animator commands and buttons, with access control on every one."""

    def __init__(self, territories: TerritoryDirectory, routing: RoutingService,
                 followup: FollowUpService, *, tz: ZoneInfo) -> None:
        self.territories = territories
        self.routing = routing
        # Asks the firm's satisfaction when a need is closed as helped.
        self.followup = followup
        self.tz = tz

    def territories_of(self, session: Session, user_id: int) -> list[Territory]:
        """Territories where this Telegram user is an animator (file or invitation)."""
        return territories_of(session, self.territories, user_id)

    def _animator_name(self, session: Session, user_id: int) -> str:
        for territory in self.territories_of(session, user_id):
            animator = animator_of(session, territory, user_id)
            if animator is not None:
                return animator.name
        return str(user_id)

    def _allowed_need(self, session: Session, user_id: int, need_id: int) -> Need | None:
        need = session.get(Need, need_id)
        allowed = {t.id for t in self.territories_of(session, user_id)}
        if need is None or need.territory_id not in allowed:
            return None
        return need

    # --- commands --------------------------------------------------------------------------
    def list_open(self, session: Session, user_id: int, page: int = 1) -> Reply:
        """`/demandes`: open needs of the animator's territories, newest first, paginated."""
        territory_ids = [t.id for t in self.territories_of(session, user_id)]
        if not territory_ids:
            return Reply([Message(t("animator.animators_only"))])
        where = (col(Need.territory_id).in_(territory_ids),
                 col(Need.status).in_([s.value for s in OPEN_STATUSES]))
        total = session.exec(select(func.count()).select_from(Need).where(*where)).one()
        if total == 0:
            return Reply([Message(t("animator.open_needs_empty"))])
        pages = (total + PAGE_SIZE - 1) // PAGE_SIZE
        page = min(max(page, 1), pages)
        needs = session.exec(
            select(Need).where(*where).order_by(col(Need.id).desc())
            .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
        ).all()
        rows: list[tuple[Button, ...]] = []
        for need in needs:
            item = t("animator.open_needs_item", reference=need.reference,
                     firm=need.firm_name or "—", commune=need.commune_name or "—").plain()
            rows.append((Button(item[:60], f"ani:show:{need.id}"),))
        nav = []
        if page > 1:
            nav.append(Button(label("animator.btn_previous"), f"ani:page:{page - 1}"))
        if page < pages:
            nav.append(Button(label("animator.btn_next"), f"ani:page:{page + 1}"))
        if nav:
            rows.append(tuple(nav))
        title = t("animator.open_needs_title", count=total, page=page, pages=pages)
        return Reply([Message(title, tuple(rows))])

    def show(self, session: Session, user_id: int, reference: str) -> Reply:
        """`/demande TI-…`: one need of the animator's territory, with its history."""
        if not self.territories_of(session, user_id):
            return Reply([Message(t("animator.animators_only"))])
        reference = reference.strip().upper()
        if not reference:
            return Reply([Message(t("animator.need_usage"))])
        need = session.exec(select(Need).where(Need.reference == reference)).first()
        if need is None or need.id is None or self._allowed_need(session, user_id, need.id) is None:
            # Same answer whether it does not exist or belongs to another territory.
            return Reply([Message(t("animator.need_not_found", reference=reference[:20]))])
        return Reply([self._card_with_history(session, need)])

    def _history_message(self, need: Need, message: NeedMessage) -> Text:
        """One message of the need's history: who wrote it, and what (or which file)."""
        date = message.at.astimezone(self.tz).strftime("%d/%m/%Y %H:%M")
        if message.author_kind == "firm":
            who = need.firm_name or label("common.history_who_firm")
        else:
            who = message.author or label(f"common.history_who_{message.author_kind}")
        if message.verified is False:
            who = f"{who} ({label('animator.history_unverified')})"
        if message.attachment and not message.text:
            return t("animator.history_file", date=date, who=who,
                     file=str(message.attachment.get("name") or ""))
        return t("animator.history_message", date=date, who=who, text=_quote(message.text))

    def _card_with_history(self, session: Session, need: Need) -> Message:
        routings = list(session.exec(select(NeedRouting).where(NeedRouting.need_id == need.id)))
        events = session.exec(
            select(NeedEvent).where(NeedEvent.need_id == need.id).order_by(col(NeedEvent.id))
        ).all()
        territory = self.territories.get(need.territory_id or "")
        animators = animator_names(session, territory) if territory else {}
        card = animator_card(need, routings, fallback=not routings, tz=self.tz,
                             taken_by=_taken_by(events, animators))
        partners = {r.partner_id: r.partner_name for r in routings}
        dated: list[tuple[datetime, int, Text]] = []
        for event in events:
            date = event.at.astimezone(self.tz).strftime("%d/%m/%Y %H:%M")
            what = lifecycle.history_label(event, animators=animators, partners=partners)
            dated.append((event.at, 0, t("animator.history_line", date=date, status=what)))
        # The messages exchanged about the need (relayed, or received by email), last ones.
        messages = session.exec(
            select(NeedMessage).where(NeedMessage.need_id == need.id)
            .order_by(col(NeedMessage.id).desc()).limit(HISTORY_MESSAGES)
        ).all()
        for message in messages:
            dated.append((message.at, 1, self._history_message(need, message)))
        lines = [text.inline() for _, _, text in sorted(dated, key=lambda d: (d[0], d[1]))]
        history = t("animator.history_title") + Text((Bullets(tuple(lines)),)) \
            if lines else Text()
        return Message(card.text + history, card.buttons)

    # --- buttons ---------------------------------------------------------------------------
    def on_button(self, session: Session, user_id: int, value: str, *, now: datetime,
                  message_id: int | None) -> Reply:
        """Handle an `ani:…` button after checking the territory."""
        action, _, rest = value.partition(":")
        if action == "page":
            return self.list_open(session, user_id, int(rest) if rest.isdigit() else 1)
        need_part, _, arg = rest.partition(":")
        if not self.territories_of(session, user_id):
            return Reply(toast=label("animator.animators_only"))
        need = self._allowed_need(session, user_id, int(need_part)) if need_part.isdigit() else None
        if need is None:
            return Reply(toast=label("animator.not_your_territory"))
        who = self._animator_name(session, user_id)
        actor = lifecycle.animator(user_id, who)
        if action == "show":
            return Reply([self._card_with_history(session, need)])
        if action == "take":
            return self._take(session, need, who, actor, now)
        if action == "close":
            buttons = tuple((Button(label(button), f"ani:closed:{need.id}:{key}"),)
                            for key, (_status, button) in CLOSE_REASONS.items())
            return Reply([Message(
                t("animator.ask_close_reason", reference=need.reference), buttons)])
        if action == "closed" and arg in CLOSE_REASONS:
            return self._close(session, need, arg, actor, now)
        if action == "keep":
            return Reply([Message(t(
                "animator.kept_open", reference=need.reference,
                days=self.followup.stale_days))])
        if action == "re":
            return self._reassign_menu(session, need)
        if action == "rp":
            return self._reassign_to(session, need, arg, actor, now)
        if action in {"pack", "pref", "pnone"} and arg.isdigit():
            return self._partner_verdict(session, need, action, int(arg), actor, now)
        return Reply(toast=label("common.stale_button"))

    def _take(self, session: Session, need: Need, who: str, actor: Actor,
              now: datetime) -> Reply:
        if need.status == NeedStatus.IN_PROGRESS or need.status in CLOSED_STATUSES:
            return Reply(toast=status_label(need.status))
        change_status(session, need, NeedStatus.IN_PROGRESS, actor=actor, now=now)
        result = Reply([Message(t("animator.taken_by", who=who, reference=need.reference))])
        if need.telegram_chat_id is not None:
            how = f"firm.contact_how_{need.contact_method}"
            news = (t("firm.taken", who=who, reference=need.reference, contact=label(how))
                    if how in entries() else
                    t("firm.taken_no_contact", who=who, reference=need.reference))
            result.others.append((str(need.telegram_chat_id), Message(news)))
        return result

    def _close(self, session: Session, need: Need, key: str, actor: Actor,
               now: datetime) -> Reply:
        status, button = CLOSE_REASONS[key]
        reason = label(button)
        try:
            change_status(session, need, status, actor=actor, now=now, note=reason)
        except IllegalTransition:
            return Reply(toast=status_label(need.status))
        result = Reply([Message(t("animator.closed_as", reference=need.reference,
                                  reason=reason))])
        question = None
        if key == "helped":
            question = self.followup.ask_satisfaction(session, need, now=now)
        if need.telegram_chat_id is not None:
            # The satisfaction question says the need is closed: the firm reads it once.
            result.others.append((str(need.telegram_chat_id), question or Message(
                t("firm.closed", reference=need.reference))))
        return result

    def _partner_verdict(self, session: Session, need: Need, action: str, routing_id: int,
                         actor: Actor, now: datetime) -> Reply:
        """The animator says what an unclear partner reply was."""
        routing = session.get(NeedRouting, routing_id)
        if routing is None or routing.need_id != need.id:
            return Reply(toast=label("common.stale_button"))
        if action == "pack":
            acknowledge(session, need, routing, actor=actor, now=now)
            key = "animator.partner_marked_ack"
        elif action == "pref":
            decline(session, routing)
            key = "animator.partner_marked_refused"
        else:
            key = "animator.partner_marked_neither"
        return Reply([Message(t(key, partner=routing.partner_name, reference=need.reference))])

    def _reassign_menu(self, session: Session, need: Need) -> Reply:
        territory = self.territories.get(need.territory_id or "")
        assert territory is not None
        routed = {r.partner_id for r in session.exec(
            select(NeedRouting).where(NeedRouting.need_id == need.id))}
        rows = [
            (Button(t("animator.reassign_routed_mark", partner=p.name[:50]).plain()
                    if p.id in routed else p.name[:50], f"ani:rp:{need.id}:{p.id}"),)
            for p in territory.partners
        ]
        return Reply([Message(
            t("animator.ask_reassign", reference=need.reference), tuple(rows))])

    def _reassign_to(self, session: Session, need: Need, partner_id: str, actor: Actor,
                     now: datetime) -> Reply:
        existing = session.exec(select(NeedRouting).where(
            NeedRouting.need_id == need.id, NeedRouting.partner_id == partner_id)).first()
        if existing is not None:
            return Reply(toast=label("animator.already_routed"))
        routing = self.routing.add_partner_manually(session, need, partner_id, actor=actor,
                                                    now=now)
        if routing is None:
            return Reply(toast=label("common.stale_button"))
        return Reply([Message(t("animator.reassigned", partner=routing.partner_name))])


def _quote(text: str, limit: int = 160) -> str:
    """A message's text on one line, cut for the history."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _taken_by(events: Sequence[NeedEvent], animators: dict[str, str]) -> str | None:
    """The name of the animator who last took the need, from its history."""
    for event in reversed(events):
        if event.to_status == NeedStatus.IN_PROGRESS.value:
            if not event.actor.startswith("animator"):
                return None
            ref = event.actor_ref or ""
            # Events older than the references (migration 0004) kept the animator's name.
            return animators.get(ref) or (ref if ref and not ref.startswith("telegram:")
                                          else None)
    return None
