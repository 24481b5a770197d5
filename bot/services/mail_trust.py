"""Whether an email may change a need, or only be shown to the animator.

Two conditions, both required, because each stops a different forger:

- the sender is verified: our receiving server vouched for the From: address (DMARC, or an
  aligned DKIM or SPF pass; see `handlers/mail/authenticity.py`). Without it anyone can
  write a partner's or a firm's address in From:;
- the email came to the need's own reply address, ``relais+<token>@…``: the token is only
  in the emails we sent about that need. References are sequential, so a ``[TI-2026-0001]``
  tag in a subject, or a reference in In-Reply-To, names a need to anyone who guesses.

An email failing either is still kept in the need's history (marked unverified) and shown
to the animator, who decides with buttons; it never acknowledges, refuses, completes,
reroutes or erases by itself.
"""

from __future__ import annotations

from bot.services.types import IncomingEmail
from storage.models import Need

__all__ = ["NOT_REPLY_ADDRESS", "UNVERIFIED", "state_change_refusal"]

# Why an email may not change a need (catalogue: animator.email_unverified_<reason>).
UNVERIFIED = "sender"
NOT_REPLY_ADDRESS = "address"


def state_change_refusal(need: Need, mail: IncomingEmail) -> str | None:
    """Why `mail` may not change `need` (UNVERIFIED, NOT_REPLY_ADDRESS), or None if it may."""
    if not mail.verified:
        return UNVERIFIED
    token = (need.reply_token or "").lower()
    if not token or token not in mail.tokens:
        return NOT_REPLY_ADDRESS
    return None
