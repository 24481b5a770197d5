"""After a need is confirmed: choose the partners, email them, show the animators a card.

Everything is written in the caller's transaction: routing rows, status change, the
partners' emails (outbox rows for the email worker) and the animators' Telegram cards.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot import texts
from bot.messages import Message
from bot.services import outbox
from bot.services.emails import NeedView, optional_reply_address, partner_need_email
from bot.services.explain import decision_text, partner_reason
from bot.services.firms import facts_line, routing_facts
from bot.services.types import Button
from bot.services.workdays import add_working_days
from knowledge.routing import Router
from knowledge.taxonomy import theme_label, theme_noun
from knowledge.territories import Territory, TerritoryDirectory
from storage.models import Need, NeedEvent, NeedRouting, NeedStatus

_PARIS = ZoneInfo("Europe/Paris")

__all__ = ["RoutingResult", "RoutingService", "animator_card", "change_status", "need_view"]


@dataclass(slots=True)
class RoutingResult:
    """What routing did: partner names for the firm, cards for the animators' chats."""

    partner_names: list[str] = field(default_factory=list)
    fallback: bool = True
    animator_messages: list[tuple[str, Message]] = field(default_factory=list)


def change_status(session: Session, need: Need, to: NeedStatus, *, actor: str, now: datetime,
                  note: str | None = None) -> None:
    """Move a need to another status (checked against the transition table), time-stamped."""
    from storage.models import ALLOWED_TRANSITIONS

    current = NeedStatus(need.status)
    if to != current and to not in ALLOWED_TRANSITIONS[current]:
        raise ValueError(f"transition {current} -> {to} not allowed")
    assert need.id is not None
    session.add(NeedEvent(need_id=need.id, from_status=current.value, to_status=to.value,
                          actor=actor, note=note, at=now))
    need.status = to.value
    need.updated_at = now
    session.add(need)


def need_view(
    need: Need, territory: Territory | None, *, tz: ZoneInfo | None = None
) -> NeedView:
    """The need as emails show it (contact as the firm chose to share it)."""
    method = need.contact_method
    if method == "telegram":
        contact_value = "via Telegram, par l'intermédiaire du chef de projet"
    else:
        contact_value = need.contact_value or ""
    return NeedView(
        reference=need.reference,
        theme_label=theme_noun(need.theme),
        firm_name=need.firm_name or "(anonymisée)",
        siret=need.siret,
        commune_name=need.commune_name or "",
        commune_insee=need.commune_insee or "",
        epci_name=need.epci_name or "",
        description=need.description or "",
        urgency_label=texts.URGENCY_LABELS.get(need.urgency, need.urgency),
        contact_method_label=texts.CONTACT_LABELS.get(method, method),
        contact_value=contact_value,
        created_at=need.created_at,
        territory_name=territory.name if territory else "",
        firm_facts=facts_line(need.firm, tz=tz or _PARIS, html=False) or "",
    )


def animator_card(
    need: Need, routings: list[NeedRouting], *, fallback: bool, tz: ZoneInfo
) -> Message:
    """The card an animator gets for a need, with its action buttons."""
    contact = texts.CONTACT_LABELS.get(need.contact_method, need.contact_method)
    facts = facts_line(need.firm, tz=tz)
    if need.contact_value:
        contact += f" ({need.contact_value})"
    lines = [
        texts.ANIMATOR_CARD_TITLE.format(reference=need.reference),
        texts.ANIMATOR_CARD_LINES.format(
            firm=texts.esc(need.firm_name or "(anonymisée)"),
            siret=f" · SIRET {need.siret}" if need.siret else "",
            commune=texts.esc(need.commune_name or "—"), insee=need.commune_insee or "—",
            epci=texts.esc(need.epci_name or "EPCI inconnu"),
            theme=texts.esc(theme_label(need.theme)),
            urgency=texts.URGENCY_LABELS.get(need.urgency, need.urgency),
            contact=texts.esc(contact),
            description=texts.esc((need.description or "")[:1500]),
            facts=texts.ANIMATOR_FIRM_FACTS.format(facts=facts) if facts else "",
        ),
        "",
    ]
    active = [r for r in routings if r.status != "removed"]
    if active:
        lines.append(texts.ANIMATOR_ROUTED_TITLE)
        lines += [texts.ROUTING_LINE.format(name=texts.esc(r.partner_name),
                                            reason=texts.esc(r.reason)) for r in active]
    elif fallback:
        lines.append(texts.ANIMATOR_FALLBACK)
    lines.append(texts.ANIMATOR_STATUS.format(
        status=texts.STATUS_LABELS.get(need.status, need.status)))
    assert need.id is not None
    buttons = (
        (Button(texts.BTN_TAKE, f"ani:take:{need.id}"),
         Button(texts.BTN_REASSIGN, f"ani:re:{need.id}")),
        (Button(texts.BTN_PROPOSE_MEETING, f"mt:new:{need.id}"),
         Button(texts.BTN_CLOSE, f"ani:close:{need.id}")),
    )
    return Message.legacy("\n".join(lines), buttons)


def animator_chats(territory: Territory) -> list[str]:
    """Where the territory's animators get cards: their team group, else each animator."""
    if territory.telegram_group_id is not None:
        return [str(territory.telegram_group_id)]
    return [str(a.telegram_user_id) for a in territory.animators if a.telegram_user_id]


class RoutingService:
    """Routes confirmed needs and writes every resulting message to the outbox."""

    def __init__(
        self,
        router: Router,
        territories: TerritoryDirectory,
        *,
        tz: ZoneInfo,
        mail_domain: str,
        clock: Callable[[], datetime],
        reply_local: str | None = None,
    ) -> None:
        # Local part of the bot's address; None: partners reply to the animator directly.
        self.reply_local = reply_local
        self.router = router
        self.territories = territories
        self.tz = tz
        self.mail_domain = mail_domain
        self.clock = clock

    def route_new_need(self, session: Session, need: Need, now: datetime) -> RoutingResult:
        """Choose partners for a just-submitted need; email them; card the animators."""
        decision = self.router.route(theme=need.theme, commune_insee=need.commune_insee,
                                     firm=routing_facts(need.firm))
        territory = decision.territory
        result = RoutingResult(fallback=decision.fallback)
        routings: list[NeedRouting] = []
        for routed in decision.partners:
            routing = self._add_partner(session, need, territory, routed.partner,
                                        level=routed.level,
                                        reason=partner_reason(need.theme, routed).plain(),
                                        now=now)
            routings.append(routing)
            result.partner_names.append(routed.partner.name)
        if routings:
            change_status(session, need, NeedStatus.ROUTED, actor="routing", now=now,
                          note=decision_text(decision).plain()[:500])
        if territory is not None:
            card = animator_card(need, routings, fallback=decision.fallback, tz=self.tz)
            result.animator_messages = [(chat, card) for chat in animator_chats(territory)]
        return result

    def _add_partner(
        self,
        session: Session,
        need: Need,
        territory: Territory | None,
        partner: object,
        *,
        level: str,
        reason: str,
        now: datetime,
    ) -> NeedRouting:
        assert need.id is not None
        routing = NeedRouting(
            need_id=need.id, partner_id=partner.id, partner_kind=partner.kind,  # type: ignore[attr-defined]
            partner_name=partner.name, partner_email=str(partner.email),  # type: ignore[attr-defined]
            level=level, reason=reason[:500], ack_days=partner.ack_days,  # type: ignore[attr-defined]
            routed_at=now,
        )
        session.add(routing)
        animator = territory.animators[0] if territory else None
        deadline = add_working_days(now.astimezone(self.tz).date(), routing.ack_days)
        draft = partner_need_email(
            need=need_view(need, territory, tz=self.tz),
            partner_name=routing.partner_name,
            partner_email=routing.partner_email,
            partner_id=routing.partner_id,
            reason=routing.reason,
            ack_days=routing.ack_days,
            ack_deadline=deadline,
            animator_name=animator.name if animator else "Relais",
            animator_email=str(animator.email) if animator else "",
            mail_domain=self.mail_domain,
            tz=self.tz,
            need_reply_address=optional_reply_address(self.reply_local, need.reply_token,
                                                      self.mail_domain),
        )
        outbox.enqueue_payload(
            session, channel="email", recipient=routing.partner_email, now=now,
            payload={"email": draft.to_payload(), "need_id": need.id,
                     "territory_id": territory.id if territory else None,
                     "key": _idempotency_key(need.reference, routing.partner_id)},
        )
        return routing

    def add_partner_manually(
        self, session: Session, need: Need, partner_id: str, *, actor: str, now: datetime
    ) -> NeedRouting | None:
        """An animator sends the need to one more partner of the territory ("Réaffecter")."""
        territory = self.territories.get(need.territory_id or "")
        if territory is None:
            return None
        partner = next((p for p in territory.partners if p.id == partner_id), None)
        if partner is None:
            return None
        routing = self._add_partner(
            session, need, territory, partner, level="manual",
            reason=f"{partner.name} : choisi par {actor}", now=now,
        )
        if need.status == NeedStatus.SUBMITTED.value:
            change_status(session, need, NeedStatus.ROUTED, actor=actor, now=now)
        return routing


def _idempotency_key(reference: str, partner_id: str) -> str:
    return hashlib.sha256(f"{reference}|{partner_id}".encode()).hexdigest()[:32]
