"""``ollamakit run MODEL [PROMPT]``: one answer, an embedding, or a chat in the terminal, as
``ollama run`` behaves.

* A model that is not here is pulled first.
* Text piped in is put before the prompt (``cat notes.txt | ollamakit run m "summarize"``).
* With a prompt, a pipe, or output that is not a terminal, the answer is one ``/api/generate``
  call; otherwise the model is loaded and the chat (``interactive.py``) begins.
* An embedding model prints the vector of its input as JSON.
* Ctrl-C stops an answer (the server stops generating once the connection closes).
"""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass, field

import click

from ollamakit.cloud import split_source
from ollamakit.config import parse_duration

from .client import ApiError, Client
from .display import AnswerPrinter, Spinner, WordWrap, go_duration, isatty, summary_lines
from .pull import run_transfer

THINK_LEVELS = ("high", "medium", "low", "max")


@dataclass
class RunOptions:
    """What one session sends: the model, the conversation and the settings ``/set`` changes."""

    model: str
    parent_model: str = ""
    loaded_messages: list = field(default_factory=list)  # the model's stored MESSAGE history
    prompt: str = ""
    messages: list = field(default_factory=list)
    word_wrap: bool = True
    format: str = ""
    system: str = ""
    options: dict = field(default_factory=dict)
    keep_alive: str | int | None = None
    think: bool | str | None = None
    hide_thinking: bool = False
    verbose: bool = False
    multimodal: bool = False  # paths to images and audio in a prompt are attached

    def copy(self) -> RunOptions:
        return copy.deepcopy(self)


# -- flags ---------------------------------------------------------------------------------


class RunCommand(click.Command):
    """``--think`` and ``--truncate`` take a value only when it is attached (``--think=high``):
    bare, they mean true, and the next word stays an argument (``run --think MODEL``)."""

    OPTIONAL_VALUE = ("--think", "--truncate")

    def parse_args(self, ctx, args):
        rewritten, options_done = [], False
        for arg in args:
            if arg == "--":
                options_done = True
            rewritten.append(
                f"{arg}=true" if not options_done and arg in self.OPTIONAL_VALUE else arg
            )
        return super().parse_args(ctx, rewritten)


def parse_think(value: str) -> bool | str:
    if value in ("", "true"):
        return True
    if value == "false":
        return False
    if value in THINK_LEVELS:
        return value
    raise click.ClickException(
        f'invalid value for --think: "{value}" (must be true, false, high, medium, low, or max)'
    )


def keep_alive_value(text: str) -> str | int:
    """A Go duration as Ollama's client sends it: normalised (``5m0s``), or -1 for forever."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    return -1 if seconds == float("inf") else go_duration(round(seconds * 1e9))


def format_value(text: str):
    """``json``, or a JSON schema given as text; None for no format."""
    if not text:
        return None
    if text == "json":
        return "json"
    try:
        return json.loads(text)
    except ValueError:
        raise click.ClickException(
            f"invalid format: {text!r} is neither 'json' nor a JSON schema"
        ) from None


def parse_truncate(value: str | None) -> bool | None:
    if value is None:
        return None
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise click.ClickException(
        f'invalid argument "{value}" for "--truncate" flag: strconv.ParseBool: parsing "{value}": invalid syntax'
    )


# -- the server ----------------------------------------------------------------------------


def show_or_pull(client: Client, name: str, insecure: bool) -> dict:
    """The model's ``/api/show``, pulling it first when the server does not have it."""
    try:
        return client.show(name)
    except ApiError as exc:
        if exc.status != 404:
            raise
    run_transfer("/api/pull", name, insecure)
    return client.show(name)


def capabilities(info: dict) -> list[str]:
    found = info.get("capabilities")
    return [str(c) for c in found] if isinstance(found, list) else []


def infer_think(info: dict, opts: RunOptions, explicit: bool):
    """What the user chose, or thinking on for a model that can think, else unset."""
    if explicit:
        return opts.think
    return True if "thinking" in capabilities(info) else None


def apply_show(opts: RunOptions, info: dict) -> None:
    details = info.get("details") if isinstance(info.get("details"), dict) else {}
    opts.parent_model = str(details.get("parent_model") or "")
    messages = info.get("messages")
    opts.loaded_messages = (
        [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    )


def load_model(client: Client, opts: RunOptions) -> None:
    """Load the model now (an empty generate), so the first answer does not wait for it; the
    think setting goes along so a model that cannot think is refused before the first prompt.
    A remote stub (or a ``:cloud`` name) loads nothing here: as Ollama's ``run`` does, it says
    where the model runs instead, after asking for the account an ollama.com model needs."""
    spinner = Spinner()
    try:
        info = client.show(opts.model)
        host = str(info.get("remote_host") or "")
        requested_cloud = split_source(opts.model)[1] == "cloud"
        if host or requested_cloud:
            cloud = requested_cloud or host.startswith("https://ollama.com")
            if cloud:
                client.json("POST", "/api/me", {})
            spinner.stop()
            remote_model = info.get("remote_model") or opts.model
            where = "'ollama.com' \u26a1" if cloud else f"'{host}'"
            click.echo(f"Connecting to '{remote_model}' on {where}", err=True)
            return
        body: dict = {"model": opts.model, "stream": False}
        if opts.keep_alive is not None:
            body["keep_alive"] = opts.keep_alive
        if opts.think is not None:
            body["think"] = opts.think
        client.json("POST", "/api/generate", body)
    finally:
        spinner.stop()


def request_body(opts: RunOptions) -> dict:
    """What /api/chat and /api/generate both get; unset settings are left to the server."""
    body: dict = {"model": opts.model, "options": opts.options, "stream": True}
    fmt = format_value(opts.format)
    if fmt is not None:
        body["format"] = fmt
    if opts.keep_alive is not None:
        body["keep_alive"] = opts.keep_alive
    if opts.think is not None:
        body["think"] = opts.think
    return body


def print_summary(final: dict) -> None:
    for line in summary_lines(final):
        click.echo(line, err=True)


def chat(client: Client, opts: RunOptions) -> dict | None:
    """One answer in the chat; the assistant's message, or None if Ctrl-C stopped it."""
    out = sys.stdout
    printer = AnswerPrinter(
        out, opts.word_wrap, opts.hide_thinking, plain=False, spinner=Spinner(), tools_first=True
    )
    final, role = {}, "assistant"
    try:
        for part in client.stream("/api/chat", {**request_body(opts), "messages": opts.messages}):
            message = part.get("message") if isinstance(part.get("message"), dict) else {}
            role = message.get("role") or role
            printer.feed(
                message.get("thinking") or "",
                message.get("content") or "",
                message.get("tool_calls") or [],
            )
            final = part
    except KeyboardInterrupt:
        return None
    finally:
        printer.spinner.stop()
    if opts.messages:
        out.write("\n\n")
        out.flush()
    if opts.verbose:
        print_summary(final)
    answer = {"role": role, "content": "".join(printer.content)}
    if printer.thinking:
        answer["thinking"] = "".join(printer.thinking)
    return answer


def generate(client: Client, opts: RunOptions) -> None:
    """The answer to ``opts.prompt`` (an empty prompt only loads the model)."""
    out = sys.stdout
    printer = AnswerPrinter(
        out,
        opts.word_wrap,
        opts.hide_thinking,
        plain=not isatty(out),
        spinner=Spinner(),
        tools_first=False,
    )
    body = {**request_body(opts), "prompt": opts.prompt}
    if opts.multimodal:
        from .attachments import extract

        body["prompt"], images = extract(opts.prompt)
        if images:
            body["images"] = images
    if opts.system:
        body["system"] = opts.system
    final: dict = {}
    try:
        for part in client.stream("/api/generate", body):
            printer.feed(
                part.get("thinking") or "", part.get("response") or "", part.get("tool_calls") or []
            )
            final = part
    except KeyboardInterrupt:
        return
    finally:
        printer.spinner.stop()
    if opts.prompt:
        out.write("\n\n")
        out.flush()
    if final.get("done") and opts.verbose:
        print_summary(final)


def embed(
    client: Client, name: str, text: str, keep_alive, truncate: bool | None, dimensions: int
) -> None:
    body: dict = {"model": name, "input": text}
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    if truncate is not None:
        body["truncate"] = truncate
    if dimensions > 0:
        body["dimensions"] = dimensions
    vectors = client.json("POST", "/api/embed", body).get("embeddings")
    if not isinstance(vectors, list) or not vectors:
        raise click.ClickException("no embeddings returned")
    click.echo(json.dumps(vectors[0], separators=(",", ":")))


def show_stored_messages(opts: RunOptions, messages: list) -> None:
    """A model created with MESSAGE lines starts its chat with them on screen."""
    for message in messages:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "user":
            click.echo(f">>> {message.get('content', '')}")
        elif message.get("role") == "assistant":
            WordWrap(sys.stdout, opts.word_wrap).write(str(message.get("content", "")))
            click.echo("\n")


# -- the command ---------------------------------------------------------------------------


ENVIRONMENT = """\b
Environment Variables:
      OLLAMA_EDITOR      The editor Ctrl-G opens in the chat
      OLLAMA_HOST        The server's address (default 127.0.0.1:11434)
      OLLAMA_NOHISTORY   Do not save the chat's history"""


@click.command("run", cls=RunCommand, epilog=ENVIRONMENT)
@click.argument("model")
@click.argument("prompt", nargs=-1)
@click.option("--keepalive", help="Duration to keep a model loaded (e.g. 5m).")
@click.option("--verbose", is_flag=True, help="Show timings for response.")
@click.option("--insecure", is_flag=True, help="Use an insecure registry.")
@click.option("--nowordwrap", is_flag=True, help="Don't wrap words to the next line automatically.")
@click.option("--format", "format_", default="", help="Response format (e.g. json).")
@click.option(
    "--think",
    default=None,
    metavar="[=LEVEL]",
    help="Enable thinking mode: true/false or high/medium/low for supported models.",
)
@click.option("--hidethinking", is_flag=True, help="Hide thinking output (if provided).")
@click.option(
    "--truncate",
    default=None,
    metavar="[=BOOL]",
    help="For embedding models: truncate inputs exceeding context length (default: true). Set --truncate=false to error instead.",
)
@click.option(
    "--dimensions",
    type=int,
    default=0,
    help="Truncate output embeddings to specified dimension (embedding models only).",
)
def run_command(
    model,
    prompt,
    keepalive,
    verbose,
    insecure,
    nowordwrap,
    format_,
    think,
    hidethinking,
    truncate,
    dimensions,
):
    """Run a model."""
    opts = RunOptions(model=model, format=format_, hide_thinking=hidethinking, verbose=verbose)
    explicit_think = think is not None
    opts.think = parse_think(think) if explicit_think else None
    truncate = parse_truncate(truncate)
    if keepalive:
        opts.keep_alive = keep_alive_value(keepalive)
    format_value(opts.format)  # refuse a bad --format before anything is pulled or loaded

    prompts = list(prompt)
    interactive = True
    if not isatty(sys.stdin):
        piped = sys.stdin.read()
        if piped:
            prompts.insert(0, piped)
        interactive = False
    opts.prompt = " ".join(prompts)
    if prompts or not isatty(sys.stdout):  # a prompt, or output going to a file: one answer
        interactive = False
    opts.word_wrap = not nowordwrap

    with Client() as client:
        info = show_or_pull(client, model, insecure)
        opts.think = infer_think(info, opts, explicit_think)
        from .attachments import multimodal

        apply_show(opts, info)
        opts.multimodal = multimodal(info)
        found = capabilities(info)
        if "embedding" in found:
            if not opts.prompt:
                raise click.ClickException(
                    f'embedding models require input text. Usage: ollamakit run {model} "your text here"'
                )
            embed(client, model, opts.prompt, opts.keep_alive, truncate, dimensions)
            return
        if "image" in found:
            raise click.ClickException("image generation models are not currently supported")
        if not interactive:
            generate(client, opts)
            return
        from .interactive import Session

        load_model(client, opts)
        show_stored_messages(opts, opts.loaded_messages)
        Session(client, opts, explicit_think).run()


commands = (run_command,)
