"""Inbound email as plain data: raw bytes in, one frozen `InboundMail` out.

Whatever arrives in the mailbox was written by someone we do not control, so nothing here
raises on content: malformed headers, lying charsets, broken base64 or NUL bytes give the
best readable result the message allows. Headers are read from their raw source and
decoded here (RFC 2047 words, 8-bit bytes), so one broken header cannot hide the others.
HTML is never rendered: `html_to_text` only reads the text out of it.

The work is bounded whatever the sender sends: bytes past a size limit and parts past a
count are not parsed at all (the message is flagged `truncated`), the header block, each
header value and the body text have caps, so a crafted message costs a fraction of a
second, not the minute a 5 MB message of 50,000 one-byte parts took to parse whole.
"""

from __future__ import annotations

import binascii
import codecs
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy as email_policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from types import MappingProxyType
from typing import TypeVar

__all__ = [
    "DEFAULT_MAX_ATTACHMENT_BYTES",
    "DEFAULT_MAX_PARTS",
    "RELEVANT_HEADERS",
    "TEXT_LIMIT",
    "Attachment",
    "InboundMail",
    "decode_bytes",
    "decode_words",
    "html_to_text",
    "parse_inbound",
    "synthetic_id",
    "unflow",
]

DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
# MIME parts read; a person's email has a few, a newsletter a few dozen.
DEFAULT_MAX_PARTS = 250
FILENAME_LIMIT = 120
SYNTHETIC_ID_DOMAIN = "relais.invalid"

# Headers kept (lowercased, every occurrence, top to bottom) for `automatic.py` and
# `authenticity.py`; the others are dropped because nothing downstream reads them and they
# would only carry the sender's noise.
RELEVANT_HEADERS = (
    "authentication-results",
    "auto-submitted",
    "precedence",
    "x-autoreply",
    "x-autorespond",
    "x-auto-response-suppress",
    "list-id",
    "list-unsubscribe",
    "list-post",
    "return-path",
    "x-failed-recipients",
    "sender",
)
_HEADER_VALUE_LIMIT = 500
# A receiving server's verdict lists every signature and check: cut at 500 characters, the
# DMARC result at its end would be lost. It is structured text, never RFC 2047 words.
_VERDICT_HEADER = "authentication-results"
_VERDICT_LIMIT = 4000
_SUBJECT_LIMIT = 1000
_NAME_LIMIT = 200
_ID_LIMIT = 998  # the longest line RFC 5322 allows
_MAX_IDS = 200  # References of a very long thread: enough to reach its root
_MAX_DEPTH = 40  # MIME nesting deeper than this is an attack, not an email
# Caps on what is parsed at all (see the module docstring).
_HEADER_BLOCK_LIMIT = 256 * 1024  # bytes of the top-level header block
_RAW_VALUE_LIMIT = 16 * 1024  # characters of one header value (References of 200 ids fit)
_MAX_VALUES = 20  # occurrences of one header name
_STRICT_ADDRESS_LIMIT = 4096  # longer address lists go to the (linear) lenient parser
TEXT_LIMIT = 100_000  # characters of body text (the need keeps 2,000)
_LINE_START_DASHES = re.compile(rb"^--", re.MULTILINE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")

# Codecs Python knows but that no honest email uses, and that turn text into other text
# (escape sequences, IDNA) or always fail: a charset naming one is treated as unknown.
_REFUSED_CODECS = frozenset(
    {"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined"}
)
# Declared charsets that cannot tell valid UTF-8 from mojibake: when the bytes are valid
# UTF-8 with non-ASCII in them, the declaration is the lie (a multi-byte UTF-8 sequence
# almost never occurs by chance in Latin-1 French text).
_SINGLE_BYTE_LATIN = frozenset({"ascii", "iso8859-1", "cp1252", "iso8859-15", "latin-1"})

# Characters that reorder what is displayed ("Trojan Source"), as in bot/services/emails.py.
_BIDI = dict.fromkeys(
    map(ord, "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
)
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_ESCAPED_BYTES = re.compile(r"[\udc80-\udcff]")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROLS_BUT_TAB_LF = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile(r"\r\n|[\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_BLANK_RUNS = re.compile(r"\n{3,}")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")
_BRACKETED_ID = re.compile(r"<([^<>\s]+)>")
_LOOSE_ADDRESS = re.compile(r"^([^<>@]*?)<?([^\s<>\"(),;:@]+@[^\s<>\"(),;:@]+)>?")
_BARE_ID = re.compile(r"^[^<>\s\"(),;:]+@[^<>\s\"(),;:]+$")

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Attachment:
    """A part of the message that is not its body text (file, image, forwarded message)."""

    filename: str
    content_type: str
    size: int
    # None when keeping it would exceed the size limit: `size` still tells what it was.
    data: bytes | None
    # Set for parts an HTML body refers to (cid:), typically logos and signature images.
    content_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundMail:
    """One received email, decoded: addresses lowercased, text readable, nothing raw."""

    message_id: str
    from_name: str
    from_addr: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    reply_to: tuple[str, ...]
    # Delivered-To and X-Original-To: where the message really arrived (plus-addresses).
    delivered_to: tuple[str, ...]
    subject: str
    date: datetime | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    text: str
    attachments: tuple[Attachment, ...]
    oversized: bool
    # The top-level MIME type, lowercased ("multipart/report"), and its report-type, if any.
    content_type: str
    report_type: str | None
    # RELEVANT_HEADERS present in the message: lowercased name -> every value, decoded.
    headers: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    # Part of the message was not read: past the size limit, the part count, or the text cap.
    truncated: bool = False

    def header(self, name: str) -> str | None:
        """The first value of a kept header (name case-insensitive), or None."""
        values = self.headers.get(name.lower())
        return values[0] if values else None


# --- Entry point -----------------------------------------------------------------------------


def parse_inbound(
    raw: bytes,
    *,
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
    max_bytes: int | None = None,
    max_parts: int = DEFAULT_MAX_PARTS,
) -> InboundMail:
    """Decode one raw RFC 5322 message; never raises on malformed content.

    Only the first `max_bytes` bytes are read (default: no limit); past them the message
    is `oversized` and keeps no file. Parts past `max_parts` are not read.
    """
    source, cut = _bounded(raw, max_bytes, max_parts)
    oversized_raw = max_bytes is not None and len(raw) > max_bytes
    try:
        msg = BytesParser(policy=email_policy.default).parsebytes(source)
    except Exception:
        # The feed parser is built to record defects, not raise; if it ever does, an empty
        # message (with its synthetic id) still lets the caller log and skip it.
        msg = EmailMessage(policy=email_policy.default)
    headers = _raw_headers(msg)

    from_name, from_addr = _first_mailbox(headers.get("from", ()))
    consumed: set[int] = set()
    pieces = _safe(lambda: _body_pieces(msg, consumed, 0), [])
    # A message cut at the size limit cannot keep its files (the last one is cut short).
    attachments, oversized = _attachments(msg, consumed,
                                          0 if oversized_raw else max_attachment_bytes)
    text = _BLANK_RUNS.sub("\n\n", "\n\n".join(t.strip("\n") for _, t in pieces)).strip()
    if len(text) > TEXT_LIMIT:
        text, cut = text[:TEXT_LIMIT], True
    content_type = _safe(msg.get_content_type, "text/plain")
    report_type = None
    if content_type == "multipart/report":
        report_type = _safe(lambda: _param(msg, "report-type"), None)

    return InboundMail(
        message_id=_message_id(headers.get("message-id", ()), raw),
        from_name=from_name,
        from_addr=from_addr,
        to=_addresses(headers.get("to", ())),
        cc=_addresses(headers.get("cc", ())),
        reply_to=_addresses(headers.get("reply-to", ())),
        delivered_to=_addresses(headers.get("delivered-to", ()) + headers.get("x-original-to", ())),
        subject=_one_line(decode_words(" ".join(headers.get("subject", ())[:1])), _SUBJECT_LIMIT),
        date=_date(headers.get("date", ())),
        in_reply_to=_ids(headers.get("in-reply-to", ())),
        references=_ids(headers.get("references", ())),
        text=text,
        attachments=attachments,
        oversized=oversized or oversized_raw,
        content_type=content_type,
        report_type=report_type,
        headers=MappingProxyType(
            {
                name: tuple(
                    _one_line(v, _VERDICT_LIMIT) if name == _VERDICT_HEADER
                    else _one_line(decode_words(v), _HEADER_VALUE_LIMIT)
                    for v in headers[name]
                )
                for name in RELEVANT_HEADERS
                if name in headers
            }
        ),
        truncated=cut,
    )


def _bounded(raw: bytes, max_bytes: int | None, max_parts: int) -> tuple[bytes, bool]:
    """The bytes worth parsing, and whether anything was left out."""
    cut = False
    if max_bytes is not None and len(raw) > max_bytes:
        raw, cut = raw[:max_bytes], True
    header_end = _HEADER_END.search(raw, 0, _HEADER_BLOCK_LIMIT + 4)
    if header_end is None and len(raw) > _HEADER_BLOCK_LIMIT:
        # A header block this long is no email: its first lines only, and no body.
        raw, cut = raw[: raw.rfind(b"\n", 0, _HEADER_BLOCK_LIMIT) + 1], True
    # Every part starts with a boundary line, which starts with "--": reading no more than
    # `max_parts` such lines (a C-speed scan) bounds the parts without parsing them.
    for index, match in enumerate(_LINE_START_DASHES.finditer(raw)):
        if index == max_parts:
            raw, cut = raw[: match.start()], True
            break
    return raw, cut


def _safe(call: Callable[[], _T], default: _T) -> _T:
    """The result of `call`, or `default` if the email library chokes on the input."""
    # The stdlib email package still has parsing paths that raise on hostile input
    # (IndexError, ValueError, RecursionError...): one bad part must not lose the message.
    try:
        return call()
    except Exception:
        return default


# --- Headers ---------------------------------------------------------------------------------


def _raw_headers(msg: Message) -> dict[str, tuple[str, ...]]:
    """Every top-level header as source text: lowercased name -> values, unfolded."""
    result: dict[str, list[str]] = {}
    for name, value in _safe(lambda: list(msg.raw_items()), []):
        values = result.setdefault(str(name).strip().lower(), [])
        if len(values) >= _MAX_VALUES:
            continue
        text = _FOLD.sub("", str(value)[:_RAW_VALUE_LIMIT])
        values.append(_unescape_bytes(text))
    return {name: tuple(values) for name, values in result.items()}


def _unescape_bytes(text: str) -> str:
    """Turn raw 8-bit bytes the parser kept as surrogate escapes back into characters."""
    # Many mailers put raw UTF-8 (or Latin-1) in headers instead of RFC 2047 words.
    if not _ESCAPED_BYTES.search(text):
        return text
    data = text.encode("utf-8", "surrogateescape")
    return decode_bytes(data, None)


def decode_words(value: str) -> str:
    """Decode the RFC 2047 encoded words of a header value, tolerating bad charsets."""
    out: list[str] = []
    pending: list[tuple[str, bytes]] = []
    position = 0

    def flush() -> None:
        # Adjacent words in one charset are decoded together: encoders split UTF-8
        # characters across words.
        while pending:
            charset = pending[0][0]
            chunk = b""
            while pending and pending[0][0] == charset:
                chunk += pending.pop(0)[1]
            out.append(decode_bytes(chunk, charset))

    for match in _ENCODED_WORD.finditer(value):
        between = value[position : match.start()]
        # Whitespace between two encoded words is folding, not text (RFC 2047 §6.2).
        if between and not (pending and between.isspace()):
            flush()
            out.append(between)
        charset = match.group(1).split("*", 1)[0].lower()  # drop an RFC 2231 language
        pending.append((charset, _decode_word(match.group(2), match.group(3))))
        position = match.end()
    flush()
    out.append(value[position:])
    return "".join(out)


def _decode_word(encoding: str, payload: str) -> bytes:
    try:
        if encoding in "Bb":
            padded = payload + "=" * (-len(payload) % 4)
            return binascii.a2b_base64(padded.encode("ascii", "ignore"))
        return binascii.a2b_qp(payload.encode("ascii", "ignore"), header=True)
    except (binascii.Error, ValueError):
        return payload.encode("ascii", "ignore")


def _one_line(text: str, limit: int) -> str:
    """Header text for display: no control characters, whitespace collapsed, bounded."""
    text = _SURROGATES.sub("\ufffd", _CONTROLS.sub(" ", text.translate(_BIDI)))
    return " ".join(text.split())[:limit]


def _first_mailbox(values: tuple[str, ...]) -> tuple[str, str]:
    """Display name and lowercased address of the first From mailbox ("" when none)."""
    pairs = [(name, _clean_addr(addr)) for name, addr in _parse_addresses("from", values)]
    for name, spec in pairs:
        if "@" in spec:
            return _one_line(name or _comment_name(values, spec), _NAME_LIMIT), spec
    # Both parsers failed (an unterminated quote...): an addr-spec is still visible.
    for value in values:
        match = _LOOSE_ADDRESS.search(value)
        if match and _clean_addr(match.group(2)):
            name = _one_line(decode_words(match.group(1)).strip(' "\'<'), _NAME_LIMIT)
            return name, _clean_addr(match.group(2))
    # A bounce's From may be a bare "MAILER-DAEMON": keep it, automatic.py needs it.
    for name, spec in pairs:
        if spec:
            return _one_line(name, _NAME_LIMIT), spec
    return "", ""


def _comment_name(values: tuple[str, ...], spec: str) -> str:
    """The name of the old "addr (Name)" form, which the strict parser treats as a comment."""
    for value in values:
        for name, addr in _lenient_addresses(value):
            if name and _clean_addr(addr) == spec:
                return name
    return ""


def _addresses(values: tuple[str, ...]) -> tuple[str, ...]:
    """The lowercased addr-specs of an address header, deduplicated, in order."""
    seen: dict[str, None] = {}
    for _, addr in _parse_addresses("to", values):
        spec = _clean_addr(addr)
        if "@" in spec:
            seen.setdefault(spec)
    return tuple(seen)


def _parse_addresses(kind: str, values: tuple[str, ...]) -> list[tuple[str, str]]:
    """(display name, addr-spec) pairs of header values, with a fallback parser."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        # The strict parser costs ~10 µs a character: a long list goes to the lenient one.
        found = _strict_addresses(kind, value) if len(value) <= _STRICT_ADDRESS_LIMIT else []
        if not found:
            # The strict parser gave up (or found nothing): the lenient one often still can.
            found = _lenient_addresses(value)
        pairs.extend(found)
    return pairs


def _strict_addresses(kind: str, value: str) -> list[tuple[str, str]]:
    try:
        header = email_policy.default.header_factory(kind, value)
        return [(a.display_name, a.addr_spec) for a in header.addresses]  # type: ignore[attr-defined]
    except Exception:
        return []


def _lenient_addresses(value: str) -> list[tuple[str, str]]:
    try:
        return [(decode_words(name), addr) for name, addr in getaddresses([value])]
    except Exception:
        return []


def _clean_addr(addr: str) -> str:
    spec = addr.strip().strip("<>").strip().lower()
    if not spec or any(ch.isspace() for ch in spec) or _CONTROLS.search(spec):
        return ""
    if _SURROGATES.search(spec) or spec.startswith("@") or spec.endswith("@"):
        return ""
    return spec


def _message_id(values: tuple[str, ...], raw: bytes) -> str:
    """The Message-ID with its brackets, or a stable synthetic one derived from the bytes."""
    ids = _ids(values[:1])
    if ids:
        return ids[0]
    return synthetic_id(raw)


def synthetic_id(raw: bytes) -> str:
    """A Message-ID derived from the bytes, for a message without a usable one."""
    # The same raw message must get the same id, so a re-fetch deduplicates.
    return f"<sha256-{hashlib.sha256(raw).hexdigest()}@{SYNTHETIC_ID_DOMAIN}>"


def _ids(values: tuple[str, ...]) -> tuple[str, ...]:
    """Message ids of In-Reply-To / References values, normalised as "<id>", in order."""
    seen: dict[str, None] = {}
    for value in values:
        text = _CONTROLS.sub(" ", value)
        found = _BRACKETED_ID.findall(text)
        if not found:
            # Some clients drop the brackets; a lone token with an @ is still an id.
            found = [token for token in text.split() if _BARE_ID.fullmatch(token)]
        for item in found:
            if len(item) + 2 <= _ID_LIMIT and not _SURROGATES.search(item):
                seen.setdefault(f"<{item}>")
    return tuple(seen)[:_MAX_IDS]


def _date(values: tuple[str, ...]) -> datetime | None:
    """The Date header as an aware UTC datetime, or None when unreadable."""
    if not values:
        return None
    try:
        moment = parsedate_to_datetime(_one_line(values[0], 200))
    except Exception:
        return None
    if moment.tzinfo is None:
        # "-0000" means UTC with no local offset known (RFC 5322 §3.3).
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


# --- Text ------------------------------------------------------------------------------------


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text from bytes in a declared charset that may be missing, unknown or wrong."""
    codec = _codec(charset)
    if codec in _SINGLE_BYTE_LATIN and not data.isascii():
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    # WHATWG: Latin-1 and ASCII labels mean Windows-1252 (curly quotes, €, œ in 0x80-0x9F).
    if codec in {"iso8859-1", "latin-1", "ascii"}:
        codec = "cp1252"
    for candidate in (codec, "utf-8", "cp1252"):
        if candidate is None:
            continue
        try:
            return data.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("utf-8", "replace")


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    try:
        info = codecs.lookup(charset.strip().strip('"').lower())
    except (LookupError, ValueError):
        return None
    if info.name in _REFUSED_CODECS or not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def _clean_text(text: str) -> str:
    """Body text: LF line breaks only, no control or bidi characters, no trailing spaces."""
    text = _LINE_BREAKS.sub("\n", text.translate(_BIDI))
    text = _CONTROLS_BUT_TAB_LF.sub("", _SURROGATES.sub("\ufffd", text))
    # "-- " keeps its space: it is the signature delimiter quotes.py looks for.
    return "\n".join(line if line == "-- " else line.rstrip() for line in text.split("\n"))


_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "center", "dd", "div", "dl", "dt",
        "fieldset", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot",
        "th", "thead", "tr", "ul",
    }
)
_SKIPPED_TAGS = frozenset({"script", "style", "head", "title", "template", "noscript", "object"})
_CELL_TAGS = frozenset({"td", "th"})
_HTML_SPACES = re.compile(r"[ \t\r\n\f]+")


class _TextExtractor(HTMLParser):
    """Collects the readable text of an HTML document, one output line per visual line."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._line: list[str] = []
        self._line_depth = 0
        self._quote_depth = 0
        self._skip = 0
        self._pre = 0

    def _break(self, *, force: bool = False) -> None:
        # Block boundaries end a line only if it has text; <br> always does (blank lines).
        if self._line or force:
            text = "".join(self._line).rstrip()
            depth = self._line_depth if self._line else self._quote_depth
            quote = ">" * depth
            self.lines.append(f"{quote} {text}" if quote and text else quote + text)
            self._line = []

    def _write(self, text: str) -> None:
        if not self._line:
            self._line_depth = self._quote_depth
        self._line.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip += 1
            return
        if self._skip:
            return
        if tag == "br":
            self._break(force=True)
        elif tag in _CELL_TAGS:
            if self._line:
                self._write(" ")
        elif tag in _BLOCK_TAGS:
            self._break()
            if tag == "blockquote":
                self._quote_depth += 1
            elif tag == "li":
                self._write("- ")
            elif tag == "pre":
                self._pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip = max(0, self._skip - 1)
            return
        if self._skip or tag in _CELL_TAGS or tag not in _BLOCK_TAGS:
            return
        self._break()
        if tag == "blockquote":
            self._quote_depth = max(0, self._quote_depth - 1)
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre:
            first, *rest = data.split("\n")
            self._write(first)
            for line in rest:
                self._break(force=True)
                self._write(line)
            return
        # Source whitespace collapses as a browser would; &nbsp; (U+00A0) is kept as text
        # so that Outlook's <p>&nbsp;</p> still shows as a blank line.
        text = _HTML_SPACES.sub(" ", data)
        if not self._line:
            text = text.lstrip(" ")
        if text:
            self._write(text)

    def text(self) -> str:
        self._break()
        lines = [line.replace("\xa0", " ").rstrip() for line in self.lines]
        return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip("\n")


def html_to_text(html: str) -> str:
    """The readable text of an HTML body: scripts and styles dropped, quotes as "> "."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception:
        # html.parser is lenient, but whatever it kept before giving up is still text.
        pass
    return parser.text()


# --- MIME structure --------------------------------------------------------------------------


def _param(part: Message, name: str) -> str | None:
    value = part.get_param(name)
    if isinstance(value, tuple):  # RFC 2231 (charset, language, value)
        value = value[2]
    if not isinstance(value, str):
        return None
    return _one_line(value, 100).lower() or None


def _children(part: Message) -> list[Message]:
    payload = part.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _filename(part: Message) -> str | None:
    name = _safe(part.get_filename, None)
    return decode_words(_unescape_bytes(name)) if isinstance(name, str) else None


def _is_body_text(part: Message) -> bool:
    """A text/plain or text/html part meant to be read, not a file someone attached."""
    content_type = _safe(part.get_content_type, "application/octet-stream")
    if content_type not in {"text/plain", "text/html"}:
        return False
    disposition = _safe(part.get_content_disposition, None)
    return disposition != "attachment" and not _filename(part)


def _decoded_payload(part: Message) -> bytes:
    data = _safe(lambda: part.get_payload(decode=True), None)
    return data if isinstance(data, bytes) else b""


def _part_text(part: Message) -> tuple[str, str]:
    """("plain" | "html", readable text) of a body text part."""
    charset = _safe(part.get_content_charset, None)
    # Decoded bytes past the text cap are never shown: not converted either. (An HTML
    # body may hold more markup than text, hence the margin.)
    text = decode_bytes(_head(_decoded_payload(part), 4 * TEXT_LIMIT), charset)
    if _safe(part.get_content_type, "") == "text/html":
        return "html", _clean_text(html_to_text(text))
    if _safe(lambda: _param(part, "format"), None) == "flowed":
        text = unflow(text, delsp=_safe(lambda: _param(part, "delsp"), None) == "yes")
    return "plain", _clean_text(text)


def _head(data: bytes, limit: int) -> bytes:
    """The first `limit` bytes, not ending inside a UTF-8 sequence (so it still decodes)."""
    if len(data) <= limit:
        return data
    end = limit
    while end > limit - 4 and 0x80 <= data[end] <= 0xBF:
        end -= 1  # data[end] continues a sequence: cut before the sequence starts
    return data[:end]


def unflow(text: str, *, delsp: bool = False) -> str:
    """Rejoin the soft line breaks of a format=flowed body (RFC 3676), quotes as "> "."""
    # Thunderbird and Apple Mail wrap long lines at ~72 columns with a trailing space;
    # joining them back gives the paragraphs the sender typed.
    out: list[str] = []
    pending: tuple[int, str] | None = None

    def render(depth: int, content: str) -> str:
        return f"{'>' * depth} {content}" if depth and content else ">" * depth + content

    for raw_line in text.split("\n"):
        line = raw_line.rstrip("\r")
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing
        flowed = content.endswith(" ") and content != "-- "
        if flowed and delsp:
            content = content[:-1]
        if pending is not None and pending[0] == depth:
            pending = (depth, pending[1] + content)
        else:
            # A flowed line followed by another quote depth ends there (RFC 3676 §4.5).
            if pending is not None:
                out.append(render(*pending))
            pending = (depth, content)
        if not flowed:
            out.append(render(*pending))
            pending = None
    if pending is not None:
        out.append(render(*pending))
    return "\n".join(out)


def _body_pieces(part: Message, consumed: set[int], depth: int) -> list[tuple[str, str]]:
    """The body texts of `part` in reading order; marks the parts they came from."""
    if depth > _MAX_DEPTH:
        return []
    content_type = _safe(part.get_content_type, "application/octet-stream")
    maintype, _, subtype = content_type.partition("/")
    if maintype == "message":
        return []  # a forwarded or reported message is an attachment, not this body
    if maintype == "multipart":
        if not isinstance(_safe(part.get_payload, None), list):
            # No boundary, so the parser could not split it: the raw text is all there is.
            consumed.add(id(part))
            text = _clean_text(decode_bytes(_decoded_payload(part), None))
            return [("plain", text)] if text.strip() else []
        children = _children(part)
        if subtype == "alternative":
            return _alternative(children, consumed, depth)
        if subtype == "related":
            root = _related_root(part, children)
            return _body_pieces(root, consumed, depth + 1) if root is not None else []
        # mixed, report, signed...: parts follow each other (Apple Mail splits a body
        # around an inline image), so every readable part is kept, in order.
        pieces: list[tuple[str, str]] = []
        for child in children:
            pieces.extend(_body_pieces(child, consumed, depth + 1))
        return pieces
    if not _is_body_text(part):
        return []
    consumed.add(id(part))
    kind, text = _part_text(part)
    return [(kind, text)] if text.strip() else []


def _alternative(
    children: list[Message], consumed: set[int], depth: int
) -> list[tuple[str, str]]:
    """The plain-text rendering if one has text, else the HTML one."""
    candidates = []
    for child in children:
        # Every rendering of the body is "consumed", the chosen one and the others alike:
        # an HTML alternative must not come back as an attachment.
        candidates.append(_body_pieces(child, consumed, depth + 1))
    for wanted in ("plain", "html"):
        for pieces in candidates:
            if pieces and all(kind == wanted for kind, _ in pieces):
                return pieces
    return next((pieces for pieces in candidates if pieces), [])


def _related_root(part: Message, children: list[Message]) -> Message | None:
    """The root of a multipart/related: the `start` part, else the first (RFC 2387)."""
    start = _safe(lambda: part.get_param("start"), None)
    if isinstance(start, str):
        for child in children:
            if _first_header(child, "content-id").strip() == start.strip():
                return child
    return children[0] if children else None


def _leaves(root: Message) -> Iterable[Message]:
    """Every non-multipart part, in order; message/* parts are leaves (not descended)."""
    stack: list[tuple[Message, int]] = [(root, 0)]
    while stack:
        part, depth = stack.pop()
        content_type = _safe(part.get_content_type, "application/octet-stream")
        children = _children(part) if content_type.startswith("multipart/") else []
        if children and depth < _MAX_DEPTH:
            stack.extend((child, depth + 1) for child in reversed(children))
        elif not children:
            yield part


def _message_bytes(part: Message) -> bytes:
    """The bytes of a message/* part's content (the forwarded message itself)."""
    # Original folding kept: re-folding would change a forwarded message we only store.
    out_policy = email_policy.default.clone(refold_source="none")
    chunks = []
    for inner in _children(part):
        try:
            chunks.append(inner.as_bytes(policy=out_policy))
        except Exception:
            # The generator can choke where the parser did not; the text is still there.
            chunks.append(_safe(lambda m=inner: str(m).encode("utf-8", "surrogateescape"), b""))
    if not chunks:
        return _decoded_payload(part)
    return b"\n".join(chunks)


def _attachments(
    msg: Message, consumed: set[int], limit: int
) -> tuple[tuple[Attachment, ...], bool]:
    """Every part that is not body text, and whether their total size exceeds `limit`."""
    found: list[Attachment] = []
    total = kept = 0
    for part in _safe(lambda: list(_leaves(msg)), []):
        if id(part) in consumed:
            continue
        content_type = _safe(part.get_content_type, "application/octet-stream")
        if content_type.startswith("message/"):
            data = _message_bytes(part)
        else:
            data = _decoded_payload(part)
        if not data and content_type.startswith(("text/", "multipart/")):
            continue  # an empty text part (or a multipart with nothing in it) is no file
        total += len(data)
        # Keep contents while they fit: the limit bounds what the caller holds in memory.
        keep = kept + len(data) <= limit
        kept += len(data) if keep else 0
        content_ids = _ids((_first_header(part, "content-id"),))
        found.append(
            Attachment(
                filename=_sanitize_filename(_filename(part), content_type),
                content_type=content_type,
                size=len(data),
                data=data if keep else None,
                content_id=content_ids[0] if content_ids else None,
            )
        )
    return tuple(found), total > limit


def _first_header(part: Message, name: str) -> str:
    """A part header's source text ("" when absent), without the parser's interpretation."""
    for key, value in _safe(lambda: list(part.raw_items()), []):
        if str(key).strip().lower() == name:
            return _FOLD.sub("", str(value))
    return ""


def _sanitize_filename(name: str | None, content_type: str) -> str:
    """A filename safe to show or store: last path component, printable, bounded."""
    # Control characters are dropped, not turned into spaces: "a\x01b" was one word.
    text = _CONTROLS.sub("", (name or "").translate(_BIDI))
    text = _one_line(text, 1000).replace("\\", "/").rsplit("/", 1)[-1]
    # Leading dots would make a hidden file or "..": trailing ones confuse Windows.
    text = text.strip(". ")
    if not text:
        text = "message.eml" if content_type == "message/rfc822" else "attachment"
    if len(text) > FILENAME_LIMIT:
        stem, dot, extension = text.rpartition(".")
        if dot and 0 < len(extension) <= 16 and stem:
            text = stem[: FILENAME_LIMIT - len(extension) - 1].rstrip(". ") + "." + extension
        else:
            text = text[:FILENAME_LIMIT]
    return text
