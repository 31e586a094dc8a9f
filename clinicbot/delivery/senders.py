"""The senders: the only objects that talk to chat (a Slack-compatible webhook) and SMTP, and the
``delivery:`` config section that configures them. Tests pass fakes to :class:`clinicbot.delivery.outbox.Outbox`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

from clinicbot.errors import ClinicbotError

if TYPE_CHECKING:  # imported where used: validating ``delivery:`` (every config load) imports no HTTP/SMTP library
    from email.message import EmailMessage

    import requests


class DeliveryError(ClinicbotError):
    """A chat message or an email could not be delivered."""


class DeliveryUncertain(DeliveryError):
    """The message was handed over but no answer came: it may have been delivered."""


# --------------------------------------------------------------------------------------------
# Senders: the only objects that talk to chat and SMTP. Tests pass fakes.


class ChatSender(Protocol):
    def send(self, text: str) -> None: ...


class EmailSender(Protocol):
    def send(self, to: Sequence[str], subject: str, text: str, html: str | None) -> None: ...


class WebhookChatSender:
    """Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat): POST ``{"text": …}``."""

    def __init__(self, url: str, *, timeout: float = 10.0, session: "requests.Session | None" = None):
        import requests

        self.url = url
        self.timeout = timeout
        self.session = session or requests.Session()

    def __repr__(self) -> str:  # the URL is a secret (anyone holding it can post)
        return "WebhookChatSender(<url hidden>)"

    def send(self, text: str) -> None:
        import requests

        try:
            resp = self.session.post(self.url, json={"text": text}, timeout=self.timeout)
        except requests.exceptions.ConnectTimeout:
            raise DeliveryError("chat webhook: could not connect (check delivery.chat.webhook_env)") from None
        except requests.exceptions.ReadTimeout:
            raise DeliveryUncertain("chat webhook: no answer in time; the message may have been posted") from None
        except requests.exceptions.ConnectionError:
            raise DeliveryError("chat webhook: connection failed (check the URL in delivery.chat.webhook_env)") from None
        except requests.exceptions.RequestException as exc:
            raise DeliveryError(f"chat webhook: {type(exc).__name__}") from None
        if not 200 <= resp.status_code < 300:
            snippet = " ".join(resp.text[:100].split())
            raise DeliveryError(f"chat webhook answered HTTP {resp.status_code} ({snippet})")


class SMTPEmailSender:
    """Plain SMTP with optional STARTTLS (or implicit TLS) and login; one connection per run."""

    def __init__(self, host: str, port: int = 587, *, sender: str, starttls: bool = True, use_ssl: bool = False,
                 username: str | None = None, password: str | None = None, timeout: float = 30.0,
                 smtp_factory: Callable[..., Any] | None = None):
        self.host, self.port, self.sender = host, port, sender
        self.starttls, self.use_ssl = starttls, use_ssl
        self.username, self._password = username, password
        self.timeout = timeout
        if smtp_factory is None:
            import smtplib

            smtp_factory = smtplib.SMTP_SSL if use_ssl else smtplib.SMTP
        self.smtp_factory = smtp_factory

    def __repr__(self) -> str:
        return f"SMTPEmailSender({self.host!r}, {self.port})"

    def message(self, to: Sequence[str], subject: str, text: str, html: str | None) -> "EmailMessage":
        from email.message import EmailMessage
        from email.utils import formatdate, make_msgid

        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(to)
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a bot
        msg.set_content(text)
        if html:
            msg.add_alternative(html, subtype="html")
        return msg

    def send(self, to: Sequence[str], subject: str, text: str, html: str | None) -> None:
        import smtplib
        import ssl

        msg = self.message(to, subject, text, html)
        try:
            with self.smtp_factory(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls and not self.use_ssl:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self._password or "")
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"email: the SMTP server refused {', '.join(exc.recipients)}") from None
        except (smtplib.SMTPServerDisconnected, TimeoutError) as exc:
            # The DATA may or may not have been accepted.
            raise DeliveryUncertain(f"email via {self.host}:{self.port}: {type(exc).__name__}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"email via {self.host}:{self.port} failed: {exc} (check delivery.email)") from None


# --------------------------------------------------------------------------------------------
# The delivery: section


_DELIVERY_KEYS: dict[str, dict[str, tuple[type, ...]]] = {
    "chat": {"webhook_env": (str,), "timeout": (int, float)},
    "email": {"host": (str,), "port": (int,), "starttls": (bool,), "ssl": (bool,), "from": (str,),
              "username_env": (str,), "password_env": (str,), "timeout": (int, float)},
}


def validate_delivery(delivery: Any, error: Callable[[str, str], Exception]) -> None:
    """Check the ``delivery:`` section; ``error(key, message)`` builds the ConfigError (names file and key)."""
    if not isinstance(delivery, dict):
        raise error("delivery", "must be a mapping with 'chat' and/or 'email'")
    for section, value in delivery.items():
        known = _DELIVERY_KEYS.get(section)
        if known is None:
            raise error(f"delivery.{section}", f"unknown key; known keys under delivery: {', '.join(_DELIVERY_KEYS)}")
        if value is None:
            continue
        if not isinstance(value, dict):
            raise error(f"delivery.{section}", "must be a mapping")
        for key, item in value.items():
            if key not in known:
                raise error(f"delivery.{section}.{key}",
                            f"unknown key; known keys under delivery.{section}: {', '.join(known)}")
            types = known[key]
            if item is not None and (not isinstance(item, types) or (isinstance(item, bool) and bool not in types)):
                want = " or ".join("true/false" if t is bool else "a number" if t in (int, float) else "a string"
                                   for t in types)
                raise error(f"delivery.{section}.{key}", f"must be {want}, not {item!r}")


def chat_sender_from_config(delivery: dict[str, Any], env: dict[str, str] | Any) -> WebhookChatSender | None:
    """``delivery.chat.webhook_env`` names the variable holding the webhook URL (a secret)."""
    chat = delivery.get("chat") or {}
    var = chat.get("webhook_env")
    url = env.get(var) if var else None
    if not url:
        return None
    return WebhookChatSender(url, timeout=float(chat.get("timeout", 10)))


def email_sender_from_config(delivery: dict[str, Any], env: dict[str, str] | Any) -> SMTPEmailSender | None:
    """``delivery.email``: host, port, starttls, ssl, from, username_env, password_env, timeout."""
    mail = delivery.get("email") or {}
    if not mail.get("host") or not mail.get("from"):
        return None
    user_env, pass_env = mail.get("username_env"), mail.get("password_env")
    use_ssl = bool(mail.get("ssl", False))
    return SMTPEmailSender(
        str(mail["host"]), int(mail.get("port", 465 if use_ssl else 587)), sender=str(mail["from"]),
        starttls=bool(mail.get("starttls", not use_ssl)), use_ssl=use_ssl,
        username=env.get(user_env) if user_env else None, password=env.get(pass_env) if pass_env else None,
        timeout=float(mail.get("timeout", 30)),
    )
