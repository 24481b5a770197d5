"""Who the animators are: the territory files, plus the Telegram accounts bound by invitation.

The territory files are configuration, read once at start. An animator who opens their
personal link (`relais invite`) binds the Telegram account they opened it with
(`animator_binding`), on top of any `telegram_user_id` of the file. Every question "is
this person an animator", "which territories does she animate", "which chats get the
territory's cards" is answered here from both, in the caller's transaction: a binding
counts at once, on every instance.

A message Telegram refuses for an animator (who never opened the bot, or blocked it), and
a new need's card for an animator without any Telegram account, are never dropped: the
animator gets it by email at once, with the invitation link, and it is kept
(`held_message`) to be shown on Telegram after their /start.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Iterator
from datetime import datetime
from email.headerregistry import Address
from html import unescape

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.catalogue import t
from bot.messages import Message, Text, lines, plain
from bot.services import outbox
from bot.services.emails import EmailDraft
from bot.services.limits import ChatLimits
from bot.services.plaintext import one_line
from knowledge.territories import Animator, Territory, TerritoryDirectory
from storage.models import AnimatorBinding, HeldMessage

__all__ = [
    "TOKEN_PREFIX",
    "Animators",
    "animator_of",
    "chats",
    "chats_of",
    "is_animator",
    "names",
    "territories_of",
    "user_chats",
    "user_ids",
]

# An invitation is `/start ani-<24 characters>`: Telegram allows 64 characters of
# A-Za-z0-9_- in a start parameter; the prefix tells an invitation from other deep links.
TOKEN_PREFIX = "ani-"
_MAC_BYTES = 18  # 144 bits, 24 characters of base64url
_TOKEN = re.compile(r"^ani-[A-Za-z0-9_-]{24}$")
# Telegram's refusals that mean "this chat cannot be reached", as opposed to a message it
# finds malformed: the animator has to open (or unblock) the bot first.
_UNREACHABLE = ("forbidden", "chat not found", "user is deactivated", "bot was blocked",
                "can't initiate")
# The buttons of a need's card carry the need's id ("ani:take:42", "mt:new:42").
_NEED_BUTTON = re.compile(r"^(?:ani:(?:take|re|close|show)|mt:new):(\d+)$")
_TAG = re.compile(r"<[^>]+>")


# --- who the animators are ---------------------------------------------------------------
def _bound_in(session: Session, territory_id: str) -> dict[str, int]:
    """Email (lower case) → bound Telegram account, for one territory."""
    rows = session.exec(select(AnimatorBinding.email, AnimatorBinding.telegram_user_id)
                        .where(AnimatorBinding.territory_id == territory_id)).all()
    return {email: user_id for email, user_id in rows}


def _accounts(animator: Animator, bound: dict[str, int]) -> set[int]:
    accounts = {bound[key]} if (key := animator.email.lower()) in bound else set()
    if animator.telegram_user_id is not None:
        accounts.add(animator.telegram_user_id)
    return accounts


def user_ids(session: Session, directory: TerritoryDirectory) -> set[int]:
    """The Telegram accounts of every animator (file or invitation)."""
    found = {a.telegram_user_id for t in directory.territories for a in t.animators
             if a.telegram_user_id is not None}
    configured = {(t.id, a.email.lower()) for t in directory.territories for a in t.animators}
    for territory_id, email, user_id in session.exec(select(
            AnimatorBinding.territory_id, AnimatorBinding.email,
            AnimatorBinding.telegram_user_id)).all():
        # A binding of an animator since removed from the files gives no access.
        if (territory_id, email) in configured:
            found.add(user_id)
    return found


def _identities(session: Session, directory: TerritoryDirectory,
                user_id: int) -> list[tuple[Territory, Animator]]:
    """The (territory, animator) pairs this Telegram account is, in file order."""
    bound = {(territory_id, email) for territory_id, email in session.exec(
        select(AnimatorBinding.territory_id, AnimatorBinding.email)
        .where(AnimatorBinding.telegram_user_id == user_id)).all()}
    return [(territory, animator) for territory in directory.territories
            for animator in territory.animators
            if animator.telegram_user_id == user_id
            or (territory.id, animator.email.lower()) in bound]


def territories_of(session: Session, directory: TerritoryDirectory,
                   user_id: int) -> list[Territory]:
    """The territories this Telegram account animates (access control)."""
    seen: dict[str, Territory] = {}
    for territory, _animator in _identities(session, directory, user_id):
        seen.setdefault(territory.id, territory)
    return list(seen.values())


def is_animator(session: Session, directory: TerritoryDirectory, user_id: int) -> bool:
    """Whether this Telegram account animates a territory."""
    return bool(_identities(session, directory, user_id))


def animator_of(session: Session, territory: Territory, user_id: int) -> Animator | None:
    """The territory's animator this Telegram account is, if any."""
    bound = _bound_in(session, territory.id)
    return next((a for a in territory.animators if user_id in _accounts(a, bound)), None)


def user_chats(session: Session, territory: Territory) -> list[int]:
    """Each animator's own Telegram chats (their team group aside)."""
    bound = _bound_in(session, territory.id)
    return sorted({chat for a in territory.animators for chat in _accounts(a, bound)})


def chats(session: Session, territory: Territory) -> list[str]:
    """Where the territory's animators get cards: their team group, else each animator."""
    if territory.telegram_group_id is not None:
        return [str(territory.telegram_group_id)]
    return [str(chat) for chat in user_chats(session, territory)]


def chats_of(session: Session, territories: Iterable[Territory]) -> dict[str, list[str]]:
    """`chats` of several territories (by id), their bindings read in one query."""
    wanted = {territory.id: territory for territory in territories}
    bound: dict[str, dict[str, int]] = {key: {} for key in wanted}
    if wanted:
        for territory_id, email, user_id in session.exec(
                select(AnimatorBinding.territory_id, AnimatorBinding.email,
                       AnimatorBinding.telegram_user_id)
                .where(col(AnimatorBinding.territory_id).in_(list(wanted)))).all():
            bound[territory_id][email] = user_id
    found: dict[str, list[str]] = {}
    for key, territory in wanted.items():
        if territory.telegram_group_id is not None:
            found[key] = [str(territory.telegram_group_id)]
            continue
        found[key] = [str(chat) for chat in sorted(
            {chat for a in territory.animators for chat in _accounts(a, bound[key])})]
    return found


def names(session: Session, territory: Territory) -> dict[str, str]:
    """`telegram:<id>` → the animator's name, for every account of the territory's animators."""
    bound = _bound_in(session, territory.id)
    return {f"telegram:{chat}": a.name for a in territory.animators
            for chat in _accounts(a, bound)}


# --- invitations, welcome, held messages ------------------------------------------------
class Animators:
    """Invitation links and bindings, the animator's welcome, and messages kept for them."""

    def __init__(self, territories: TerritoryDirectory, *, secret: str | None,
                 mail_domain: str, bot_username: str | None = None) -> None:
        self.territories = territories
        # Signs invitation links. Derived from the bot token, so that `relais invite` and
        # the running bot agree without another secret to configure; without a token (the
        # terminal try-out) links only work within the process.
        self._key = hashlib.sha256(b"relais-animator-invite:" + (
            secret.encode() if secret else secrets.token_bytes(32))).digest()
        self.mail_domain = mail_domain.lower()
        # Set by the runtime once Telegram told the bot its name (getMe).
        self.bot_username = bot_username
        # Set by the runtime: a newly bound chef de projet is exempt from the chat's limits.
        self.limits: ChatLimits | None = None

    # --- links ---------------------------------------------------------------------------
    def token(self, territory_id: str, email: str) -> str:
        """The animator's invitation token: a signature of the territory and the email."""
        mac = hmac.new(self._key, f"{territory_id}\n{email.lower()}".encode(),
                       hashlib.sha256).digest()[:_MAC_BYTES]
        return TOKEN_PREFIX + base64.urlsafe_b64encode(mac).decode("ascii")

    def link(self, territory_id: str, email: str) -> str | None:
        """`https://t.me/<bot>?start=<token>`, once the bot's username is known."""
        if not self.bot_username:
            return None
        return f"https://t.me/{self.bot_username}?start={self.token(territory_id, email)}"

    def find(self, token: str) -> tuple[Territory, Animator] | None:
        """The configured animator a token was made for, or None (forged, or since removed)."""
        token = token.strip()
        if not _TOKEN.fullmatch(token):
            return None
        for territory, animator in self._everyone():
            if hmac.compare_digest(token, self.token(territory.id, animator.email)):
                return territory, animator
        return None

    def _everyone(self) -> Iterator[tuple[Territory, Animator]]:
        for territory in self.territories.territories:
            for animator in territory.animators:
                yield territory, animator

    def bind(self, session: Session, token: str, user_id: int, *,
             now: datetime) -> tuple[Territory, Animator] | None:
        """Bind this Telegram account to the animator of the token; None if the token is not one."""
        found = self.find(token)
        if found is None:
            return None
        territory, animator = found
        row = session.get(AnimatorBinding, (territory.id, animator.email.lower()))
        if row is None:
            row = AnimatorBinding(territory_id=territory.id, email=animator.email.lower(),
                                  telegram_user_id=user_id, bound_at=now)
        elif row.telegram_user_id != user_id:
            # The link opened from another account (a new phone): the binding moves.
            row.telegram_user_id, row.bound_at = user_id, now
        session.add(row)
        session.flush()
        if self.limits is not None:
            self.limits.exempt_user(user_id)
        return found

    def invite(self, session: Session, territory: Territory, animator: Animator, *,
               now: datetime) -> int | None:
        """Queue the invitation email for one animator; its outbox row (None: no link yet)."""
        link = self.link(territory.id, animator.email)
        if link is None:
            return None
        body = t("animator.invite_email_body", name=animator.name, territory=territory.name,
                 link=link)
        key = hashlib.sha256(f"invite|{territory.id}|{animator.email.lower()}|"
                             f"{now.isoformat()}".encode()).hexdigest()[:24]
        return self._email(session, animator, subject=t("animator.invite_email_subject",
                                                        territory=territory.name).plain(),
                           body=body, message_id=f"<invite-{key}@{self.mail_domain}>", now=now)

    # --- /start --------------------------------------------------------------------------
    def start(self, session: Session, user_id: int, args: str, *,
              now: datetime) -> list[Message] | None:
        """An animator's /start (or an invitation opened): welcome, then what waits for them.

        None when the person is no animator and opened no invitation: the firm's /start.
        """
        bound_now = False
        if args.strip().startswith(TOKEN_PREFIX):
            if self.bind(session, args, user_id, now=now) is None:
                return [Message(t("animator.invite_invalid"))]
            bound_now = True
        identities = _identities(session, self.territories, user_id)
        if not identities:
            return None
        territory_names = list(dict.fromkeys(territory.name for territory, _ in identities))
        welcome = t("animator.welcome", name=identities[0][1].name,
                    territories=", ".join(territory_names))
        if bound_now:
            welcome = lines(welcome, t("animator.welcome_bound"))
        messages = [Message(welcome + t("animator.commands"))]
        messages += self._waiting(session, {a.email.lower() for _, a in identities}, now=now)
        return messages

    def _waiting(self, session: Session, emails: set[str], *, now: datetime) -> list[Message]:
        """The messages kept for these animators, oldest first, with how many wait."""
        rows = list(session.exec(select(HeldMessage).where(
            col(HeldMessage.email).in_(sorted(emails)), col(HeldMessage.shown_at).is_(None))
            .order_by(col(HeldMessage.id))))
        if not rows:
            return []
        shown: dict[str, Message] = {}
        cards = 0
        for row in rows:
            row.shown_at = now
            session.add(row)
            if row.source in shown:  # kept for two of the person's addresses
                continue
            shown[row.source] = Message.from_payload(row.payload)
            cards += row.need_id is not None
        others = len(shown) - cards
        parts = [t(f"animator.held_needs_{'one' if cards == 1 else 'other'}", count=cards)
                 if cards else None,
                 t(f"animator.held_messages_{'one' if others == 1 else 'other'}", count=others)
                 if others else None]
        what = [p for p in parts if p is not None]
        counted = t("animator.held_and", first=what[0], second=what[1]) if len(what) == 2 \
            else what[0]
        intro = t(f"animator.held_intro_{'one' if len(shown) == 1 else 'other'}", what=counted)
        return [Message(intro), *shown.values()]

    def commands_hint(self) -> Message:
        """One line saying which commands an animator has (after a free text)."""
        return Message(t("animator.commands_hint"))

    # --- messages Telegram cannot deliver --------------------------------------------------
    def keep_refused(self, session: Session, chat_id: int, message: Message, error: str, *,
                     source: str, now: datetime) -> int:
        """Telegram refused a message for good: an animator's is emailed and kept; how many."""
        if message.edit is not None or not any(w in error.lower() for w in _UNREACHABLE):
            # An edit of a message they never got, or a message Telegram finds malformed.
            return 0
        kept = 0
        for territory in self.territories.territories:
            if territory.telegram_group_id == chat_id:  # the bot left the team's group
                kept += sum(self._hold(session, territory, animator, message, source=source,
                                       now=now) for animator in territory.animators)
                continue
            bound = _bound_in(session, territory.id)
            kept += sum(self._hold(session, territory, animator, message, source=source,
                                   now=now)
                        for animator in territory.animators
                        if chat_id in _accounts(animator, bound))
        return kept

    def hold_for_unreachable(self, session: Session, territory: Territory, message: Message,
                             *, source: str, now: datetime) -> int:
        """A message for a territory's animators: kept for those Telegram cannot reach at all."""
        if territory.telegram_group_id is not None:
            return 0
        bound = _bound_in(session, territory.id)
        return sum(self._hold(session, territory, animator, message, source=source, now=now)
                   for animator in territory.animators if not _accounts(animator, bound))

    def _hold(self, session: Session, territory: Territory, animator: Animator,
              message: Message, *, source: str, now: datetime) -> bool:
        """Keep one message for one animator and email it at once (once per source)."""
        email = animator.email.lower()
        exists = session.exec(select(func.count()).select_from(HeldMessage).where(
            HeldMessage.email == email, HeldMessage.source == source)).one()
        if exists:
            return False
        session.add(HeldMessage(territory_id=territory.id, email=email, source=source,
                                need_id=_need_id(message), payload=message.to_payload(),
                                created_at=now))
        link = self.link(territory.id, animator.email)
        body = t("animator.held_email_intro", name=animator.name) + _text_of(message) + (
            t("animator.held_email_link", link=link) if link
            else t("animator.held_email_no_link"))
        key = hashlib.sha256(f"held|{email}|{source}".encode()).hexdigest()[:24]
        self._email(session, animator,
                    subject=t("animator.held_email_subject", title=_title(message)).plain(),
                    body=body, message_id=f"<held-{key}@{self.mail_domain}>", now=now)
        return True

    def _email(self, session: Session, animator: Animator, *, subject: str, body: Text,
               message_id: str, now: datetime) -> int:
        """Queue an email to an animator whose parts the email worker renders from `body`."""
        to = Address(display_name=one_line(animator.name, 120), addr_spec=animator.email)
        draft = EmailDraft(to=(str(to),), subject=one_line(subject, 160), text="", html="",
                           reply_to=None, message_id=message_id,
                           headers={"Auto-Submitted": "auto-generated"})
        # No territory id in the payload: an email refused for good would otherwise be
        # reported to the animators on Telegram, where this one could not reach them.
        return outbox.enqueue_payload(
            session, channel="email", recipient=animator.email, now=now,
            payload={"email": draft.to_payload(), "kind": "animator",
                     "body": Message(body).to_payload()})


def _need_id(message: Message) -> int | None:
    """The need a card is about, read from its buttons (None for other messages)."""
    for row in message.buttons:
        for button in row:
            match = _NEED_BUTTON.match(button.data)
            if match:
                return int(match.group(1))
    return None


def _text_of(message: Message) -> Text:
    """A message's text for an email (a message still written as Telegram HTML included)."""
    if message.legacy_html is not None:
        return plain(unescape(_TAG.sub("", message.legacy_html)))
    return message.text


def _title(message: Message) -> str:
    """The first line of a message (a card's title: "Nouvelle demande TI-2026-0042")."""
    first = _text_of(message).plain().strip().split("\n", 1)[0]
    return one_line(first, 90) or "Relais"

