"""The `relais` command line: run the bot, try it in a terminal, inspect stored needs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Callable
from typing import Annotated, Any, BinaryIO

import typer
from pydantic import ValidationError
from sqlmodel import Session, col, select

from bot.config import Settings, load_settings
from knowledge.territories import TerritoryError
from storage.models import Need

# Needs an export reads at a time: its memory, whatever the number of needs.
EXPORT_CHUNK = 1000

__all__ = ["app"]

app = typer.Typer(
    name="relais",
    help="Relais : l'assistant Telegram et e-mail des Territoires d'industrie.",
    no_args_is_help=True,
    add_completion=False,
)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"relais : {message}", err=True)
    return typer.Exit(code)


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise _fail(f"configuration invalide ({err['loc'][0]}) : {err['msg']}") from None


async def _services(settings: Settings):
    from bot.runtime import build_services

    try:
        services = await build_services(settings)
    except TerritoryError as exc:
        raise _fail(f"territoires : {exc}") from None
    # build_services froze what start-up built out of the collector's full passes
    # (bot.runtime.freeze_startup_heap).
    return services


def _prepare_process(settings: Settings, *, verbose: bool) -> None:
    """Logging with every secret masked, then the schema migrations (unless disabled)."""
    from bot.logs import configure_logging

    configure_logging(secrets=(settings.telegram_bot_token, settings.smtp_password,
                               settings.imap_password, settings.webhook_secret,
                               settings.metrics_token),
                      as_json=settings.log_json, verbose=verbose)
    if settings.auto_migrate:
        from storage.migrate import upgrade

        _prepare_sqlite_dir(settings.database_url)
        upgrade(settings.database_url)


@app.command()
def run(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Journal détaillé.")] = False,
) -> None:
    """Lance le bot Telegram (long polling sur TELEGRAM_API_URL)."""
    settings = _settings()
    if not settings.telegram_bot_token:
        raise _fail(
            "la variable TELEGRAM_BOT_TOKEN n'est pas définie (jeton donné par @BotFather). "
            "Pour essayer sans jeton : relais chat"
        )
    _prepare_process(settings, verbose=verbose)
    from telegram.error import InvalidToken

    from bot.runtime import run_forever

    async def main() -> None:
        services = await _services(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await run_forever(services, stop)
        finally:
            await services.db.dispose()

    try:
        asyncio.run(main())
    except InvalidToken:
        raise _fail("Telegram refuse le jeton TELEGRAM_BOT_TOKEN (invalide ou révoqué).") from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Adresse d'écoute.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Port d'écoute.")] = 8080,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Journal détaillé.")] = False,
) -> None:
    """Lance le bot en mode webhook (plusieurs instances derrière un répartiteur)."""
    settings = _settings()
    missing = [name for name, value in (("TELEGRAM_BOT_TOKEN", settings.telegram_bot_token),
                                        ("WEBHOOK_URL", settings.webhook_url),
                                        ("WEBHOOK_SECRET", settings.webhook_secret))
               if not value]
    if missing:
        raise _fail(_text("animator.cli_missing_variable" if len(missing) == 1
                          else "animator.cli_missing_variables", names=", ".join(missing)))
    _prepare_process(settings, verbose=verbose)
    from bot.runtime import serve_forever

    async def main() -> None:
        services = await _services(settings)
        try:
            await serve_forever(services, host=host, port=port)
        finally:
            await services.db.dispose()

    asyncio.run(main())


@app.command()
def chat(
    user_id: Annotated[int, typer.Option(help="Identifiant Telegram simulé.")] = 1,
    name: Annotated[str, typer.Option(help="Prénom simulé.")] = "Camille",
) -> None:
    """Essayez le bot dans le terminal, sans réseau ni jeton."""
    from bot.logs import configure_logging
    from bot.terminal import chat_log_path, run_terminal_chat

    settings = _settings()
    # The terminal shows the conversation only: every log line (and warning) goes to a file.
    log_path = chat_log_path(settings)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    configure_logging(secrets=(settings.telegram_bot_token, settings.smtp_password,
                               settings.imap_password, settings.webhook_secret),
                      as_json=settings.log_json, path=log_path)
    logging.captureWarnings(True)
    asyncio.run(run_terminal_chat(settings, user_id=user_id, first_name=name,
                                  log_path=log_path))


def _need_row(need: Need) -> dict[str, object]:
    return {
        "reference": need.reference,
        "status": need.status,
        "theme": need.theme,
        "urgency": need.urgency,
        "firm_name": need.firm_name,
        "commune_insee": need.commune_insee,
        "commune_name": need.commune_name,
        "epci_siren": need.epci_siren,
        "epci_name": need.epci_name,
        "territory_id": need.territory_id,
        "created_at": need.created_at.isoformat(),
        "updated_at": need.updated_at.isoformat(),
    }


@app.command()
def needs(
    as_json: Annotated[bool, typer.Option("--json", help="Sortie JSON.")] = False,
    limit: Annotated[int, typer.Option(help="Nombre maximum de demandes.")] = 200,
) -> None:
    """Liste les demandes enregistrées (les plus récentes d'abord)."""
    settings = _settings()
    from storage.db import Database

    async def fetch() -> list[dict[str, object]]:
        db = Database(settings.database_url)
        await db.create_all()

        def work(session: Session) -> list[dict[str, object]]:
            rows = session.exec(select(Need).order_by(col(Need.id).desc()).limit(limit)).all()
            return [_need_row(n) for n in rows]

        try:
            return await db.run(work)
        finally:
            await db.dispose()

    rows = asyncio.run(fetch())
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        typer.echo(_text("animator.cli_needs_none"))
        return
    tz = settings.tz
    from datetime import datetime

    from bot.catalogue.labels import status_label
    from knowledge.taxonomy import theme_noun

    # The JSON keeps the stored keys (for scripts); people read the French labels.
    for row in rows:
        created = datetime.fromisoformat(str(row["created_at"])).astimezone(tz)
        typer.echo(_text(
            "animator.cli_needs_line", reference=row["reference"],
            status=f"{status_label(str(row['status'])):<25}",
            theme=f"{theme_noun(str(row['theme'])):<26}", insee=row["commune_insee"],
            commune=row["commune_name"], epci_siren=row["epci_siren"] or "-",
            epci=row["epci_name"] or "", date=f"{created:%d/%m/%Y %H:%M}"))


@app.command()
def route(
    commune: Annotated[str, typer.Option("--commune", help="Code INSEE, code postal ou nom.")],
    theme: Annotated[str, typer.Option("--theme", help="Thème du besoin (ex. recrutement).")],
    as_json: Annotated[bool, typer.Option("--json", help="Sortie JSON.")] = False,
    size_band: Annotated[
        str | None, typer.Option("--size-band", help="Tranche d'effectif INSEE (ex. 11).")
    ] = None,
    artisan: Annotated[
        bool | None, typer.Option("--artisan/--industrial", help="Activité artisanale ou non.")
    ] = None,
) -> None:
    """Montre à quels partenaires une demande serait transmise (n'envoie rien)."""
    from bot.commands.route import route_command

    raise typer.Exit(route_command(commune, theme, as_json, size_band, artisan))


firm_app = typer.Typer(help="Entreprises : ce que l'annuaire public dit d'un SIRET.")
app.add_typer(firm_app, name="firm")


@firm_app.command("lookup")
def firm_lookup(
    siret: Annotated[str, typer.Argument(help="SIRET (14 chiffres).")],
    as_json: Annotated[bool, typer.Option("--json", help="Sortie JSON.")] = False,
    live: Annotated[
        bool, typer.Option("--live", help="Interroger l'API (sinon le cache).")
    ] = False,
) -> None:
    """Montre ce que le bot utiliserait pour ce SIRET (cache, ou API avec --live)."""
    from bot.commands.firm import firm_lookup_command

    raise typer.Exit(firm_lookup_command(siret, as_json, live))


@app.command()
def digest(
    now: Annotated[bool, typer.Option("--now", help="Envoyer tout de suite.")] = False,
    territory: Annotated[str | None, typer.Option(help="Un seul territoire (identifiant).")] = None,
) -> None:
    """Envoie les synthèses hebdomadaires (chefs de projet et partenaires)."""
    if not now:
        raise _fail(_text("animator.cli_digest_needs_now"))
    settings = _settings()

    async def send() -> int:
        services = await _services(settings)
        assert services.digests is not None
        try:
            if territory and services.territories.get(territory) is None:
                raise _fail(_text("animator.cli_unknown_territory", territory=territory))
            moment = services.clock()
            count = await services.db.run(lambda session: services.digests.send_all(
                session, now=moment, period=f"manual:{moment.isoformat()}",
                territory_id=territory))
            from bot.email_worker import EmailWorker
            from bot.mail import MailSender

            worker = EmailWorker(services.db, MailSender.from_settings(settings),
                                 mail_from=settings.mail_from, territories=services.territories,
                                 clock=services.clock)
            while await worker.run_once(limit=100):
                pass
            await worker.sender.close()
            return count
        finally:
            await services.db.dispose()

    count = asyncio.run(send())
    typer.echo(_text(_counted("animator.cli_digest_sent", count), count=count))


@app.command()
def invite(
    territory: Annotated[str | None, typer.Option(help="Un seul territoire (identifiant).")] = None,
    email: Annotated[bool, typer.Option(
        "--email", help="Envoyer aussi à chacun son lien par e-mail.")] = False,
) -> None:
    """Donne à chaque chef de projet son lien personnel vers le bot (et l'envoie par e-mail)."""
    settings = _settings()
    if not settings.telegram_bot_token:
        raise _fail(_text("animator.cli_invite_needs_token"))
    from bot.email_worker import EmailWorker, mail_domain
    from bot.mail import MailSender
    from bot.services.animators import Animators
    from knowledge.territories import load_territories
    from storage.db import Database
    from storage.models import Outbox
    from storage.types import utcnow

    try:
        directory = load_territories(settings.territories_dir)
    except TerritoryError as exc:
        raise _fail(f"territoires : {exc}") from None
    if territory and directory.get(territory) is None:
        raise _fail(_text("animator.cli_unknown_territory", territory=territory))
    animators = Animators(directory, secret=settings.telegram_bot_token,
                          mail_domain=mail_domain(settings.mail_from),
                          bot_username=asyncio.run(_bot_username(settings)))
    chosen = [(t, a) for t in directory.territories if territory in (None, t.id)
              for a in t.animators]
    for t, a in chosen:
        typer.echo(_text("animator.cli_invite_line", name=a.name, email=a.email,
                         territory=t.name, link=animators.link(t.id, a.email)))
    if not email:
        return

    async def send() -> tuple[int, int]:
        _prepare_sqlite_dir(settings.database_url)
        db = Database(settings.database_url)
        await db.create_all()
        try:
            now = utcnow()
            ids = await db.run(lambda session: [
                animators.invite(session, t, a, now=now) for t, a in chosen])
            worker = EmailWorker(db, MailSender.from_settings(settings),
                                 mail_from=settings.mail_from, territories=directory,
                                 clock=utcnow)
            while await worker.run_once(limit=100):
                pass
            await worker.sender.close()
            sent = await db.run(lambda session: len(session.exec(select(Outbox).where(
                col(Outbox.id).in_([i for i in ids if i is not None]),
                col(Outbox.delivered_at).is_not(None))).all()))
            return sent, len(ids) - sent
        finally:
            await db.dispose()

    sent, waiting = asyncio.run(send())
    typer.echo(_text(_counted("animator.cli_invite_sent", sent), count=sent))
    if waiting:
        typer.echo(_text("animator.cli_invite_waiting", count=waiting))


async def _bot_username(settings: Settings) -> str:
    """The bot's username, as Telegram gives it (getMe): invitation links name the bot."""
    from telegram import Bot
    from telegram.error import TelegramError

    assert settings.telegram_bot_token
    try:
        async with Bot(settings.telegram_bot_token,
                       base_url=settings.telegram_api_url.rstrip("/")) as bot:
            return bot.username
    except TelegramError as exc:
        raise _fail(_text("animator.cli_invite_no_username", error=exc)) from None


@app.command()
def export(
    fmt: Annotated[str, typer.Option("--format", help="csv ou xlsx.")] = "csv",
    territory: Annotated[str | None, typer.Option(help="Un seul territoire (identifiant).")] = None,
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="Fichier (défaut : sortie standard pour csv).")] = None,
) -> None:
    """Exporte les demandes (CSV ou Excel)."""
    if fmt not in {"csv", "xlsx"}:
        raise _fail(_text("animator.cli_unknown_format"))
    if fmt == "xlsx" and not output:
        raise _fail(_text("animator.cli_xlsx_needs_output"))
    from pathlib import Path
    settings = _settings()
    from bot.export import count_query, needs_query, stream_csv, stream_xlsx
    from storage.db import Database

    async def write(out: BinaryIO, progress: Callable[[int], None] | None,
                    total: Callable[[int], None]) -> int:
        db = Database(settings.database_url)
        await db.create_all()
        try:
            if progress is not None:
                total(await db.run(lambda session: session.execute(
                    count_query(territory)).scalar_one()))
            chunks = db.stream(needs_query(territory), chunk=EXPORT_CHUNK)
            if fmt == "xlsx":
                return await stream_xlsx(chunks, out, settings.tz, progress)
            return await stream_csv(chunks, out, settings.tz, progress)
        finally:
            await db.dispose()

    with contextlib.ExitStack() as stack:
        out = (stack.enter_context(Path(output).open("wb")) if output
               else sys.stdout.buffer)
        # A progress bar for a person at a terminal; nothing on a pipe or in a log.
        if sys.stderr.isatty():
            from rich.progress import Progress

            bar = stack.enter_context(Progress(transient=True, console=_stderr_console()))
            task = bar.add_task(_text("animator.cli_export_progress"), total=None)
            count = asyncio.run(write(out, lambda n: bar.advance(task, n),
                                      lambda n: bar.update(task, total=n)))
        else:
            count = asyncio.run(write(out, None, lambda _n: None))
        out.flush()
    if output:
        typer.echo(_text(_counted("animator.cli_exported", count), count=count, path=output))


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


db_app = typer.Typer(help="Base de données : migrations.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Révision visée.")] = "head",
) -> None:
    """Met le schéma de la base à jour (migrations Alembic)."""
    from storage.migrate import upgrade

    settings = _settings()
    _prepare_sqlite_dir(settings.database_url)
    upgrade(settings.database_url, revision)
    typer.echo(_text("animator.cli_database_ready", revision=revision))


def _text(key: str, **values: object) -> str:
    """A catalogue entry as the terminal prints it (no markup)."""
    from bot.catalogue import t

    return t(key, **values).plain()


def _counted(key: str, count: int) -> str:
    """The catalogue entry for `count` things: `<key>_none`, `<key>_one` or `<key>_other`."""
    return f"{key}_{'none' if count == 0 else 'one' if count == 1 else 'other'}"


def _prepare_sqlite_dir(url: str) -> None:
    from pathlib import Path

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


privacy_app = typer.Typer(help="Données personnelles : export et effacement (RGPD).")
app.add_typer(privacy_app, name="privacy")


def _person_options(telegram_id: int | None, email: str | None) -> None:
    if telegram_id is None and not email:
        raise _fail("indiquez --telegram-id ou --email")


@privacy_app.command("erase")
def privacy_erase(
    telegram_id: Annotated[int | None, typer.Option("--telegram-id")] = None,
    email: Annotated[str | None, typer.Option("--email")] = None,
) -> None:
    """Efface une personne partout (les demandes restent comme chiffres anonymes)."""
    _person_options(telegram_id, email)
    settings = _settings()
    from bot.services.privacy import Erasure, erase_person
    from storage.db import Database
    from storage.types import utcnow

    async def work() -> Erasure:
        db = Database(settings.database_url)
        await db.create_all()
        try:
            return await db.run(lambda session: erase_person(
                session, telegram_id=telegram_id, email=email, now=utcnow()))
        finally:
            await db.dispose()

    done = asyncio.run(work())
    if not done.needs and not done.rows:
        typer.echo("Rien à effacer : aucune donnée de cette personne n'est enregistrée.")
        return
    needs = ("aucune demande" if not done.needs else "1 demande anonymisée" if done.needs == 1
             else f"{done.needs} demandes anonymisées")
    rows = ("aucune autre donnée" if not done.rows else "1 autre donnée effacée"
            if done.rows == 1 else f"{done.rows} autres données effacées")
    typer.echo(f"Effacé : {needs}, {rows}.")


@privacy_app.command("export")
def privacy_export(
    telegram_id: Annotated[int | None, typer.Option("--telegram-id")] = None,
    email: Annotated[str | None, typer.Option("--email")] = None,
) -> None:
    """Donne toutes les données d'une personne, en JSON."""
    _person_options(telegram_id, email)
    settings = _settings()
    from bot.services.privacy import export_person
    from storage.db import Database

    async def work() -> dict[str, object]:
        db = Database(settings.database_url)
        await db.create_all()
        try:
            return await db.run(lambda session: export_person(
                session, telegram_id=telegram_id, email=email))
        finally:
            await db.dispose()

    typer.echo(json.dumps(asyncio.run(work()), ensure_ascii=False, indent=2))


radar_app = typer.Typer(help="Radar de mutualisation : besoins communs à plusieurs entreprises.")
app.add_typer(radar_app, name="radar")


@radar_app.command("eval")
def radar_eval(
    part: Annotated[str, typer.Option(
        help="Partie : dev à dev7, test, legacy, test2 à test31 (scellées, jamais dans all) "
             "ou all (toutes celles présentes)."
    )] = "all",
    path: Annotated[str | None, typer.Option(help="Fichier étiqueté (YAML).")] = None,
    no_kb: Annotated[bool, typer.Option("--no-kb", help="Sans la base de connaissances.")] = False,
    details: Annotated[bool, typer.Option(
        "--details", help="Liste les paires fausses et manquées.")] = False,
) -> None:
    """Précision et rappel des paires du radar, par partie du jeu étiqueté."""
    from pathlib import Path

    from bot.radar_eval import PARTS, SEALED, RadarScore, evaluate, evaluate_part
    from knowledge.retrieval import KnowledgeBase

    kb = None if no_kb else KnowledgeBase.load(None)
    if path:
        scores: dict[str, RadarScore | None] = {Path(path).name: evaluate(Path(path), kb=kb)}
    elif part == "all":
        scores = {name: evaluate_part(name, kb=kb) for name in PARTS if name not in SEALED}
    elif part in PARTS:
        scores = {part: evaluate_part(part, kb=kb)}
    else:
        raise typer.BadParameter(
            f"partie inconnue : {part} (dev à dev7, test, legacy, test2 à test6 ou all)")
    failed = False
    for name, score in scores.items():
        if score is None:
            typer.echo(f"[{name}] fichier absent ({PARTS[name]}) : partie ignorée")
            continue
        typer.echo(f"[{name}] besoins : {score.needs} ({score.territories} territoire(s)) · "
                   f"paires attendues : {score.expected_pairs} · "
                   f"trouvées : {score.found_pairs} (dont justes : {score.true_pairs}) · "
                   f"précision : {score.precision:.3f} · rappel : {score.recall:.3f}")
        if details:
            for territory, a, b in score.wrong:
                typer.echo(f"  fausse  {territory} {a} ~ {b}")
            for territory, a, b in score.missed:
                typer.echo(f"  manquée {territory} {a} ~ {b}")
        # the legacy set holds the bar that CI checks; dev and test bars live in the tests
        if name in ("legacy", RADAR_SET_NAME) and (score.precision < 0.9 or score.recall < 0.9):
            failed = True
    if failed:
        raise typer.Exit(1)


RADAR_SET_NAME = "radar_needs.yaml"


def _mount_knowledge() -> None:
    """Add `relais kb …` and `relais ask` when the knowledge base is installed."""
    from knowledge.kb_cli import ask_command, kb_app

    app.add_typer(kb_app, name="kb", help="Base de connaissances : vérifier, évaluer.")

    @app.command()
    def ask(
        question: Annotated[str, typer.Argument(help="La question, entre guillemets.")],
        as_json: Annotated[bool, typer.Option("--json", help="Sortie JSON.")] = False,
    ) -> None:
        """Pose une question à la base de connaissances."""
        ask_command(question, as_json)


_mount_knowledge()


def main() -> None:  # pragma: no cover
    """Entry point for `python -m bot.cli`."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
