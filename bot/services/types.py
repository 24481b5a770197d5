"""Plain data exchanged between the channel adapters and the services."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from bot.messages import Attachment, Button, Message

if TYPE_CHECKING:
    from bot.services.extract import Extracted
    from bot.services.replies import ReplyVerdict

__all__ = ["Button", "Delivery", "Incoming", "IncomingEmail", "Reply", "Result"]

IncomingKind = Literal["text", "button", "command", "media"]


@dataclass(frozen=True, slots=True)
class Incoming:
    """One thing a person did: typed text, pressed a button, sent a command or a media."""

    chat_id: int
    user_id: int
    kind: IncomingKind
    # The text; the button's data; the command name without '/'; or the media kind.
    value: str = ""
    args: str = ""
    update_id: int | None = None
    # For a button: the message that carried it and its text as HTML (to mark the choice).
    message_id: int | None = None
    origin_html: str | None = None
    first_name: str | None = None
    channel: str = "telegram"
    # A photo or document sent (kind "media"), and its caption as `value`… see `media`.
    attachment: Attachment | None = None
    caption: str = ""
    # The text of the bot's message this one answers (Telegram's "reply"), if any.
    reply_to_text: str | None = None


@dataclass(frozen=True, slots=True)
class IncomingEmail:
    """A decoded, non-automatic email as the mail adapter hands it over."""

    inbound_id: int
    message_id: str
    from_addr: str
    from_name: str
    subject: str
    # What the sender wrote in this message (quoted history and signature removed).
    text: str
    references: tuple[str, ...] = ()  # our Message-IDs it answers
    need_refs: tuple[str, ...] = ()  # TI-… references found in those ids
    tokens: tuple[str, ...] = ()  # relais+<token>@ reply addresses it was sent to
    subject_refs: tuple[str, ...] = ()  # [TI-…] tags of the subject
    # (filename, content type, size, data or None when over the size limit)
    attachments: tuple[tuple[str, str, int, bytes | None], ...] = ()
    oversized: bool = False
    # Read only up to the size limit: what it says of its files (their sizes) is partial.
    truncated: bool = False
    # What the text says, worked out off the event loop before the transaction
    # (`InboundService.prepare`); None: worked out when needed.
    facts: Extracted | None = None
    verdict: ReplyVerdict | None = None
    # Our receiving server vouched for the sender (handlers/mail/authenticity.py): only a
    # verified email sent to the need's reply address may change the need.
    verified: bool = False
    auth_verdict: str = ""  # why (for the log and the inbound row)


@dataclass(slots=True)
class Reply:
    """What a service answers to one event: messages for this chat, for other chats, a toast.

    The one reply type of every service; the turn writes it to the outbox.
    """

    messages: list[Message] = field(default_factory=list)
    # Messages for other Telegram chats (e.g. a card for the territory's animators).
    others: list[tuple[str, Message]] = field(default_factory=list)
    toast: str | None = None
    # Outbox rows the service wrote itself (claimed), to deliver right after the commit.
    deliveries: list[Delivery] = field(default_factory=list)

    def say(self, message: Message) -> None:
        """Add a message for this chat."""
        self.messages.append(message)

    def add(self, other: Reply) -> None:
        """Take in what another service answered (its toast wins when it has one)."""
        self.messages.extend(other.messages)
        self.others.extend(other.others)
        self.deliveries.extend(other.deliveries)
        if other.toast is not None:
            self.toast = other.toast


@dataclass(slots=True)
class Result:
    """What a service did: outbox rows to deliver now, and a short toast for a button press."""

    deliveries: list[Delivery] = field(default_factory=list)
    toast: str | None = None
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Delivery:
    """An outbox row ready to be delivered by the channel that owns it."""

    outbox_id: int
    channel: str
    recipient: str
    message: Message
