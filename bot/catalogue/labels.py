"""A need's stored values (status, urgency, contact method, channel) as French labels.

One place for the words a stored key becomes, whoever reads it: the catalogue entries
are `common.status_<status>`, `common.urgency_<urgency>`, `common.contact_<method>` and
`common.channel_<channel>` (`common/needs.yaml`).
"""

from __future__ import annotations

from bot.catalogue import entries, label

__all__ = ["channel_label", "contact_label", "status_label", "urgency_label"]


def _label(kind: str, value: str) -> str:
    key = f"common.{kind}_{value}"
    # A value this version does not know (a newer row) is shown as stored, not as a crash.
    return label(key) if key in entries() else value


def status_label(status: str) -> str:
    """A need's status in French ("transmise")."""
    return _label("status", status)


def urgency_label(urgency: str) -> str:
    """A need's urgency in French ("Dans le mois")."""
    return _label("urgency", urgency)


def contact_label(method: str) -> str:
    """How the firm wants to be contacted, in French ("Par téléphone")."""
    return _label("contact", method)


def channel_label(channel: str) -> str:
    """The channel a need came by, in French ("e-mail")."""
    return _label("channel", channel)
