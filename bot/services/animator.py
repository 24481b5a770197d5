"""What animators do on Telegram: list and open needs, take, reassign, close.

Every command and button checks that the person is an animator of the need's territory;
anyone else gets a polite refusal and learns nothing about the need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot import texts
from bot.services import lifecycle
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
from bot.services.types import Button, Outgoing

if TYPE_CHECKING:
    from bot.services.followup import FollowUpService
from knowledge.territories import Territory, TerritoryDirectory
from storage.models import Need, NeedEvent, NeedRouting, NeedStatus

__all__ = ["OPEN_STATUSES", "AnimatorResult", "AnimatorService"]

PAGE_SIZE = 8
CLOSE_REASONS = {
    "helped": (NeedStatus.CLOSED_HELPED, texts.BTN_CLOSE_HELPED),
    "not_helped": (NeedStatus.CLOSED_NOT_HELPED, texts.BTN_CLOSE_NOT_HELPED),
    "cancelled": (NeedStatus.CANCELLED, texts.BTN_CLOSE_CANCELLED),
}


@dataclass(slots=True)
class AnimatorResult:
    """Messages for the animator's chat, for other chats (the firm), and a button toast."""

    messages: list[Outgoing] = field(default_factory=list)
    others: list[tuple[str, Outgoing]] = field(default_factory=list)
    toast: str | None = None


class AnimatorService:
    """Animator commands and buttons, with access control on every one."""

    def __init__(self, territories: TerritoryDirectory, routing: RoutingService, *,
                 tz: ZoneInfo) -> None:
        self.territories = territories
        self.routing = routing
        self.tz = tz
        # Set by the runtime: asks the firm's satisfaction when a need is closed as helped.
        self.followup: FollowUpService | None = None

    def territories_of(self, user_id: int) -> list[Territory]:
        """Territories where this Telegram user is an animator."""
        return self.territories.animated_by(user_id)

    def _animator_name(self, user_id: int) -> str:
        for territory in self.territories_of(user_id):
            for animator in territory.animators:
                if animator.telegram_user_id == user_id:
                    return animator.name
        return str(user_id)

    def _allowed_need(self, session: Session, user_id: int, need_id: int) -> Need | None:
        need = session.get(Need, need_id)
        allowed = {t.id for t in self.territories_of(user_id)}
        if need is None or need.territory_id not in allowed:
            return None
        return need

    # --- commands --------------------------------------------------------------------------
    def list_open(self, session: Session, user_id: int, page: int = 1) -> AnimatorResult:
        """`/demandes`: open needs of the animator's territories, newest first, paginated."""
        territory_ids = [t.id for t in self.territories_of(user_id)]
        if not territory_ids:
            return AnimatorResult([Outgoing(texts.ANIMATORS_ONLY)])
        where = (col(Need.territory_id).in_(territory_ids),
                 col(Need.status).in_([s.value for s in OPEN_STATUSES]))
        total = session.exec(select(func.count()).select_from(Need).where(*where)).one()
        if total == 0:
            return AnimatorResult([Outgoing(texts.OPEN_NEEDS_EMPTY)])
        pages = (total + PAGE_SIZE - 1) // PAGE_SIZE
        page = min(max(page, 1), pages)
        needs = session.exec(
            select(Need).where(*where).order_by(col(Need.id).desc())
            .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
        ).all()
        rows: list[tuple[Button, ...]] = []
        for need in needs:
            label = f"{need.reference} · {need.firm_name or '—'} · {need.commune_name or '—'}"
            rows.append((Button(label[:60], f"ani:show:{need.id}"),))
        nav = []
        if page > 1:
            nav.append(Button(texts.BTN_PREVIOUS, f"ani:page:{page - 1}"))
        if page < pages:
            nav.append(Button(texts.BTN_NEXT, f"ani:page:{page + 1}"))
        if nav:
            rows.append(tuple(nav))
        title = texts.OPEN_NEEDS_TITLE.format(count=total, page=page, pages=pages)
        return AnimatorResult([Outgoing(title, tuple(rows))])

    def show(self, session: Session, user_id: int, reference: str) -> AnimatorResult:
        """`/demande TI-…`: one need of the animator's territory, with its history."""
        if not self.territories_of(user_id):
            return AnimatorResult([Outgoing(texts.ANIMATORS_ONLY)])
        reference = reference.strip().upper()
        if not reference:
            return AnimatorResult([Outgoing(texts.NEED_USAGE)])
        need = session.exec(select(Need).where(Need.reference == reference)).first()
        if need is None or need.id is None or self._allowed_need(session, user_id, need.id) is None:
            # Same answer whether it does not exist or belongs to another territory.
            return AnimatorResult([Outgoing(texts.NEED_NOT_FOUND.format(
                reference=texts.esc(reference[:20])))])
        return AnimatorResult([self._card_with_history(session, need)])

    def _card_with_history(self, session: Session, need: Need) -> Outgoing:
        routings = list(session.exec(select(NeedRouting).where(NeedRouting.need_id == need.id)))
        card = animator_card(need, routings, fallback=not routings, tz=self.tz)
        events = session.exec(
            select(NeedEvent).where(NeedEvent.need_id == need.id).order_by(col(NeedEvent.id))
        ).all()
        territory = self.territories.get(need.territory_id or "")
        animators = {f"telegram:{a.telegram_user_id}": a.name
                     for a in (territory.animators if territory else ()) if a.telegram_user_id}
        partners = {r.partner_id: r.partner_name for r in routings}
        lines = [card.text, "", texts.HISTORY_TITLE]
        for event in events:
            label = lifecycle.history_label(event, animators=animators, partners=partners)
            lines.append(texts.HISTORY_LINE.format(
                date=event.at.astimezone(self.tz).strftime("%d/%m/%Y %H:%M"),
                event=texts.esc(label)))
        return Outgoing("\n".join(lines)[:3900], card.buttons)

    # --- buttons ---------------------------------------------------------------------------
    def on_button(self, session: Session, user_id: int, value: str, *, now: datetime,
                  message_id: int | None) -> AnimatorResult:
        """Handle an `ani:…` button after checking the territory."""
        action, _, rest = value.partition(":")
        if action == "page":
            return self.list_open(session, user_id, int(rest) if rest.isdigit() else 1)
        need_part, _, arg = rest.partition(":")
        if not self.territories_of(user_id):
            return AnimatorResult(toast=texts.ANIMATORS_ONLY)
        need = self._allowed_need(session, user_id, int(need_part)) if need_part.isdigit() else None
        if need is None:
            return AnimatorResult(toast=texts.NOT_YOUR_TERRITORY)
        who = self._animator_name(user_id)
        actor = lifecycle.animator(user_id, who)
        if action == "show":
            return AnimatorResult([self._card_with_history(session, need)])
        if action == "take":
            return self._take(session, need, who, actor, now)
        if action == "close":
            buttons = tuple((Button(label, f"ani:closed:{need.id}:{key}"),)
                            for key, (_status, label) in CLOSE_REASONS.items())
            return AnimatorResult([Outgoing(
                texts.ASK_CLOSE_REASON.format(reference=need.reference), buttons)])
        if action == "closed" and arg in CLOSE_REASONS:
            return self._close(session, need, arg, actor, now)
        if action == "keep":
            return AnimatorResult([Outgoing(texts.KEPT_OPEN.format(
                reference=need.reference,
                days=self.followup.stale_days if self.followup else 30))])
        if action == "re":
            return self._reassign_menu(session, need)
        if action == "rp":
            return self._reassign_to(session, need, arg, actor, now)
        if action in {"pack", "pref", "pnone"} and arg.isdigit():
            return self._partner_verdict(session, need, action, int(arg), actor, now)
        return AnimatorResult(toast=texts.STALE_BUTTON)

    def _take(self, session: Session, need: Need, who: str, actor: Actor,
              now: datetime) -> AnimatorResult:
        if need.status == NeedStatus.IN_PROGRESS or need.status in CLOSED_STATUSES:
            return AnimatorResult(toast=texts.STATUS_LABELS.get(need.status, need.status))
        change_status(session, need, NeedStatus.IN_PROGRESS, actor=actor, now=now)
        result = AnimatorResult([Outgoing(texts.TAKEN_BY.format(who=texts.esc(who))
                                          + f" ({need.reference})")])
        if need.telegram_chat_id is not None:
            result.others.append((str(need.telegram_chat_id), Outgoing(
                texts.TAKEN_BY_FOR_FIRM.format(
                    who=texts.esc(who), reference=need.reference,
                    contact=texts.CONTACT_HOW.get(need.contact_method, "")))))
        return result

    def _close(self, session: Session, need: Need, key: str, actor: Actor,
               now: datetime) -> AnimatorResult:
        status, label = CLOSE_REASONS[key]
        try:
            change_status(session, need, status, actor=actor, now=now, note=label)
        except IllegalTransition:
            return AnimatorResult(toast=texts.STATUS_LABELS.get(need.status, need.status))
        result = AnimatorResult([Outgoing(f"{need.reference} · "
                                          + texts.CLOSED_AS.format(reason=label))])
        question = None
        if key == "helped" and self.followup is not None:
            question = self.followup.ask_satisfaction(session, need, now=now)
        if need.telegram_chat_id is not None:
            chat = str(need.telegram_chat_id)
            result.others.append((chat, Outgoing(
                texts.CLOSED_FOR_FIRM.format(reference=need.reference))))
            if question is not None:
                result.others.append((chat, question))
        return result

    def _partner_verdict(self, session: Session, need: Need, action: str, routing_id: int,
                         actor: Actor, now: datetime) -> AnimatorResult:
        """The animator says what an unclear partner reply was."""
        routing = session.get(NeedRouting, routing_id)
        if routing is None or routing.need_id != need.id:
            return AnimatorResult(toast=texts.STALE_BUTTON)
        partner = texts.esc(routing.partner_name)
        if action == "pack":
            acknowledge(session, need, routing, actor=actor, now=now)
            text = texts.PARTNER_MARKED_ACK
        elif action == "pref":
            decline(session, routing)
            text = texts.PARTNER_MARKED_REFUSED
        else:
            text = texts.PARTNER_MARKED_NEITHER
        return AnimatorResult([Outgoing(text.format(partner=partner, reference=need.reference))])

    def _reassign_menu(self, session: Session, need: Need) -> AnimatorResult:
        territory = self.territories.get(need.territory_id or "")
        assert territory is not None
        routed = {r.partner_id for r in session.exec(
            select(NeedRouting).where(NeedRouting.need_id == need.id))}
        rows = [
            (Button(("✅ " if p.id in routed else "") + p.name[:50], f"ani:rp:{need.id}:{p.id}"),)
            for p in territory.partners
        ]
        return AnimatorResult([Outgoing(
            texts.ASK_REASSIGN.format(reference=need.reference), tuple(rows))])

    def _reassign_to(self, session: Session, need: Need, partner_id: str, actor: Actor,
                     now: datetime) -> AnimatorResult:
        existing = session.exec(select(NeedRouting).where(
            NeedRouting.need_id == need.id, NeedRouting.partner_id == partner_id)).first()
        if existing is not None:
            return AnimatorResult(toast=texts.ALREADY_ROUTED)
        routing = self.routing.add_partner_manually(session, need, partner_id, actor=actor,
                                                    now=now)
        if routing is None:
            return AnimatorResult(toast=texts.STALE_BUTTON)
        return AnimatorResult([Outgoing(texts.REASSIGNED.format(
            partner=texts.esc(routing.partner_name)))])
