"""``ollamakit signin`` and ``signout`` (hidden ``login``/``logout``): Ollama's account verbs,
answered from the server's ``/api/me`` and ``/api/signout``.

An ollamakit server holds no ollama.com account, so against it ``signin`` reports the server's
``account unavailable`` and ``signout`` says nobody is signed in; against an Ollama server the
same verbs print what Ollama's own CLI prints, sign-in link included.
"""

from __future__ import annotations

import click

from .client import ApiError, Client

CONNECT_INSTRUCTIONS = "If your browser did not open, navigate to:\n    {}\n"


def signin() -> None:
    """Sign in to ollama.com."""
    with Client() as client:
        response = client.answer("POST", "/api/me")
    if response.status_code == 401:
        click.echo("You need to be signed in to Ollama to run Cloud models.\n")
        try:
            url = response.json().get("signin_url")
        except (ValueError, AttributeError):
            url = None
        if isinstance(url, str) and url:
            click.echo(CONNECT_INSTRUCTIONS.format(url))
        return
    if response.status_code >= 400:
        raise ApiError(_message(response), response.status_code)
    name = _field(response, "name")
    if name:
        click.echo(f"You are already signed in as user '{name}'\n")


def signout() -> None:
    """Sign out of ollama.com."""
    with Client() as client:
        response = client.answer("POST", "/api/signout")
    if response.status_code == 401:
        click.echo("You are not signed in to ollama.com\n")
        return
    if response.status_code >= 400:
        raise ApiError(_message(response), response.status_code)
    click.echo("You have signed out of ollama.com\n")


def _field(response, key: str):
    try:
        value = response.json().get(key)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _message(response) -> str:
    return _field(response, "error") or f"{response.status_code} {response.reason_phrase}"


commands = (
    click.command("signin")(signin),
    click.command("login", hidden=True)(signin),
    click.command("signout")(signout),
    click.command("logout", hidden=True)(signout),
)
