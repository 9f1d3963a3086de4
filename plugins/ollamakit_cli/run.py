"""``ollamakit run MODEL [PROMPT]``: one answer, or a chat in the terminal.

In the chat, ``\"\"\"`` starts and ends a multi-line message, ``/clear`` forgets the
conversation, ``/bye`` leaves, ``/?`` lists the commands. Ctrl+C stops an answer midway (the
server stops generating as soon as the connection closes).
"""

from __future__ import annotations

import sys

import click

from .client import Client

HELP = """Available Commands:
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command

Use \"\"\" to begin a multi-line message."""


def stream_answer(client: Client, body: dict, out=None) -> tuple[str, dict]:
    """Print the assistant's reply as it arrives; return it and the final object."""
    out = out or sys.stdout
    text, final = [], {}
    for part in client.stream("/api/chat", {**body, "stream": True}):
        piece = (part.get("message") or {}).get("content") or ""
        if piece:
            text.append(piece)
            out.write(piece)
            out.flush()
        if part.get("done"):
            final = part
    return "".join(text), final


def print_stats(final: dict) -> None:
    def seconds(key):
        return (final.get(key) or 0) / 1e9

    def rate(count, duration):
        return f"{count / duration:.2f} tokens/s" if duration else "n/a"

    lines = [
        f"total duration:       {seconds('total_duration'):.6f}s",
        f"load duration:        {seconds('load_duration'):.6f}s",
        f"prompt eval count:    {final.get('prompt_eval_count', 0)} token(s)",
        f"prompt eval duration: {seconds('prompt_eval_duration'):.6f}s",
        f"prompt eval rate:     {rate(final.get('prompt_eval_count', 0), seconds('prompt_eval_duration'))}",
        f"eval count:           {final.get('eval_count', 0)} token(s)",
        f"eval duration:        {seconds('eval_duration'):.6f}s",
        f"eval rate:            {rate(final.get('eval_count', 0), seconds('eval_duration'))}",
    ]
    click.echo("\n".join(lines), err=True)


def read_message(prompt: str = ">>> ") -> str | None:
    """One user message; a line starting with \"\"\" continues until a line ending with it.
    None at end of input."""
    try:
        line = input(prompt)
    except EOFError:
        return None
    if not line.lstrip().startswith('"""'):
        return line
    text = line.lstrip()[3:]
    if text.endswith('"""'):
        return text[:-3]
    lines = [text] if text else []
    while True:
        try:
            line = input("... ")
        except EOFError:
            return "\n".join(lines)
        if line.rstrip().endswith('"""'):
            lines.append(line.rstrip()[:-3])
            return "\n".join(lines)
        lines.append(line)


def chat_loop(client: Client, base: dict, verbose: bool) -> None:
    history: list[dict] = []
    interactive = sys.stdin.isatty()
    while True:
        message = read_message(">>> " if interactive else "")
        if message is None:
            return
        command = message.strip()
        if not command:
            continue
        if command in ("/bye", "/exit"):
            return
        if command in ("/?", "/help"):
            click.echo(HELP)
            continue
        if command == "/clear":
            history.clear()
            click.echo("Cleared session context")
            continue
        if command.startswith("/"):
            click.echo(f"Unknown command '{command.split()[0]}'. Type /? for help")
            continue
        history.append({"role": "user", "content": message})
        try:
            answer, final = stream_answer(client, {**base, "messages": history})
        except KeyboardInterrupt:
            history.pop()
            click.echo()
            continue
        click.echo("\n")
        history.append({"role": "assistant", "content": answer})
        if verbose:
            print_stats(final)


@click.command("run")
@click.argument("model")
@click.argument("prompt", nargs=-1)
@click.option("--keepalive", help="How long the model stays loaded (e.g. 5m, 1h, 0).")
@click.option("--format", "format_", help='Response format ("json").')
@click.option("--verbose", is_flag=True, help="Show timings after each answer.")
def run_command(model, prompt, keepalive, format_, verbose):
    """Run a model: answer PROMPT, or chat interactively."""
    base: dict = {"model": model}
    if keepalive:
        base["keep_alive"] = keepalive
    if format_:
        base["format"] = format_
    text = " ".join(prompt)
    if not sys.stdin.isatty() and not text:
        text = sys.stdin.read()
    with Client() as client:
        try:
            if text:
                _, final = stream_answer(client, {**base, "messages": [{"role": "user", "content": text}]})
                click.echo()
                if verbose:
                    print_stats(final)
                return
            client.json("POST", "/api/chat", {**base, "messages": [], "stream": False})  # load now
            chat_loop(client, base, verbose)
        except KeyboardInterrupt:
            click.echo()


commands = (run_command,)
