"""The routing table of the chat: every command, button prefix and dialog, and its service.

A new feature adds its lines here. Each line adapts the turn (event, transaction, clock)
to the service's own plain-data signature, so services stay ignorant of turns and chats.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.dispatch import Dispatcher
from bot.services.animator import AnimatorService
from bot.services.chat import ChatService
from bot.services.digests import DigestService
from bot.services.followup import FollowUpService
from bot.services.intake import PREFIXES, IntakeService
from bot.services.meetings import MeetingService
from bot.services.mutualisation import RadarService
from bot.services.relay import DRAFT as RELAY_DRAFT
from bot.services.relay import RelayService, relay_content
from bot.turn import Turn
from storage.models import ChatDraft

__all__ = ["Features", "build_dispatcher"]


@dataclass(frozen=True, slots=True)
class Features:
    """The services the chat reaches."""

    chat: ChatService
    intake: IntakeService
    animator: AnimatorService
    meetings: MeetingService
    followup: FollowUpService
    digests: DigestService
    radar: RadarService
    relay: RelayService


def build_dispatcher(f: Features) -> Dispatcher:
    """Every command, button and dialog of the chat, with the service that answers it."""
    d = Dispatcher()
    chat, intake = f.chat, f.intake

    def draft_of(turn: Turn) -> ChatDraft:
        draft = turn.session.get(ChatDraft, turn.event.chat_id)
        assert draft is not None  # the dispatcher routes by the draft it found
        return draft

    # Everyone.
    d.command("start", chat.start)
    d.command("aide", chat.help, then_ask=True)
    d.command("annuler", chat.cancel)
    d.command("supprimer", chat.erase_question)
    d.command("mesdemandes", chat.my_needs, then_ask=True)
    d.button("consent", chat.on_consent)
    d.button("del", chat.on_erase)
    d.button("kb", chat.on_kb_button)
    # The intake form's own buttons.
    for prefix in sorted(PREFIXES):
        d.button(prefix, intake.on_button)
    d.prefetch_with(intake.prefetch)
    # Firms: meetings and satisfaction.
    d.command("mesrdv", lambda turn: turn.reply.messages.extend(
        f.meetings.upcoming_for_firm(turn.session, turn.event.user_id, now=turn.now)),
        then_ask=True)
    d.button("sat", lambda turn: f.followup.on_button(
        turn.session, turn.event.user_id, turn.event.chat_id, turn.event.value, now=turn.now))
    d.draft("sat_comment", lambda turn: f.followup.on_comment(
        turn.session, draft_of(turn), turn.event.value, now=turn.now))
    # Animators: needs, meetings, radar, statistics, programme cards.
    d.command("demandes", lambda turn: f.animator.list_open(turn.session, turn.event.user_id))
    d.command("demande", lambda turn: f.animator.show(
        turn.session, turn.event.user_id, turn.event.args))
    d.button("ani", lambda turn: f.animator.on_button(
        turn.session, turn.event.user_id, turn.event.value.partition(":")[2], now=turn.now,
        message_id=turn.event.message_id))
    d.command("rdv", lambda turn: f.meetings.command_rdv(
        turn.session, turn.event.user_id, turn.event.chat_id, turn.event.args, now=turn.now))
    for prefix in ("md", "mt"):
        d.button(prefix, lambda turn: f.meetings.on_button(
            turn.session, turn.event.user_id, turn.event.chat_id, turn.event.value,
            now=turn.now))
    for kind in ("meeting", "other_slot"):
        d.draft(kind, lambda turn: f.meetings.on_draft_text(
            turn.session, draft_of(turn), turn.event.value, now=turn.now))
    d.prefetch_with(f.radar.prefetch)  # the groups, computed off the event loop
    d.command("radar", lambda turn: f.radar.command(
        turn.session, turn.event.user_id, turn.prefetched))
    d.button("rad", lambda turn: f.radar.on_button(
        turn.session, turn.event.user_id, turn.event.value, now=turn.now,
        prefetched=turn.prefetched))
    d.command("stats", lambda turn: f.digests.stats_command(
        turn.session, turn.event.user_id, now=turn.now, prepared=turn.prefetched))
    d.prefetch_with(f.digests.prefetch_stats)
    d.command("recharger", chat.reload_knowledge)
    # The relay: the firm and its chefs de projet write to each other through Relais.
    d.button("rl", lambda turn: f.relay.on_button(
        turn.session, turn.event.user_id, turn.event.chat_id, turn.event.value, now=turn.now))
    d.draft(RELAY_DRAFT, lambda turn: f.relay.on_draft(
        turn.session, draft_of(turn), relay_content(turn), now=turn.now), media=True)
    d.fallbacks(unknown_command=chat.unknown_command, form_text=intake.on_text,
                free_text=chat.free_text, media=chat.media, stale_button=chat.stale_button,
                ask_again=intake.ask)
    return d
