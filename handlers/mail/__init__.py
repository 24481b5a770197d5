"""Inbound email: decode a raw message, spot automatic ones, strip quotes, find its thread.

Each module is a pure step with no I/O: `decode.parse_inbound` turns bytes into an
`InboundMail`; `automatic.automatic_reason` says whether it must never be answered;
`authenticity.authenticity` whether our own mail server verified its sender;
`quotes.strip_quoted` keeps what the sender wrote; `threads.thread_keys` lists the
candidates linking it to one of our conversations.
"""

from __future__ import annotations

from handlers.mail.authenticity import Authenticity, authenticity
from handlers.mail.automatic import automatic_reason
from handlers.mail.decode import Attachment, InboundMail, parse_inbound
from handlers.mail.quotes import strip_quoted
from handlers.mail.threads import ThreadKeys, new_reply_token, reply_address, thread_keys

__all__ = [
    "Attachment",
    "Authenticity",
    "InboundMail",
    "ThreadKeys",
    "authenticity",
    "automatic_reason",
    "new_reply_token",
    "parse_inbound",
    "reply_address",
    "strip_quoted",
    "thread_keys",
]
