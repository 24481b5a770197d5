"""Plain data exchanged between the channel adapters and the services."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Button", "Delivery", "Incoming", "IncomingEmail", "Outgoing", "Result"]

IncomingKind = Literal["text", "button", "command", "media"]


@dataclass(frozen=True, slots=True)
class Button:
    """An inline button: what the person reads and the short data it sends back."""

    label: str
    data: str


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message for a person: HTML text, optional button rows, or an edit of a sent one."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    edit_message_id: int | None = None
    # A PNG sent as a photo, `text` being its caption (1,024 characters at most).
    photo: bytes | None = None

    def to_payload(self) -> dict[str, Any]:
        """Serialise for the outbox (JSON)."""
        payload: dict[str, Any] = {"text": self.text}
        if self.photo is not None:
            payload["photo"] = base64.b64encode(self.photo).decode("ascii")
        if self.buttons:
            payload["buttons"] = [[[b.label, b.data] for b in row] for row in self.buttons]
        if self.edit_message_id is not None:
            payload["edit_message_id"] = self.edit_message_id
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Outgoing:
        """Rebuild from an outbox payload."""
        rows = tuple(
            tuple(Button(label, data) for label, data in row) for row in payload.get("buttons", ())
        )
        photo = payload.get("photo")
        return cls(payload["text"], rows, payload.get("edit_message_id"),
                   base64.b64decode(photo) if photo else None)


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
    message: Outgoing
