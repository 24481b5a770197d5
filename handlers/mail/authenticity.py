"""Whether the receiving mail server vouches for an email's sender (RFC 8601).

Anyone can write any address in From:. What can be trusted is the verdict our own mail
server wrote when the message arrived: an ``Authentication-Results`` header whose
authserv-id (its first word) is one we configured (`MAIL_AUTHSERV_ID`). `authenticity`
reads it and says whether the sender is verified:

- DMARC ``pass`` for the From: domain is verified; any other DMARC result but ``none``
  (``fail``, ``quarantine``, ``temperror``...) is not, whatever DKIM or SPF say;
- without a DMARC verdict (``none``: the domain publishes no policy), a DKIM ``pass``
  whose signing domain (``header.d``) is aligned with the From: domain, or an SPF
  ``pass`` whose envelope sender (``smtp.mailfrom``) is, counts as verified. Aligned means
  the same domain or a parent of it (``example.org`` for ``mail.example.org``); the other
  direction of DMARC's relaxed alignment would need the public suffix list and is left out,
  the safe side;
- everything else is unverified: no header, ``spf=fail; dkim=none``, a verdict from
  another authserv-id (the sender, or any server on the way, can write one), results of
  our own server that contradict each other, or no authserv-id configured at all.

Which headers are our server's: RFC 8601 §5 requires a receiving server to remove headers
that claim its authserv-id from incoming mail, and servers add theirs at the top. Only the
first run of headers, from the top, that carry a trusted authserv-id is read: a header with
our id below another server's header was written before the message reached us, so it is
forged even if our server forgot to remove it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from handlers.mail.decode import InboundMail

__all__ = ["Authenticity", "authenticity"]

HEADER = "authentication-results"
# Results our server writes for one message: more than this is not a verdict we wrote.
_MAX_RESULTS = 64
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|=|[^\s="]+')


@dataclass(frozen=True, slots=True)
class Authenticity:
    """The verdict on an email's sender, and why (for the log and the inbound row)."""

    verified: bool
    reason: str


@dataclass(frozen=True, slots=True)
class _Result:
    method: str  # dmarc | dkim | spf | ...
    result: str  # pass | fail | none | ...
    properties: dict[str, str]  # "header.d" -> "example.org"


def authenticity(mail: InboundMail, *, authserv_ids: Collection[str]) -> Authenticity:
    """Whether our own mail server verified the sender of `mail` (see the module doc)."""
    trusted = {i.strip().lower() for i in authserv_ids if i.strip()}
    if not trusted:
        return Authenticity(False, "no trusted authserv-id configured")
    from_domain = _domain(mail.from_addr)
    if not from_domain:
        return Authenticity(False, "no sender address")
    results = list(_trusted_results(mail.headers.get(HEADER, ()), trusted))
    if not results:
        return Authenticity(False, "no verdict of our server")

    dmarc = [r for r in results if r.method == "dmarc"
             and r.properties.get("header.from", from_domain) == from_domain]
    failed = next((r for r in dmarc if r.result not in {"pass", "none"}), None)
    if failed is not None:
        return Authenticity(False, f"dmarc={failed.result}")
    if any(r.result == "pass" for r in dmarc):
        return Authenticity(True, f"dmarc=pass header.from={from_domain}")

    for method, domain_of in (("dkim", _dkim_domain), ("spf", _spf_domain)):
        aligned = [r for r in results if r.method == method
                   and _aligned(domain_of(r), from_domain)]
        # One aligned failure beside a pass is a contradiction: trust neither.
        if aligned and all(r.result == "pass" for r in aligned):
            return Authenticity(True, f"{method}=pass {domain_of(aligned[0])}")
    seen = ", ".join(f"{r.method}={r.result}" for r in results[:6])
    return Authenticity(False, f"not verified ({seen})")


def _trusted_results(headers: Iterable[str], trusted: set[str]) -> Iterable[_Result]:
    """The results of the leading run of headers whose authserv-id is trusted."""
    count = 0
    for header in headers:
        pieces = _split(_uncomment(header))
        first = pieces[0].split() if pieces else []
        if not first or first[0].lower() not in trusted:
            return  # another server's verdict, or a malformed one: ours stop here
        for piece in pieces[1:]:
            result = _result(piece)
            if result is None:
                continue
            count += 1
            if count > _MAX_RESULTS:
                return
            yield result


def _uncomment(value: str) -> str:
    """The header without its (nested) comments; quoted strings kept as they are."""
    out: list[str] = []
    depth = 0
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
            continue
        if char == "\\" and (quoted or depth):
            escaped = True
            if depth == 0:
                out.append(char)
            continue
        if quoted:
            quoted = char != '"'
            out.append(char)
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
            if depth == 0:
                out.append(" ")
        elif depth == 0:
            quoted = char == '"'
            out.append(char)
    return "".join(out)


def _split(value: str) -> list[str]:
    """Split on the semicolons that are not inside a quoted string."""
    pieces: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            pieces.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    pieces.append("".join(current).strip())
    return pieces


def _result(piece: str) -> _Result | None:
    """One resinfo: ``method[/version]=result [reason=…] [ptype.property=value]…``."""
    tokens = _TOKEN.findall(piece)
    if "=" not in tokens:
        return None  # "none" (no result at all), or garbage
    equals = tokens.index("=")
    # "dkim/1", or "dkim / 1" with the spaces RFC 8601 allows around the slash.
    method = "".join(tokens[:equals]).partition("/")[0].lower()
    rest = tokens[equals + 1:]
    if not method or not rest or rest[0] == "=":
        return None
    result = _unquote(rest[0]).lower()
    properties: dict[str, str] = {}
    index = 1
    while index < len(rest):
        if index + 2 < len(rest) and rest[index + 1] == "=" and "=" not in (
                rest[index], rest[index + 2]):
            properties.setdefault(rest[index].lower(), _unquote(rest[index + 2]).lower())
            index += 3
        else:
            index += 1  # a stray word: skip it, the next property may still be readable
    return _Result(method, result, properties)


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token


def _domain(address: str) -> str:
    """The domain of an address (or the value itself when it is a bare domain), lowercased."""
    return address.rpartition("@")[2].strip().rstrip(".").lower()


def _dkim_domain(result: _Result) -> str:
    # header.d is the signing domain; header.i (the agent, "@example.org") its older twin.
    return _domain(result.properties.get("header.d") or result.properties.get("header.i", ""))


def _spf_domain(result: _Result) -> str:
    # Only the envelope sender aligns with From:; an SPF check of the HELO name says nothing.
    return _domain(result.properties.get("smtp.mailfrom", ""))


def _aligned(domain: str, from_domain: str) -> bool:
    """Whether `domain` is the From: domain or a parent of it (two labels at least)."""
    if "." not in domain:
        return False
    return from_domain == domain or from_domain.endswith("." + domain)
