"""A local Telegram Bot API server that answers like Telegram, and people who use it."""

from testing.botapi.server import (
    ApiCall,
    BotMessage,
    HtmlParseError,
    LocalBotAPI,
    SimUser,
    UploadedFile,
    WebhookDelivery,
    parse_html,
    utf16_len,
)

__all__ = [
    "ApiCall",
    "BotMessage",
    "HtmlParseError",
    "LocalBotAPI",
    "SimUser",
    "UploadedFile",
    "WebhookDelivery",
    "parse_html",
    "utf16_len",
]
