"""The dispatcher: which service answers a command, a button, a text or a media.

One table, filled by `bot/routes.py`: a new feature adds a line there (a command name, a
button prefix, a draft kind), never a branch in another service. Button data is
`prefix:value`; the prefix picks the handler.

Typed text goes, in this order, to the chat's pending draft (a dialog a service opened,
by its kind), to the chat's form when one is open, or to the free-text handler (the
knowledge base).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.services.types import Incoming, Reply
from bot.turn import Turn
from storage.models import ChatDraft, Conversation

__all__ = ["Dispatcher", "Handler", "Prefetcher"]

# A handler works inside the turn's transaction; it may return a Reply to merge, or write
# into `turn.reply` itself.
Handler = Callable[[Turn], Reply | None]
# Network I/O a handler needs (e.g. the company directory), run before the transaction.
Prefetcher = Callable[
    [Incoming, Callable[[int], Awaitable[Conversation | None]]], Awaitable[Any]
]


@dataclass(frozen=True, slots=True)
class _Route:
    handler: Handler
    # Ask the form's pending question again after this handler (help, listings).
    then_ask: bool = False


class Dispatcher:
    """Maps commands, button prefixes and draft kinds to handlers."""

    def __init__(self) -> None:
        self._commands: dict[str, _Route] = {}
        self._buttons: dict[str, _Route] = {}
        self._drafts: dict[str, Handler] = {}
        self._media_drafts: set[str] = set()
        self._prefetchers: list[Prefetcher] = []
        self._unknown_command: Handler | None = None
        self._form_text: Handler | None = None
        self._free_text: Handler | None = None
        self._media: Handler | None = None
        self._stale_button: Handler | None = None
        self._ask_again: Callable[[Turn], None] | None = None

    # --- registration ----------------------------------------------------------------
    def command(self, name: str, handler: Handler, *, then_ask: bool = False) -> None:
        """`/name` goes to `handler`."""
        self._add(self._commands, name, _Route(handler, then_ask))

    def button(self, prefix: str, handler: Handler) -> None:
        """Buttons whose data starts with `prefix:` go to `handler`."""
        self._add(self._buttons, prefix, _Route(handler))

    def draft(self, kind: str, handler: Handler, *, media: bool = False) -> None:
        """Typed text (and files, with `media`) while the chat has this draft go to `handler`."""
        self._add(self._drafts, kind, handler)
        if media:
            self._media_drafts.add(kind)

    def prefetch_with(self, prefetcher: Prefetcher) -> None:
        """Run `prefetcher` before each turn; its result is `turn.prefetched`."""
        self._prefetchers.append(prefetcher)

    def fallbacks(self, *, unknown_command: Handler, form_text: Handler, free_text: Handler,
                  media: Handler, stale_button: Handler,
                  ask_again: Callable[[Turn], None]) -> None:
        """What handles everything the table does not name."""
        self._unknown_command = unknown_command
        self._form_text = form_text
        self._free_text = free_text
        self._media = media
        self._stale_button = stale_button
        self._ask_again = ask_again

    @staticmethod
    def _add(table: dict[str, Any], key: str, value: Any) -> None:
        if key in table:
            raise ValueError(f"{key!r} is registered twice")
        table[key] = value

    # --- use -------------------------------------------------------------------------
    def commands(self) -> frozenset[str]:
        """The command names registered (for the unknown-command check and the menu)."""
        return frozenset(self._commands)

    async def prefetch(
        self, event: Incoming, peek: Callable[[int], Awaitable[Conversation | None]]
    ) -> Any:
        """What the first prefetcher that has something to fetch returns."""
        for prefetcher in self._prefetchers:
            found = await prefetcher(event, peek)
            if found is not None:
                return found
        return None

    def dispatch(self, turn: Turn) -> None:
        """Call the handler for this event and merge what it answers into the turn."""
        assert self._ask_again is not None, "fallbacks() not called"
        event = turn.event
        route: _Route | None
        if event.kind == "command":
            route = self._commands.get(event.value) or _Route(self._unknown_command)  # type: ignore[arg-type]
        elif event.kind == "button":
            prefix = event.value.partition(":")[0]
            route = self._buttons.get(prefix) or _Route(self._stale_button)  # type: ignore[arg-type]
        elif event.kind == "media":
            draft = turn.session.get(ChatDraft, event.chat_id)
            if draft is not None and draft.kind in self._media_drafts:
                route = _Route(self._drafts[draft.kind])
            else:
                route = _Route(self._media)  # type: ignore[arg-type]
        else:
            route = _Route(self._text_handler(turn))
        reply = route.handler(turn)
        if reply is not None:
            turn.reply.add(reply)
        if route.then_ask and turn.conversation is not None:
            self._ask_again(turn)

    def _text_handler(self, turn: Turn) -> Handler:
        draft = turn.session.get(ChatDraft, turn.event.chat_id)
        if draft is not None and draft.kind in self._drafts:
            return self._drafts[draft.kind]
        if turn.conversation is not None:
            return self._form_text  # type: ignore[return-value]
        return self._free_text  # type: ignore[return-value]
