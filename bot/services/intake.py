"""The intake form: a firm describes its need, one question per message, saved at every step.

The form is a table of steps (`STEPS`): each names its question, the prefix of its buttons,
how a typed answer or a pressed button is read, and when it is skipped. The engine moves
through the table; the turn framework (`bot/turn.py`) keeps the state (a `Conversation`
row: step + answers) in the same transaction as the replies. The steps are in the spirit
of python-telegram-bot's `ConversationHandler(states=…)`, with the state in the database.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.catalogue import label, t
from bot.catalogue.labels import contact_label, urgency_label
from bot.directory import FirmDirectory, LookupOutcome
from bot.messages import Button, Edit, Facts, Message, Span, Text, lines, plain
from bot.services.emails import new_reply_token
from bot.services.firms import activity_text, stored_facts
from bot.services.lifecycle import FIRM, next_reference, record_created
from bot.services.limits import ChatLimits
from bot.services.questions import QuestionService, looks_like_question
from bot.services.routing import RoutingService
from bot.services.types import Incoming, Reply
from bot.services.validation import (
    Invalid,
    format_phone,
    parse_company_name,
    parse_description,
    parse_email,
    parse_phone,
    parse_siret,
)
from bot.turn import Turn
from knowledge.firms import FirmRecord
from knowledge.geography import Commune, Geography
from knowledge.taxonomy import THEMES, theme_label
from knowledge.territories import TerritoryDirectory
from storage.models import Consent, Conversation, Need, NeedStatus

__all__ = ["EDITABLE", "FIELD_ORDER", "STEPS", "IntakeService", "Step"]

Rows = tuple[tuple[Button, ...], ...]
MAX_COMMUNE_BUTTONS = 12
MAX_FIRM_BUTTONS = 5
FIRM_BUTTON_LABEL = 60
_NUMBER_SEPARATORS = re.compile(r"[\s.\-]")
URGENCIES = ("week", "month", "quarter", "none")
CONTACT_METHODS = ("telegram", "phone", "email")
# Fields the summary's "Modifier" offers, and the step each one starts at.
EDITABLE: dict[str, str] = {
    "company_name": "company_name",
    "siret": "siret",
    "location": "location",
    "theme": "theme",
    "description": "description",
    "urgency": "urgency",
    "contact": "contact_method",
}


@dataclass(frozen=True, slots=True)
class Prefetched:
    """A directory answer fetched before the transaction, for the step it was asked for.

    The lookup is network I/O, so it cannot run inside the turn's transaction; the turn
    uses it only if the conversation is still at `step` with the same `key`.
    """

    step: str
    key: str  # the digits typed at the SIRET step, or the INSEE code searched
    lookup: LookupOutcome | None = None
    candidates: tuple[FirmRecord, ...] = ()


@dataclass(slots=True)
class Accept:
    """An answer taken: the values to store, where to go next, a line to say first."""

    values: dict[str, Any]
    goto: str | None = None
    preface: Text | None = None


Outcome = Accept | Invalid
Reader = Callable[["IntakeService", Conversation, str, "Prefetched | None"], Outcome]


@dataclass(frozen=True, slots=True)
class Step:
    """One question of the form."""

    name: str
    # The question and its buttons, from the answers so far.
    question: Callable[[IntakeService, dict[str, Any]], Message]
    # Data prefix of this step's buttons (a button of another step is stale).
    prefix: str | None = None
    # How a typed answer is read; None: buttons only (typed text gets a reminder).
    text: Reader | None = None
    # How a pressed button (the part after the prefix) is read.
    button: Reader | None = None
    # What the pressed button said, to mark the choice in the chat.
    chosen: Callable[[IntakeService, Conversation, str], str | None] | None = None
    # Skipped when moving forward if this says so (the answer is already known).
    skip: Callable[[IntakeService, dict[str, Any]], bool] | None = None
    # A typed text that looks like a question goes to the knowledge base first.
    kb_questions: bool = False


# --- readers ---------------------------------------------------------------------------
def _reason(value: object) -> Text:
    return value if isinstance(value, Text) else plain(value)


def _accept_or(value: str | Invalid, key: str) -> Outcome:
    return value if isinstance(value, Invalid) else Accept({key: value})


def _read_company_name(form: IntakeService, conv: Conversation, text: str,
                       found: Prefetched | None) -> Outcome:
    return _accept_or(parse_company_name(text), "company_name")


def _read_siret(form: IntakeService, conv: Conversation, text: str,
                found: Prefetched | None) -> Outcome:
    """A SIRET (or a SIREN the directory knows); the directory's answer is confirmed next."""
    digits = _NUMBER_SEPARATORS.sub("", text)
    lookup = found.lookup if found and found.step == "siret" and found.key == digits else None
    record = lookup.record if lookup is not None else None
    if record is not None and record.diffusible and record.name:
        # A SIREN gives the legal unit and its head office, which may be elsewhere.
        pending = {**record.to_json(), "by_siren": len(digits) == 9}
        return Accept({"firm_pending": pending}, goto="firm_confirm")
    parsed = parse_siret(text)
    if isinstance(parsed, Invalid):
        return parsed
    # Not found, masked or unreachable: the number stays as typed and the form goes on.
    notice = (t("firm.firm_not_found")
              if lookup is not None and lookup.status == "not_found" else None)
    return Accept({"siret": parsed, "siren": None, "firm": None, "firm_pending": None},
                  preface=notice)


def _press_siret(form: IntakeService, conv: Conversation, value: str,
                 found: Prefetched | None) -> Outcome:
    if value == "skip":
        return Accept({"siret": None, "siren": None, "firm": None, "firm_pending": None})
    return Invalid(label("firm.stale_button"))


def _press_firm_confirm(form: IntakeService, conv: Conversation, value: str,
                        found: Prefetched | None) -> Outcome:
    """"Oui": take the directory's name (and commune, for a SIRET); "Non": ask again."""
    pending = conv.answers.get("firm_pending")
    if not pending or value not in {"yes", "no"}:
        return Invalid(label("firm.stale_button"))
    if value == "no":
        return Accept({"firm_pending": None}, goto="siret", preface=t("firm.firm_correct"))
    record = FirmRecord.from_json(pending)
    values: dict[str, Any] = {
        "firm_pending": None,
        "firm": stored_facts(record),
        "company_name": (record.name or "")[:120] or conv.answers.get("company_name"),
    }
    if record.siret and not pending.get("by_siren"):
        values.update({"siret": record.siret, "siren": None})
        commune = form.geography.by_insee(record.commune_insee or "")
        if commune is not None:
            values.update({**_commune_answers(commune), "location_candidates": None})
    else:
        # A SIREN gives the head office: the establishment's commune is still asked.
        values.update({"siret": None, "siren": record.siren})
    return Accept(values)


def _read_location(form: IntakeService, conv: Conversation, text: str,
                   found: Prefetched | None) -> Outcome:
    query = " ".join(text.split())
    if len(query) < 2:
        return Invalid(t("firm.location_too_short"))  # type: ignore[arg-type]
    resolved = form.geography.resolve(query, limit=MAX_COMMUNE_BUTTONS, suggest=True)
    if resolved.status == "found":
        commune = resolved.communes[0]
        accepted = Accept({**_commune_answers(commune), "location_candidates": None,
                           "location_suggested": None})
        return _with_candidates(accepted, conv, commune, found)
    if resolved.status in ("ambiguous", "suggested"):
        # A suggestion is a guess at a typo: the same buttons, asked as "Vouliez-vous dire".
        return Accept(
            {"location_candidates": [c.insee for c in resolved.communes[:MAX_COMMUNE_BUTTONS]],
             "location_suggested": resolved.status == "suggested" or None},
            goto="location_choice",
        )
    if resolved.unknown_postcode:
        return Invalid(t("firm.location_unknown_postcode",  # type: ignore[arg-type]
                         code="".join(query.split())))
    return Invalid(t("firm.location_not_found", query=query[:60]))  # type: ignore[arg-type]


def _press_location(form: IntakeService, conv: Conversation, value: str,
                    found: Prefetched | None) -> Outcome:
    if value == "none":
        return Accept({"location_candidates": None, "location_suggested": None}, goto="location")
    commune = form.geography.by_insee(value)
    if commune is None or value not in (conv.answers.get("location_candidates") or []):
        return Invalid(label("firm.stale_button"))
    accepted = Accept({**_commune_answers(commune), "location_candidates": None,
                       "location_suggested": None})
    return _with_candidates(accepted, conv, commune, found)


def _press_firm_choice(form: IntakeService, conv: Conversation, value: str,
                       found: Prefetched | None) -> Outcome:
    candidates = conv.answers.get("firm_candidates") or []
    if value == "none":
        return Accept({"firm_candidates": None})
    if not value.isdigit() or int(value) >= len(candidates):
        return Invalid(label("firm.stale_button"))
    record = FirmRecord.from_json(candidates[int(value)])
    return Accept({"firm_candidates": None, "firm": stored_facts(record),
                   "siret": record.siret, "siren": None if record.siret else record.siren})


def _press_choice(key: str, allowed: Callable[[], tuple[str, ...]]) -> Reader:
    def read(form: IntakeService, conv: Conversation, value: str,
             found: Prefetched | None) -> Outcome:
        if value not in allowed():
            return Invalid(label("firm.stale_button"))
        return Accept({key: value})
    return read


def _press_contact(form: IntakeService, conv: Conversation, value: str,
                   found: Prefetched | None) -> Outcome:
    if value not in CONTACT_METHODS:
        return Invalid(label("firm.stale_button"))
    if value == "telegram":
        return Accept({"contact_method": value, "contact_value": None})
    return Accept({"contact_method": value}, goto="contact_value")


def _read_description(form: IntakeService, conv: Conversation, text: str,
                      found: Prefetched | None) -> Outcome:
    return _accept_or(parse_description(text), "description")


def _read_contact_value(form: IntakeService, conv: Conversation, text: str,
                        found: Prefetched | None) -> Outcome:
    parser = parse_phone if conv.answers.get("contact_method") == "phone" else parse_email
    return _accept_or(parser(text), "contact_value")


def _press_out_of_territory(form: IntakeService, conv: Conversation, value: str,
                            found: Prefetched | None) -> Outcome:
    if value == "go":
        return Accept({"outside_ack": conv.answers.get("epci_siren") or "none"})
    if value == "stop":
        return Accept({"_summary": "cancel"})
    return Invalid(label("firm.stale_button"))


def _press_summary(form: IntakeService, conv: Conversation, value: str,
                   found: Prefetched | None) -> Outcome:
    if value not in {"confirm", "edit", "cancel"}:
        return Invalid(label("firm.stale_button"))
    return Accept({"_summary": value})


def _press_edit(form: IntakeService, conv: Conversation, value: str,
                found: Prefetched | None) -> Outcome:
    if value not in EDITABLE and value != "back":
        return Invalid(label("firm.stale_button"))
    return Accept({"_edit": value})


# --- questions -------------------------------------------------------------------------
def _rows(buttons: list[Button], per_row: int = 1) -> Rows:
    return tuple(tuple(buttons[i : i + per_row]) for i in range(0, len(buttons), per_row))


def _ask_siret(form: IntakeService, answers: dict[str, Any]) -> Message:
    question = t("firm.ask_siret_lookup" if form.firms is not None else "firm.ask_siret")
    return Message(question, ((Button(label("firm.btn_no_siret"), "siret:skip"),),))


def _ask_firm_confirm(form: IntakeService, answers: dict[str, Any]) -> Message:
    pending = answers.get("firm_pending") or {}
    details = []
    activity = activity_text(pending)
    if activity:
        details.append(activity)
    if pending.get("size_label"):
        details.append(pending["size_label"])
    # The directory writes communes in capitals; the geography has the usual spelling.
    known = form.geography.by_insee(pending.get("commune_insee") or "")
    commune = known.name if known else (pending.get("commune_name") or "—").title()
    text = t("firm.firm_found_siren" if pending.get("by_siren") else "firm.firm_found",
             name=pending.get("name") or "", commune=commune,
             details="".join(f", {d}" for d in details))
    if pending.get("etat_administratif") == "F":
        text = t("firm.firm_closed_warning") + text
    return Message(text, ((Button(label("firm.btn_firm_yes"), "fc:yes"),
                           Button(label("firm.btn_firm_no"), "fc:no")),))


def _ask_firm_choice(form: IntakeService, answers: dict[str, Any]) -> Message:
    candidates = answers.get("firm_candidates") or []
    buttons = [Button(_candidate_label(c), f"fch:{i}") for i, c in enumerate(candidates)]
    buttons.append(Button(label("firm.btn_none_of_these_firms"), "fch:none"))
    return Message(t("firm.ask_firm_choice", commune=answers.get("commune_name") or ""),
                   _rows(buttons, 1))


def _ask_location_choice(form: IntakeService, answers: dict[str, Any]) -> Message:
    communes = [c for c in (form.geography.by_insee(code)
                            for code in answers.get("location_candidates") or [])
                if c is not None]
    buttons = [Button(c.label(), f"loc:{c.insee}") for c in communes]
    buttons.append(Button(label("firm.btn_none_of_these_communes"), "loc:none"))
    if answers.get("location_suggested"):
        if len(communes) == 1:
            question = t("firm.ask_location_suggestion", commune=communes[0].label())
        else:
            question = t("firm.ask_location_suggestions")
        return Message(question, _rows(buttons, 2))
    return Message(t("firm.ask_location_choice"), _rows(buttons, 2))


def _ask_out_of_territory(form: IntakeService, answers: dict[str, Any]) -> Message:
    return Message(t("firm.ask_out_of_territory", commune=answers.get("commune_name") or ""),
                   ((Button(label("firm.btn_go_on_anyway"), "oot:go"),),
                    (Button(label("firm.btn_stop_here"), "oot:stop"),)))


def _ask_theme(form: IntakeService, answers: dict[str, Any]) -> Message:
    buttons = [Button(name, f"theme:{key}") for key, name in THEMES.items()]
    return Message(t("firm.ask_theme"), _rows(buttons, 1))


def _ask_urgency(form: IntakeService, answers: dict[str, Any]) -> Message:
    buttons = [Button(urgency_label(key), f"urg:{key}") for key in URGENCIES]
    return Message(t("firm.ask_urgency"), _rows(buttons, 2))


def _ask_contact_method(form: IntakeService, answers: dict[str, Any]) -> Message:
    buttons = [Button(contact_label(key), f"cm:{key}") for key in CONTACT_METHODS]
    return Message(t("firm.ask_contact_method"), _rows(buttons, 1))


def _ask_contact_value(form: IntakeService, answers: dict[str, Any]) -> Message:
    phone = answers.get("contact_method") == "phone"
    return Message(t("firm.ask_phone" if phone else "firm.ask_email"))


def _ask_summary(form: IntakeService, answers: dict[str, Any]) -> Message:
    return Message(
        summary_text(answers),
        ((Button(label("firm.btn_confirm"), "sum:confirm"),),
         (Button(label("firm.btn_edit"), "sum:edit"),
          Button(label("firm.btn_cancel"), "sum:cancel"))),
    )


def _ask_edit(form: IntakeService, answers: dict[str, Any]) -> Message:
    buttons = [Button(field_label(key), f"edit:{key}") for key in EDITABLE]
    buttons.append(Button(label("firm.btn_back_to_summary"), "edit:back"))
    return Message(t("firm.ask_edit_field"), _rows(buttons, 2))


def _just(key: str) -> Callable[[IntakeService, dict[str, Any]], Message]:
    return lambda form, answers: Message(t(key))


# --- what a pressed button said --------------------------------------------------------
def _chosen_firm(form: IntakeService, conv: Conversation, value: str) -> str | None:
    if value == "none":
        return label("firm.btn_none_of_these_firms")
    candidates = conv.answers.get("firm_candidates") or []
    index = int(value) if value.isdigit() else len(candidates)
    return _candidate_label(candidates[index]) if index < len(candidates) else None


def _chosen_commune(form: IntakeService, conv: Conversation, value: str) -> str | None:
    if value == "none":
        return label("firm.btn_none_of_these_communes")
    commune = form.geography.by_insee(value)
    return commune.label() if commune else None


def _chosen_from(labels: Callable[[], dict[str, str]]) -> Callable[
        [IntakeService, Conversation, str], str | None]:
    return lambda form, conv, value: labels().get(value)


STEPS: dict[str, Step] = {step.name: step for step in (
    # The SIRET comes first: the public directory then gives the name and the commune.
    Step("siret", _ask_siret, prefix="siret", text=_read_siret, button=_press_siret,
         chosen=_chosen_from(lambda: {"skip": label("firm.btn_no_siret")}), kb_questions=True),
    Step("firm_confirm", _ask_firm_confirm, prefix="fc", button=_press_firm_confirm,
         chosen=_chosen_from(lambda: {"yes": label("firm.btn_firm_yes"),
                                      "no": label("firm.btn_firm_no")}),
         skip=lambda f, a: not a.get("firm_pending")),
    Step("company_name", _just("firm.ask_company_name"), text=_read_company_name,
         skip=lambda f, a: bool(a.get("company_name")), kb_questions=True),
    Step("location", _just("firm.ask_location"), text=_read_location,
         skip=lambda f, a: bool(a.get("commune_insee")), kb_questions=True),
    Step("location_choice", _ask_location_choice, prefix="loc", button=_press_location,
         chosen=_chosen_commune, skip=lambda f, a: not a.get("location_candidates")),
    Step("firm_choice", _ask_firm_choice, prefix="fch", button=_press_firm_choice,
         chosen=_chosen_firm, skip=lambda f, a: not a.get("firm_candidates")),
    # Skipped when chosen from a programme card before the form started.
    # Right after the commune: the firm learns at once when no territory covers it.
    Step("out_of_territory", _ask_out_of_territory, prefix="oot", button=_press_out_of_territory,
         chosen=_chosen_from(lambda: {"go": label("firm.btn_go_on_anyway"),
                                      "stop": label("firm.btn_stop_here")}),
         skip=lambda f, a: not f.uncovered(a)),
    Step("theme", _ask_theme, prefix="theme", button=_press_choice("theme", lambda: tuple(THEMES)),
         chosen=_chosen_from(lambda: dict(THEMES)), skip=lambda f, a: bool(a.get("theme"))),
    Step("description", _just("firm.ask_description"), text=_read_description),
    Step("urgency", _ask_urgency, prefix="urg", button=_press_choice("urgency", lambda: URGENCIES),
         chosen=_chosen_from(lambda: {k: urgency_label(k) for k in URGENCIES})),
    Step("contact_method", _ask_contact_method, prefix="cm", button=_press_contact,
         chosen=_chosen_from(lambda: {k: contact_label(k) for k in CONTACT_METHODS})),
    Step("contact_value", _ask_contact_value, text=_read_contact_value,
         skip=lambda f, a: a.get("contact_method") in (None, "telegram"), kb_questions=True),
    Step("summary", _ask_summary, prefix="sum", button=_press_summary,
         chosen=_chosen_from(lambda: {"confirm": label("firm.btn_confirm"),
                                      "edit": label("firm.btn_edit"),
                                      "cancel": label("firm.btn_cancel")})),
    # Not in the forward order: reached from the summary's "Modifier".
    Step("edit_choice", _ask_edit, prefix="edit", button=_press_edit,
         chosen=lambda form, conv, value: (field_label(value) if value in EDITABLE
                                           else label("firm.btn_back_to_summary"))),
)}
# The forward order of the questions; `edit_choice` is reached from the summary only.
FIELD_ORDER: tuple[str, ...] = tuple(name for name in STEPS if name != "edit_choice")
PREFIXES: frozenset[str] = frozenset(s.prefix for s in STEPS.values() if s.prefix)


class IntakeService:
    """The intake form: asks its questions, reads the answers, and files the need."""

    def __init__(
        self,
        geography: Geography,
        territories: TerritoryDirectory,
        questions: QuestionService,
        routing: RoutingService,
        *,
        tz: ZoneInfo,
        firms: FirmDirectory | None = None,
        limits: ChatLimits | None = None,
    ) -> None:
        self.geography = geography
        # Needs a person may file a day (RELAIS_LIMIT_NEEDS_PER_DAY); None: no limit.
        self.limits = limits
        self.territories = territories
        self.questions = questions
        self.routing = routing
        self.firms = firms
        self.tz = tz

    # --- before the transaction --------------------------------------------------------
    async def prefetch(self, event: Incoming, peek: Callable[[int], Any]) -> Prefetched | None:
        """Ask the company directory what this answer will need, before the transaction."""
        if self.firms is None or event.kind not in {"text", "button"}:
            return None
        if event.kind == "button" and not event.value.startswith("loc:"):
            return None
        conv = await peek(event.chat_id)
        if conv is None:
            return None
        step, answers = conv.step, conv.answers
        if step == "siret":
            digits = _NUMBER_SEPARATORS.sub("", event.value)
            if event.kind == "text" and digits.isdigit() and len(digits) in {9, 14}:
                return Prefetched(step, digits, lookup=await self.firms.lookup_number(digits))
            return None
        if not _wants_search(answers):
            return None
        insee = None
        if step == "location" and event.kind == "text":
            resolved = self.geography.resolve(" ".join(event.value.split()),
                                              limit=MAX_COMMUNE_BUTTONS)
            if resolved.status == "found":
                insee = resolved.communes[0].insee
        elif step == "location_choice" and event.kind == "button":
            insee = event.value.partition(":")[2]
        if not insee or self.geography.by_insee(insee) is None:
            return None
        records = await self.firms.search(answers["company_name"], insee,
                                          limit=MAX_FIRM_BUTTONS)
        usable = tuple(r for r in records if r.diffusible and r.name)
        return Prefetched(step, insee, candidates=usable)

    # --- starting ----------------------------------------------------------------------
    def begin(self, turn: Turn, theme: str = "") -> None:
        """Open a new form (consent given), with the theme already known if any."""
        theme = theme if theme in THEMES else ""
        conv = turn.open_conversation(FIELD_ORDER[0], {"theme": theme} if theme else {})
        preface = t("firm.theme_prefilled", theme=theme_label(theme)) if theme else None
        if preface is not None:
            turn.say(Message(preface))
        self._goto(conv, self._next_step(None, conv.answers), turn.now)
        self.ask(turn)

    def ask(self, turn: Turn, *, preface: Text | None = None) -> None:
        """Say the pending question of the chat's form, with its buttons."""
        conv = turn.conversation
        assert conv is not None
        message = STEPS[conv.step].question(self, conv.answers)
        if preface:
            message = Message(preface + message.text, message.buttons)
        turn.say(message)

    def welcome_back(self, turn: Turn) -> None:
        """Greet a returning firm and ask the pending question again."""
        turn.say(Message(t("firm.welcome_back")))
        self.ask(turn)

    def uncovered(self, answers: dict[str, Any]) -> bool:
        """A commune is known, no territory covers it, and the firm has not said to go on."""
        epci = answers.get("epci_siren")
        if not answers.get("commune_insee") or self.territories.for_epci(epci) is not None:
            return False
        return answers.get("outside_ack") != (epci or "none")

    # --- answers -----------------------------------------------------------------------
    def on_button(self, turn: Turn) -> Reply | None:
        """A button of the form: read it, mark the choice, move on."""
        conv = turn.conversation
        prefix, _, value = turn.event.value.partition(":")
        step = STEPS.get(conv.step) if conv is not None else None
        if conv is None or step is None or step.prefix != prefix or step.button is None:
            # A button of a question already answered (or of a cancelled form).
            return Reply(toast=label("firm.stale_button"))
        outcome = step.button(self, conv, value, turn.prefetched)
        if isinstance(outcome, Invalid):
            return Reply(toast=str(_reason(outcome.reason).plain()))
        chosen = step.chosen(self, conv, value) if step.chosen else None
        if chosen:
            mark_choice(turn, chosen)
        self._advance(turn, outcome)
        return None

    def on_text(self, turn: Turn) -> Reply | None:
        """Typed text while the form is open: an answer, or a question asked on the way."""
        conv = turn.conversation
        assert conv is not None
        step = STEPS[conv.step]
        if self._answered_as_question(turn, step):
            return None
        if step.text is None:
            self.ask(turn, preface=t("firm.use_buttons"))
            return None
        outcome = step.text(self, conv, turn.event.value, turn.prefetched)
        if isinstance(outcome, Invalid):
            self.ask(turn, preface=_reason(outcome.reason))
            return None
        self._advance(turn, outcome)
        return None

    def buttons_only(self, conv: Conversation) -> bool:
        """Whether the pending question is answered by buttons only."""
        return STEPS[conv.step].text is None

    def _answered_as_question(self, turn: Turn, step: Step) -> bool:
        """A question typed in the middle of the form: answer it, then ask the form again."""
        text = turn.event.value
        if step.text is not None and not (step.kb_questions and looks_like_question(text)):
            return False
        refused = self.questions.over_limit(turn.event.user_id, turn.now)
        if refused is not None:
            # Over the questions' limit: the notice (and the pending question) once, then
            # nothing until the minute is over.
            turn.reply.messages.extend(refused)
            if refused:
                self.ask(turn)
            return True
        if step.text is None:
            answer = self.questions.ask(text)
            if answer.out_of_scope:
                return False
        elif step.kb_questions and looks_like_question(text):
            answer = self.questions.ask(text)
        else:
            return False
        turn.reply.messages.extend(self.questions.answer(
            turn.session, text, channel=turn.event.channel, now=turn.now, answer=answer,
            owner=turn.event.chat_id))
        self.ask(turn)
        return True

    # --- moving through the form -------------------------------------------------------
    def _advance(self, turn: Turn, outcome: Accept) -> None:
        conv = turn.conversation
        assert conv is not None
        values = dict(outcome.values)
        summary_action = values.pop("_summary", None)
        edit_action = values.pop("_edit", None)
        if summary_action == "confirm":
            self._submit(turn)
            return
        if summary_action == "cancel":
            turn.drop_conversation()
            turn.say(Message(t("firm.cancelled")))
            return
        if summary_action == "edit":
            self._goto(conv, "edit_choice", turn.now)
            self.ask(turn)
            return
        if edit_action is not None:
            if edit_action == "back":
                self._goto(conv, "summary", turn.now)
            else:
                conv.return_to_summary = True
                self._goto(conv, EDITABLE[edit_action], turn.now)
            self.ask(turn)
            return
        answers = {**conv.answers, **values}
        conv.answers = answers
        if outcome.goto is not None and (
            outcome.goto != "firm_choice" or answers.get("firm_candidates")
        ):
            next_step = outcome.goto
        elif conv.return_to_summary:
            # A commune changed from the summary is checked like the first one.
            next_step = "out_of_territory" if self.uncovered(answers) else "summary"
        else:
            next_step = self._next_step(conv.step, answers)
        if next_step == "summary":
            conv.return_to_summary = False
        self._goto(conv, next_step, turn.now)
        self.ask(turn, preface=outcome.preface)

    def _next_step(self, step: str | None, answers: dict[str, Any]) -> str:
        """The first step after `step` (or the first of all) that is not skipped."""
        index = FIELD_ORDER.index(step) if step in FIELD_ORDER else -1
        for candidate in FIELD_ORDER[index + 1 :]:
            skip = STEPS[candidate].skip
            if skip is None or not skip(self, answers):
                return candidate
        return "summary"

    @staticmethod
    def _goto(conv: Conversation, step: str, now: datetime) -> None:
        conv.step = step
        conv.version += 1
        conv.updated_at = now

    # --- submission --------------------------------------------------------------------
    def _submit(self, turn: Turn) -> None:
        conv = turn.conversation
        assert conv is not None
        session, now, answers = turn.session, turn.now, conv.answers
        if self.limits is not None and not self.limits.may_file_need(session, conv.user_id,
                                                                      now):
            # The form stays as it is (at the summary): it can be sent tomorrow.
            turn.say(Message(t("firm.limits_needs_per_day",
                               count=self.limits.needs_per_day)))
            return
        territory = self.territories.for_epci(answers.get("epci_siren"))
        consent = session.get(Consent, conv.user_id)
        telegram = conv.channel == "telegram"
        need = Need(
            reference=next_reference(session, now.astimezone(self.tz).year),
            status=NeedStatus.SUBMITTED.value, created_at=now, updated_at=now,
            channel=conv.channel, theme=answers["theme"], urgency=answers["urgency"],
            firm_name=answers["company_name"], siret=answers.get("siret"),
            description=answers["description"], contact_method=answers["contact_method"],
            contact_value=answers.get("contact_value"),
            telegram_chat_id=conv.chat_id if telegram else None,
            telegram_user_id=conv.user_id if telegram else None,
            commune_insee=answers["commune_insee"], commune_name=answers["commune_name"],
            reply_token=new_reply_token(), firm=answers.get("firm"),
            epci_siren=answers.get("epci_siren"), epci_name=answers.get("epci_name"),
            territory_id=territory.id if territory else None,
            consent_at=consent.given_at if consent else now,
        )
        session.add(need)
        session.flush()
        assert need.id is not None
        record_created(session, need, actor=FIRM, now=now)
        turn.drop_conversation()
        routed = self.routing.route_new_need(session, need, now)
        turn.reply.others.extend(routed.animator_messages)
        text = t("firm.need_recorded", reference=need.reference)
        if routed.partner_names:
            text = lines(text, t("firm.routed_to", partners=", ".join(routed.partner_names)))
        if territory is not None:
            text = lines(text, t("firm.next_step_animator", animator=territory.animators[0].name,
                                  territory=territory.name, days=territory.response_days))
        else:
            text = lines(text, t("firm.next_step_no_territory",
                                  commune=answers["commune_name"]))
        turn.say(Message(lines(text, t("firm.after_recorded"))))


# --- shared helpers --------------------------------------------------------------------
def mark_choice(turn: Turn, chosen: str) -> None:
    """Show, in place of the pressed buttons, what the person chose."""
    event = turn.event
    if event.message_id is not None and event.origin_html is not None:
        turn.say(Message(t("common.choice_mark", choice=chosen),
                         edit=Edit(event.message_id, event.origin_html)))


def field_label(key: str) -> str:
    """The French name of a form field (summary, "Modifier")."""
    return label(f"firm.field_{key}")


def summary_text(answers: dict[str, Any]) -> Text:
    """The recap of the answers, for the firm to check before sending."""
    def value(text: str | None) -> tuple[Span, ...]:
        return (Span(text),) if text else (Span(label("firm.not_given"), "italic"),)

    method = answers.get("contact_method", "telegram")
    contact = contact_label(method)
    if method == "phone" and answers.get("contact_value"):
        contact = f"{contact} ({format_phone(answers['contact_value'])})"
    elif method == "email" and answers.get("contact_value"):
        contact = f"{contact} ({answers['contact_value']})"
    commune = answers.get("commune_name")
    if commune:
        commune = f"{commune} ({answers.get('commune_insee')})"
    siret = answers.get("siret")
    if not siret and answers.get("siren"):
        siret = f"SIREN {answers['siren']}"
    rows: list[tuple[str, tuple[Span, ...]]] = [
        (field_label("company_name"), value(answers.get("company_name"))),
        (field_label("siret"), value(siret)),
    ]
    firm = answers.get("firm")
    if firm:
        activity = " · ".join(p for p in (activity_text(firm), firm.get("size_label") or "") if p)
        rows.append((field_label("activity"), value(activity or None)))
    rows += [
        (field_label("location"), value(commune)),
        (field_label("theme"),
         value(theme_label(answers["theme"]) if answers.get("theme") else None)),
        (field_label("description"), value(answers.get("description"))),
        (field_label("urgency"),
         value(urgency_label(answers["urgency"]) if answers.get("urgency") else None)),
        (field_label("contact"), value(contact)),
    ]
    return Text((*t("firm.summary_title").blocks, Facts(tuple(rows)),
                 *t("firm.summary_question").blocks))


def _wants_search(answers: dict[str, Any]) -> bool:
    """Search the directory by name only when the firm gave a name but no SIRET."""
    return bool(answers.get("company_name")) and not (
        answers.get("siret") or answers.get("siren") or answers.get("firm")
    )


def _with_candidates(
    accepted: Accept, conv: Conversation, commune: Commune | None, found: Prefetched | None
) -> Accept:
    """Offer the directory's firms of that commune, when a name search found some."""
    if (
        commune is None or found is None or found.step != conv.step
        or found.key != commune.insee or not found.candidates
        or not _wants_search(conv.answers)
    ):
        return accepted
    values = {**accepted.values,
              "firm_candidates": [r.to_json() for r in found.candidates[:MAX_FIRM_BUTTONS]]}
    return Accept(values, goto="firm_choice")


def _candidate_label(candidate: dict[str, Any]) -> str:
    """'FONDERIE DU CHAROLAIS · fonderie de fonte', cut to fit a phone's button."""
    name = candidate.get("name") or label("firm.firm_unknown_name")
    naf = candidate.get("naf_label")
    text = f"{name} · {naf[:1].lower()}{naf[1:]}" if naf else name
    return text if len(text) <= FIRM_BUTTON_LABEL else text[: FIRM_BUTTON_LABEL - 1] + "…"


def _commune_answers(commune: Commune) -> dict[str, Any]:
    return {
        "commune_insee": commune.insee,
        "commune_name": commune.name,
        "epci_siren": commune.epci_siren,
        "epci_name": commune.epci_name,
    }


