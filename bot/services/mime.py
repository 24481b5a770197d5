"""An email's bytes, written directly: headers encoded once, bodies in quoted-printable.

The standard library's `EmailMessage` parses every header it is given, then the generator
re-parses and refolds it when the message is flattened: about 5 ms per email, most of a
1,000-meeting burst. The common email (text and HTML alternatives, ASCII addresses) is
written here instead, from values already checked by `bot.services.emails`; anything else
(attachments, invitations, inline images, an internationalised address) still goes
through `EmailMessage`.

Safety does not rest on the callers: every header line is built from tokens this module
writes (RFC 2047 encoded words for anything outside printable ASCII, quoted strings for
ASCII names with specials), a value holding a CR or LF is refused, and no line is longer
than 78 characters except an address that cannot be split.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.utils import format_datetime

__all__ = ["MAX_LINE", "OutgoingEmail", "alternative", "date_header", "mailbox_header",
           "unstructured_header"]

MAX_LINE = 78
_CRLF = "\r\n"
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
# A display name that may stand as is: words of atext separated by single spaces.
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_WORD_PREFIX = "=?utf-8?b?"
_WORD_SUFFIX = "?="
# RFC 2047: an encoded word is at most 75 characters.
_WORD_MAX = 75


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """An email ready for SMTP: the envelope and the message's bytes (CRLF, 7-bit)."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    message_id: str

    def get(self, name: str, default: str | None = None) -> str | None:
        """The Message-ID, like `EmailMessage.get` (for logs that name a message)."""
        return self.message_id if name.lower() == "message-id" else default


def _has_break(value: str) -> bool:
    return "\r" in value or "\n" in value


def _encoded_words(text: str, first_room: int) -> list[str]:
    """`text` as RFC 2047 base64 words, the first fitting in `first_room` characters."""
    overhead = len(_WORD_PREFIX) + len(_WORD_SUFFIX)
    words: list[str] = []
    room = first_room
    chunk = bytearray()
    limit = _byte_limit(room - overhead)
    for char in text:
        encoded = char.encode("utf-8", "replace")
        if chunk and len(chunk) + len(encoded) > limit:
            words.append(_WORD_PREFIX + base64.b64encode(chunk).decode("ascii") + _WORD_SUFFIX)
            chunk = bytearray()
            # Next words start a continuation line: one space, then the word.
            room = MAX_LINE - 1
            limit = _byte_limit(room - overhead)
        chunk += encoded
    if chunk or not words:
        words.append(_WORD_PREFIX + base64.b64encode(chunk).decode("ascii") + _WORD_SUFFIX)
    return words


def _byte_limit(b64_room: int) -> int:
    """How many bytes fit in `b64_room` base64 characters (and in a 75-character word)."""
    room = min(b64_room, _WORD_MAX - len(_WORD_PREFIX) - len(_WORD_SUFFIX))
    return max(room // 4 * 3, 3)  # at least one character (up to 4 bytes) per word


def _fold(name: str, tokens: Iterable[str]) -> str:
    """`Name: tok tok...` with CRLF + space before a token that would pass 78 characters."""
    lines: list[str] = []
    line = name + ":"
    first = True
    for token in tokens:
        if _has_break(token):
            raise ValueError(f"line break in header {name}")
        if not first and len(line) + 1 + len(token) > MAX_LINE:
            lines.append(line)
            line = " " + token
        else:
            line += " " + token
        first = False
    lines.append(line)
    return _CRLF.join(lines) + _CRLF


def unstructured_header(name: str, value: str) -> str:
    """A text header (Subject, X-*): folded at spaces, or encoded words when it must be."""
    if _has_break(value):
        raise ValueError(f"line break in header {name}")
    if not value:
        return f"{name}: {_CRLF}"
    words = value.split(" ")
    plain = (_PRINTABLE.fullmatch(value) is not None and "=?" not in value
             and "" not in words and all(len(word) <= MAX_LINE - 2 - len(name) for word in words))
    if plain:
        return _fold(name, words)
    return _fold(name, _encoded_words(value, MAX_LINE - len(name) - 2))


def _display_name(name: str, room: int) -> list[str]:
    """A display name as tokens: atoms, one quoted string, or encoded words."""
    if _ATOMS.fullmatch(name) and "=?" not in name and len(name) <= room:
        return name.split(" ")
    if _PRINTABLE.fullmatch(name) and "=?" not in name and len(name) + 2 <= room:
        return ['"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"']
    return _encoded_words(name, room)


def _mailbox_tokens(address: Address, room: int) -> list[str]:
    spec = address.addr_spec
    if not spec.isascii() or not _PRINTABLE.fullmatch(spec):
        raise ValueError(f"address {spec!r} needs SMTPUTF8")
    if not address.display_name:
        return [spec]
    return [*_display_name(address.display_name, room), f"<{spec}>"]


def mailbox_header(name: str, addresses: Sequence[Address]) -> str:
    """An address header (From, To, Cc, Reply-To), one mailbox after another."""
    if not addresses:
        raise ValueError(f"no address for {name}")
    tokens: list[str] = []
    for index, address in enumerate(addresses):
        mailbox = _mailbox_tokens(address, MAX_LINE - len(name) - 2)
        if index < len(addresses) - 1:
            mailbox[-1] += ","
        tokens += mailbox
    return _fold(name, tokens)


def date_header(moment: datetime) -> str:
    """The Date header, in UTC (as the standard library writes it)."""
    if moment.tzinfo is None:
        raise ValueError("the Date of an email must be timezone-aware")
    return f"Date: {format_datetime(moment.astimezone(UTC))}{_CRLF}"


def _quoted_printable(text: str) -> bytes:
    """A text part's body: lines ended by CRLF, UTF-8, quoted-printable (76 a line)."""
    # As the standard library does: CR, LF and CRLF all end a line; a last newline added.
    lines = text.encode("utf-8", "replace").splitlines()
    encoded = binascii.b2a_qp(b"\n".join(lines) + b"\n", quotetabs=False, istext=True,
                              header=False)
    return encoded.replace(b"\n", b"\r\n")


def _boundary(parts: Sequence[bytes]) -> str:
    while True:
        boundary = "=_relais_" + secrets.token_hex(12)
        marker = boundary.encode("ascii")
        if not any(marker in part for part in parts):
            return boundary


def alternative(headers: Sequence[str], text: str, html: str) -> bytes:
    """The whole message: `headers` (encoded lines), then text and HTML alternatives."""
    bodies = (_quoted_printable(text), _quoted_printable(html))
    boundary = _boundary(bodies)
    delimiter = b"--" + boundary.encode("ascii")
    out = [
        "".join(headers).encode("ascii"),
        b"MIME-Version: 1.0\r\n",
        f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'
        .encode("ascii"),
    ]
    for subtype, body in zip(("plain", "html"), bodies, strict=True):
        out += [delimiter, b"\r\nContent-Type: text/", subtype.encode("ascii"),
                b'; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n',
                # RFC 2046: the CRLF before a delimiter belongs to the delimiter.
                body, b"\r\n"]
    out += [delimiter, b"--\r\n"]
    return b"".join(out)
