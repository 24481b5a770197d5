"""The `relais` subcommands that need more than a few lines (mounted by `bot.cli`)."""
