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

from bot.catalogue import label, t
from bot.catalogue.labels import contact_label, status_label, urgency_label
from bot.messages import Bullets, Facts, Message, Span, Text, plain
from bot.services import outbox
from bot.services.animators import Animators
from bot.services.animators import chats as _animator_chats
from bot.services.emails import NeedView, optional_reply_address, partner_need_email
from bot.services.explain import decision_text, partner_reason
from bot.services.firms import facts_line, routing_facts
from bot.services.lifecycle import SYSTEM, Actor, change_status
from bot.services.types import Button
from bot.services.workdays import add_working_days
from knowledge.routing import Router
from knowledge.taxonomy import theme_label, theme_noun
from knowledge.territories import Territory, TerritoryDirectory
from storage.models import Need, NeedRouting, NeedStatus

_PARIS = ZoneInfo("Europe/Paris")

__all__ = [
    "RoutingResult",
    "RoutingService",
    "animator_card",
    "animator_card_text",
    "card_buttons",
    "card_title",
    "need_view",
    "routing_reason",
]


@dataclass(slots=True)
class RoutingResult:
    """What routing did: partner names for the firm, cards for the animators' chats."""

    partner_names: list[str] = field(default_factory=list)
    fallback: bool = True
    animator_messages: list[tuple[str, Message]] = field(default_factory=list)


def need_view(
    need: Need, territory: Territory | None, *, tz: ZoneInfo | None = None
) -> NeedView:
    """The need as emails show it (contact as the firm chose to share it)."""
    method = need.contact_method
    if method == "telegram":
        contact_value = label("partner.contact_via_animator")
    else:
        contact_value = need.contact_value or ""
    return NeedView(
        reference=need.reference,
        theme_label=theme_noun(need.theme),
        firm_name=need.firm_name or label("partner.firm_anonymised"),
        siret=need.siret,
        commune_name=need.commune_name or "",
        commune_insee=need.commune_insee or "",
        epci_name=need.epci_name or "",
        description=need.description or "",
        urgency_label=urgency_label(need.urgency),
        contact_method_label=contact_label(method),
        contact_value=contact_value,
        created_at=need.created_at,
        territory_name=territory.name if territory else "",
        firm_facts=facts_line(need.firm, tz=tz or _PARIS) or "",
    )


# Statuses where nobody has the need in hand yet: its card is a new need's.
_NEW = frozenset({NeedStatus.AWAITING_INFO.value, NeedStatus.SUBMITTED.value,
                  NeedStatus.ROUTED.value})
_CLOSED = frozenset({NeedStatus.CLOSED_HELPED.value, NeedStatus.CLOSED_NOT_HELPED.value,
                     NeedStatus.CANCELLED.value})
DESCRIPTION_SHOWN = 1500


def _fact(key: str, value: Text) -> tuple[str, tuple[Span, ...]]:
    return label(key), value.inline()


def routing_reason(routing: NeedRouting) -> str:
    """Why a partner got the need, without its name (the reason was stored after it)."""
    return routing.reason.removeprefix(f"{routing.partner_name} : ")


def card_title(need: Need, *, taken_by: str | None = None) -> Text:
    """The card's title: a new need, who has it in hand, or where it stands."""
    if need.status in _NEW:
        return t("animator.card_title_new", reference=need.reference)
    if need.status == NeedStatus.IN_PROGRESS.value and taken_by:
        return t("animator.card_title_taken", reference=need.reference, who=taken_by)
    return t("animator.card_title", reference=need.reference, status=status_label(need.status))


def card_buttons(need: Need) -> tuple[tuple[Button, ...], ...]:
    """What an animator may still do with the need: no "Je prends" once taken, none once closed."""
    assert need.id is not None
    if need.status in _CLOSED:
        return ()
    first = (Button(label("animator.btn_reassign"), f"ani:re:{need.id}"),)
    if need.status != NeedStatus.IN_PROGRESS.value:
        first = (Button(label("animator.btn_take"), f"ani:take:{need.id}"), *first)
    rows = [first, (Button(label("animator.btn_propose_meeting"), f"mt:new:{need.id}"),
                    Button(label("animator.btn_close"), f"ani:close:{need.id}"))]
    if need.anonymized_at is None and (need.contact_method != "telegram"
                                       or need.telegram_chat_id is not None):
        # The relay: the firm is reached on the channel it chose (bot/services/relay.py).
        rows.insert(1, (Button(label("animator.btn_write_to_firm"), f"rl:w:{need.id}"),))
    return tuple(rows)


def animator_card(
    need: Need, routings: list[NeedRouting], *, fallback: bool, tz: ZoneInfo,
    taken_by: str | None = None,
) -> Message:
    """The card an animator gets for a need, with the buttons its status allows.

    `taken_by`: the name of the animator who took the need, for its title.
    """
    return Message(animator_card_text(need, routings, fallback=fallback, tz=tz,
                                      taken_by=taken_by), card_buttons(need))


def animator_card_text(
    need: Need, routings: list[NeedRouting], *, fallback: bool, tz: ZoneInfo,
    taken_by: str | None = None,
) -> Text:
    """The card's text: title, the need's facts, its partners, its status."""
    firm = need.firm_name or label("animator.card_firm_anonymised")
    rows = [_fact("animator.card_firm", t("animator.card_firm_siret", firm=firm,
                                          siret=need.siret) if need.siret else plain(firm))]
    facts = facts_line(need.firm, tz=tz)
    if facts:
        rows.append(_fact("animator.card_public_facts", plain(facts)))
    contact = contact_label(need.contact_method)
    rows += [
        _fact("animator.card_commune", t(
            "animator.card_commune_value", commune=need.commune_name or "—",
            insee=need.commune_insee or "—",
            epci=need.epci_name or label("animator.card_epci_unknown"))),
        _fact("animator.card_need", t("animator.card_need_value", theme=theme_label(need.theme),
                                      urgency=urgency_label(need.urgency))),
        _fact("animator.card_contact", t("animator.card_contact_value", method=contact,
                                         value=need.contact_value)
              if need.contact_value else plain(contact)),
        _fact("animator.card_description",
              plain((need.description or "")[:DESCRIPTION_SHOWN] or "—")),
    ]
    text = card_title(need, taken_by=taken_by) + Text((Facts(tuple(rows)),))
    active = [r for r in routings if r.status != "removed"]
    if active:
        text += t("animator.card_routed_title") + Text((Bullets(tuple(
            t("animator.card_routed_line", partner=r.partner_name, reason=routing_reason(r))
            .inline() if routing_reason(r) else plain(r.partner_name).inline()
            for r in active)),))
    elif fallback:
        text += t("animator.card_fallback")
    return text + Text((Facts((_fact("animator.card_status",
                                     plain(status_label(need.status))),)),))


def animator_chats(session: Session, territory: Territory) -> list[str]:
    """Where the territory's animators get cards: their team group, else each animator.

    Each animator's accounts are those of the territory file and of their invitation
    (`bot.services.animators`).
    """
    return _animator_chats(session, territory)


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
        animators: Animators | None = None,
    ) -> None:
        # Keeps (and emails) the card of an animator Telegram cannot reach yet.
        self.animators = animators
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
            change_status(session, need, NeedStatus.ROUTED, actor=SYSTEM, now=now,
                          note=decision_text(decision).plain()[:500])
        if territory is not None:
            card = animator_card(need, routings, fallback=decision.fallback, tz=self.tz)
            result.animator_messages = [(chat, card)
                                        for chat in animator_chats(session, territory)]
            if self.animators is not None:
                self.animators.hold_for_unreachable(session, territory, card,
                                                    source=f"card:{need.reference}", now=now)
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
        self, session: Session, need: Need, partner_id: str, *, actor: Actor, now: datetime
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
            reason=t("partner.manual_reason", partner=partner.name,
                     who=actor.name or label("common.history_who_animator")).plain(),
            now=now,
        )
        if need.status == NeedStatus.SUBMITTED.value:
            change_status(session, need, NeedStatus.ROUTED, actor=actor, now=now)
        return routing


def _idempotency_key(reference: str, partner_id: str) -> str:
    return hashlib.sha256(f"{reference}|{partner_id}".encode()).hexdigest()[:32]
