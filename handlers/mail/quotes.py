"""Keeping what the sender wrote in this message, without the conversation it quotes.

Two quoting styles meet in a mailbox:

- prefixed quotes ("> " lines, Gmail, Apple Mail, Thunderbird, and HTML <blockquote> once
  `decode.html_to_text` has read it): quoted lines are removed wherever they are, together
  with the attribution line introducing them ("Le … a écrit :", "On … wrote:"), so
  top-posting, bottom-posting and inline answers all keep the sender's own lines. When the
  sender answered inline (their text sits between quoted blocks) the quoted lines before
  their last answer are kept, since "Oui, le 12." means nothing without its question;
  the quoted block after it is dropped all the same;
- unprefixed quotes (Outlook, webmails): the original follows a header block ("De : …
  Envoyé : … Objet : …", German Outlook's "Von: … Gesendet: … Betreff: …", Outlook.com's
  block opened by "Date: …", SFR's "De : … A : … Sujet : …") or a separator
  ("-----Message d'origine-----", "-----Ursprüngliche Nachricht-----", a line of
  underscores, Orange's and SFR's "Message du : 12/12/2016 13:20"). Nothing after it can
  be told apart from the original, so the text is cut there, as it is at a mobile
  signature ("Envoyé de mon iPhone") or the "-- " delimiter.

Closing lines ("Cordialement, Jean") are kept: harmless, and often the only signature.
If nothing would remain, the whole text comes back trimmed: a message is never lost.
"""

from __future__ import annotations

import re

__all__ = ["strip_quoted"]

_FLAGS = re.IGNORECASE
_SPACES = re.compile(r"\s+")
_SIGNATURE_DELIMITER = frozenset({"-- ", "--"})
_SEPARATOR = re.compile(
    r"^-{2,}\s*(?:message d'origine|original message|mail original|mail d'origine"
    r"|message original|message transf[ée]r[ée]|forwarded message|message transmis"
    r"|urspr[üu]ngliche nachricht|weitergeleitete nachricht)\s*-{2,}$"
    r"|^(?:d[ée]but du message r[ée]exp[ée]di[ée]|begin forwarded message)\s*:$",
    _FLAGS,
)
_UNDERSCORES = re.compile(r"^_{10,}$")
_MOBILE_SIGNATURE = re.compile(
    r"^(?:envoy[ée]e?|sent)\s+(?:de|depuis|[àa] partir de|from|via|with)\s+.{0,50}?"
    r"\b(?:iphone|ipad|android|mobile|smartphone|samsung|galaxy|outlook|mail|appareil|device"
    r"|tablette|phone|t[ée]l[ée]phone|blackberry|huawei|xiaomi|pixel)\b.{0,40}$"
    r"|^(?:get|obtenir|t[ée]l[ée]charger)\s+outlook\s+(?:for|pour)\s+(?:ios|android)$",
    _FLAGS,
)
# Orange webmail opens its quote with "Message du 03/12/26 10:12", SFR's with
# "Message du : 12/12/2016 13:20".
_WEBMAIL_HEADER = re.compile(
    r"^message du\s*:?\s*\d{1,2}/\d{1,2}/\d{2,4}\s+\d{1,2}[:h]\d{2}", _FLAGS
)
_HEADER_FIELD = re.compile(
    r"^\*?\s*(de|from|von|envoy[ée]|sent|gesendet|date|datum|[àa]|to|an|cc|cci|bcc|objet|subject"
    r"|sujet|betreff|copie [àa])"
    r"\s*\*?\s*:(.*)$",
    _FLAGS,
)
_FIELD_GROUPS = {
    "de": "from", "from": "from", "von": "from",
    "envoyé": "sent", "envoye": "sent", "sent": "sent", "date": "sent", "gesendet": "sent",
    "datum": "sent",
    "à": "to", "a": "to", "to": "to", "cc": "to", "cci": "to", "bcc": "to", "an": "to",
    "copie à": "to", "copie a": "to",
    "objet": "subject", "subject": "subject", "sujet": "subject", "betreff": "subject",
}  # fmt: skip
_FROM_FIELDS = frozenset({"de", "from", "von"})
# Outlook.com (and some webmails) open the block with the date: "Date: …" then "From: …".
_DATE_FIELDS = frozenset({"date", "datum", "envoyé", "envoye", "sent", "gesendet"})
# Attribution lines always carry a date (so a digit), except the "Name a écrit :" form.
_DATED_ATTRIBUTION = re.compile(
    r"^(?:le|on|el|am)\s.{4,250}?\s(?:a\s+[ée]crit|wrote|escribi[óo]|schrieb)\s*:$", _FLAGS
)
_NAMED_ATTRIBUTION = re.compile(r"^(.{1,150}?)\s(?:a\s+[ée]crit|wrote)\s*:$", _FLAGS)
_NAME_PARTICLES = frozenset({"de", "du", "des", "d'", "la", "le", "van", "von", "di", "da"})
_HAS_ADDRESS = re.compile(r"<[^<>\s@]+@[^<>\s]+>|\[mailto:", _FLAGS)
_ATTRIBUTION_LINES = 3  # clients wrap a long attribution on two lines, rarely three
_HEADER_BLOCK_LINES = 10


def strip_quoted(text: str) -> str:
    """The part of an email body its sender wrote: quotes, attributions and footers removed."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept = _drop_quotes(lines[: _cut_index(lines)])
    result = "\n".join(line.rstrip() for line in kept).strip("\n")
    result = re.sub(r"\n{3,}", "\n\n", result)
    return result if result.strip() else text.strip()


def _norm(line: str) -> str:
    """A line stripped, spaces (non-breaking too) collapsed, typographic apostrophes plain."""
    return _SPACES.sub(" ", line.replace("\u2019", "'")).strip()


def _is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _cut_index(lines: list[str]) -> int:
    """Where the sender's text ends: the first footer or unprefixed quote, or the end."""
    for index, line in enumerate(lines):
        if _is_quoted(line):
            continue
        if line in _SIGNATURE_DELIMITER:
            return index
        norm = _norm(line)
        if not norm:
            continue
        if (
            _SEPARATOR.match(norm)
            or _UNDERSCORES.match(norm)
            or _MOBILE_SIGNATURE.match(norm)
            or _WEBMAIL_HEADER.match(norm)
            or _is_header_block(lines, index)
        ):
            return index
        span = _attribution_span(lines, index)
        if span and not _quote_follows(lines, index + span):
            # A dated attribution (or one with an address) over unprefixed text: the
            # original follows, Outlook-style. A bare "Marc a écrit :" may be the sender's.
            joined = _joined(lines, index, span)
            if _DATED_ATTRIBUTION.match(joined) or _HAS_ADDRESS.search(joined):
                return index
    return len(lines)


def _is_header_block(lines: list[str], index: int) -> bool:
    """Whether an Outlook-style "De : / Envoyé : / À : / Objet :" block starts here."""
    match = _HEADER_FIELD.match(_norm(lines[index]))
    if not match or not match.group(2).strip():
        return False
    first = match.group(1).lower()
    if first not in _FROM_FIELDS and first not in _DATE_FIELDS:
        return False
    groups: set[str] = set()
    for line in lines[index + 1 : index + 1 + _HEADER_BLOCK_LINES]:
        field = _HEADER_FIELD.match(_norm(line))
        if field and field.group(1).lower() in _FIELD_GROUPS:
            groups.add(_FIELD_GROUPS[field.group(1).lower()])
    if first in _FROM_FIELDS:
        # Two more fields, one of them the date or the subject: "De : X" alone is just a line.
        return len({"sent", "to", "subject"} & groups) >= 2 and bool(groups & {"sent", "subject"})
    # A block opened by its date needs the sender and one more field: "Date : 12 mars" followed
    # by "Lieu : …" is the sender's own text.
    return "from" in groups and bool(groups & {"to", "subject"})


def _joined(lines: list[str], index: int, span: int) -> str:
    return _norm(" ".join(lines[index : index + span]))


def _attribution_span(lines: list[str], index: int) -> int:
    """How many lines the attribution starting at `index` takes (0 when there is none)."""
    for span in range(1, _ATTRIBUTION_LINES + 1):
        chunk = lines[index : index + span]
        if len(chunk) < span or any(_is_quoted(x) or not _norm(x) for x in chunk):
            return 0
        if span > 1 and re.search(r"[.!?;]$", _norm(chunk[0])):
            return 0  # a finished sentence is the sender's text, not a wrapped header
        joined = _joined(lines, index, span)
        if _DATED_ATTRIBUTION.match(joined) and re.search(r"\d", joined):
            return span
        named = _NAMED_ATTRIBUTION.match(joined)
        if named and (_HAS_ADDRESS.search(joined) or _looks_like_name(named.group(1))):
            return span
    return 0


def _looks_like_name(text: str) -> bool:
    """Whether "<text> a écrit :" names a person ("Jean de La Tour"), not a sentence."""
    words = text.strip('"\' ').split()
    return 0 < len(words) <= 5 and all(
        w[0].isupper() or w.lower() in _NAME_PARTICLES for w in words
    )


def _quote_follows(lines: list[str], index: int) -> bool:
    """Whether the next non-blank line from `index` is a prefixed quote."""
    for line in lines[index:]:
        if _norm(line):
            return _is_quoted(line)
    return False


def _drop_quotes(lines: list[str]) -> list[str]:
    """Remove prefixed quotes and their attribution lines (see the module docstring)."""
    kinds: list[str] = []  # "T" the sender's text, "Q" quoted, "A" attribution, "" blank
    index = 0
    while index < len(lines):
        line = lines[index]
        if _is_quoted(line):
            kinds.append("Q")
        elif not _norm(line):
            kinds.append("")
        else:
            span = _attribution_span(lines, index)
            if span and _quote_follows(lines, index + span):
                kinds.extend(["A"] * span)
                index += span
                continue
            kinds.append("T")
        index += 1

    texts = [i for i, kind in enumerate(kinds) if kind == "T"]
    if not texts:
        return []
    first, last = texts[0], texts[-1]
    # Inline answers: a quoted line between two of the sender's lines.
    inline = any(kind == "Q" and first < i < last for i, kind in enumerate(kinds))
    kept = []
    for i, (line, kind) in enumerate(zip(lines, kinds, strict=True)):
        if kind == "A" or (kind == "Q" and (not inline or i > last)):
            continue
        kept.append(line)
    return kept
