"""The receiving server's verdict on a sender (RFC 8601), and only our own server's."""

from __future__ import annotations

import pytest

from handlers.mail.authenticity import authenticity
from handlers.mail.decode import parse_inbound

OURS = "mx.relais.example.org"
PARTNER = "ft-paray-le-monial@example.org"


def verdict(*results: str, sender: str = PARTNER, trusted: tuple[str, ...] = (OURS,),
            before: str = "") -> tuple[bool, str]:
    """The verdict on an email carrying these Authentication-Results headers, top first."""
    headers = "".join(f"Authentication-Results: {r}\r\n" for r in results)
    raw = (f"{before}{headers}Received: from mail.example.net by mx.relais.example.org\r\n"
           f"From: Marie Roche <{sender}>\r\nTo: relais@relais.example.org\r\n"
           "Subject: RE: [TI-2026-0001]\r\nMessage-ID: <a1@example.org>\r\n\r\n"
           "Bien reçu, je m'en occupe.\r\n")
    found = authenticity(parse_inbound(raw.encode()), authserv_ids=trusted)
    return found.verified, found.reason


def test_dmarc_pass_from_our_server_is_verified() -> None:
    assert verdict(f"{OURS}; dkim=pass header.d=example.org header.s=s1; "
                   "spf=pass smtp.mailfrom=example.org; dmarc=pass (p=REJECT) "
                   "header.from=example.org") == (True, "dmarc=pass header.from=example.org")


def test_the_forgery_of_the_issue_is_not_verified() -> None:
    # No authserv-id at all: "spf=fail" is read as one, and it is not ours.
    assert verdict("spf=fail; dkim=none") == (False, "no verdict of our server")
    # Our server's own verdict on the forgery.
    assert verdict(f"{OURS}; spf=fail smtp.mailfrom=example.org; dkim=none; "
                   "dmarc=none header.from=example.org") == (
        False, "not verified (spf=fail, dkim=none, dmarc=none)")


@pytest.mark.parametrize("result", ["fail", "quarantine", "temperror", "permerror",
                                    "bestguesspass"])
def test_any_dmarc_result_but_pass_or_none_wins_over_dkim_and_spf(result: str) -> None:
    verified, reason = verdict(f"{OURS}; dkim=pass header.d=example.org; "
                               f"spf=pass smtp.mailfrom=example.org; dmarc={result}")
    assert (verified, reason) == (False, f"dmarc={result}")


def test_no_header_no_configuration_or_another_server_is_unverified() -> None:
    assert verdict() == (False, "no verdict of our server")
    assert verdict(f"{OURS}; dmarc=pass", trusted=()) == (
        False, "no trusted authserv-id configured")
    assert verdict(f"{OURS}; dmarc=pass", trusted=(" ",)) == (
        False, "no trusted authserv-id configured")
    # The sender's own server, or the sender: their word is not ours.
    assert verdict("mx.example.org; dmarc=pass header.from=example.org") == (
        False, "no verdict of our server")
    assert verdict(f"{OURS}; none") == (False, "no verdict of our server")


def test_a_header_with_our_id_below_another_servers_is_forged() -> None:
    # Our server wrote nothing (or its header was removed); a forwarder's verdict is on
    # top; the attacker's "ours" further down was written before the message reached us.
    assert verdict("mx.forwarder.example; spf=pass smtp.mailfrom=example.org",
                   f"{OURS}; dmarc=pass header.from=example.org") == (
        False, "no verdict of our server")
    # Ours on top, then the forwarder's and a forged one: only ours is read.
    assert verdict(f"{OURS}; dmarc=fail header.from=example.org",
                   "mx.forwarder.example; dmarc=pass",
                   f"{OURS}; dmarc=pass header.from=example.org") == (False, "dmarc=fail")


def test_several_headers_of_our_server_are_read_together() -> None:
    # Postfix with OpenDKIM, then OpenDMARC: each milter adds its own header.
    assert verdict(f"{OURS}; dmarc=pass header.from=example.org",
                   f"{OURS}; dkim=pass header.d=example.org")[0] is True
    # Contradicting results of our own id: one of them is forged, trust neither.
    assert verdict(f"{OURS}; dmarc=pass header.from=example.org",
                   f"{OURS}; dmarc=fail header.from=example.org") == (False, "dmarc=fail")
    assert verdict(f"{OURS}; dkim=pass header.d=example.org",
                   f"{OURS}; dkim=fail header.d=example.org")[0] is False


def test_several_trusted_ids_and_case() -> None:
    assert verdict("MX2.Relais.Example.Org 1; dmarc=pass",
                   trusted=(OURS, "mx2.relais.example.org"))[0] is True


def test_without_dmarc_an_aligned_dkim_or_spf_pass_is_verified() -> None:
    assert verdict(f"{OURS}; dkim=pass header.d=example.org; dmarc=none") == (
        True, "dkim=pass example.org")
    assert verdict(f"{OURS}; dkim=pass header.i=@example.org") == (
        True, "dkim=pass example.org")
    assert verdict(f"{OURS}; spf=pass smtp.mailfrom=bounces+x@example.org") == (
        True, "spf=pass example.org")
    # A subdomain's sender, signed by the organisation's domain.
    assert verdict(f"{OURS}; dkim=pass header.d=example.org",
                   sender="marie@ft.example.org")[0] is True


def test_an_unaligned_pass_proves_nothing() -> None:
    # The attacker's own domain signs, or passes SPF, perfectly well.
    assert verdict(f"{OURS}; dkim=pass header.d=attacker.example")[0] is False
    assert verdict(f"{OURS}; spf=pass smtp.mailfrom=attacker.example")[0] is False
    assert verdict(f"{OURS}; spf=pass smtp.helo=example.org")[0] is False
    assert verdict(f"{OURS}; dkim=pass header.d=org")[0] is False
    assert verdict(f"{OURS}; dkim=pass header.d=notexample.org")[0] is False
    # DMARC evaluated on another From: domain says nothing about this one.
    assert verdict(f"{OURS}; dmarc=pass header.from=attacker.example")[0] is False


def test_comments_quotes_versions_and_spaces() -> None:
    assert verdict(f'{OURS} 1; dkim/1 = pass (signature (was) verified; ok) '
                   'header.d="example.org" header.b=Ab/+cd==; '
                   'dmarc = none reason="no policy; p=none"') == (True, "dkim=pass example.org")
    # A semicolon inside a comment or a quoted string does not start a new result.
    assert verdict(f'{OURS}; spf=fail reason="x; dmarc=pass"; dkim=none (y; dmarc=pass)'
                   )[0] is False


def test_a_long_verdict_is_read_to_its_end() -> None:
    signatures = "; ".join(f"dkim=pass header.d=relay{i}.example header.s=s{i} "
                           f"header.b=AbCdEfGh{i}" for i in range(12))
    header = f"{OURS}; {signatures}; dmarc=pass header.from=example.org"
    assert len(header) > 800  # the other kept headers stop at 500
    assert verdict(header)[0] is True


def test_a_folded_header_is_read() -> None:
    assert verdict(f"{OURS};\r\n\tdkim=pass header.d=example.org;\r\n\tdmarc=pass")[0] is True
