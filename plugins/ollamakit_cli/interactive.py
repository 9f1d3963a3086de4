"""The chat of ``ollamakit run``: the ``>>>`` prompt and its slash commands, worded and behaving
as in ``ollama run`` (Ollama's ``cmd/interactive.go``).

``Session.handle(line)`` takes one line as typed, so the commands are tested without a
terminal; ``Session.run()`` reads lines from the terminal until ``/bye`` or Ctrl-D.
"""

from __future__ import annotations

import math
import re

import click

from ollamakit.names import ModelName

from .client import ApiError, Client
from .attachments import extract, file_names, multimodal
from .display import go_value
from .formatting import go_quote, table
from .lineinput import History, LineReader, editor_key, env_flag
from .listing import model_rows
from .modelfile import PARAMETER_TYPES
from .run import RunOptions, apply_show, capabilities, chat, infer_think, load_model
from .show import summary

MULTILINE_NONE, MULTILINE_PROMPT, MULTILINE_SYSTEM = 0, 1, 2
PROMPT, ALT_PROMPT = ">>> ", "... "
# shown dim in the empty line, as Ollama shows them
PLACEHOLDER, ALT_PLACEHOLDER = "Send a message (/? for help)", "Press Enter to send"

USAGE = """Available Commands:
  /set            Set session variables
  /show           Show model information
  /load <model>   Load a session or model
  /save <model>   Save your current session
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command
  /? shortcuts    Help for keyboard shortcuts

Use \"\"\" to begin a multi-line message.
"""
USAGE_MEDIA = "Use /path/to/file to include .jpg, .png, .webp images, or .wav audio files.\n"

USAGE_SET = """Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set history           Enable history
  /set nohistory         Disable history
  /set wordwrap          Enable wordwrap
  /set nowordwrap        Disable wordwrap
  /set format json       Enable JSON mode
  /set noformat          Disable formatting
  /set verbose           Show LLM stats
  /set quiet             Disable LLM stats
  /set think             Enable thinking
  /set nothink           Disable thinking
"""

# The keys the line editor (readline) binds as Ollama's does.
USAGE_SHORTCUTS = """Available keyboard shortcuts:
  Ctrl + a            Move to the beginning of the line (Home)
  Ctrl + e            Move to the end of the line (End)
   Alt + b            Move back (left) one word
   Alt + f            Move forward (right) one word
  Ctrl + k            Delete the sentence after the cursor
  Ctrl + u            Delete the sentence before the cursor
  Ctrl + w            Delete the word before the cursor

  Ctrl + l            Clear the screen
{editor}  Ctrl + c            Stop the model from responding
  Ctrl + d            Exit ollamakit (/bye)
"""

USAGE_SHOW = """Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template
"""

USAGE_PARAMETERS = """Available Parameters:
  /set parameter seed <int>             Random number seed
  /set parameter num_predict <int>      Max number of tokens to predict
  /set parameter top_k <int>            Pick from top k num of tokens
  /set parameter top_p <float>          Pick token based on sum of probabilities
  /set parameter min_p <float>          Pick token based on top token probability * min_p
  /set parameter num_ctx <int>          Set the context size
  /set parameter temperature <float>    Set creativity level
  /set parameter repeat_penalty <float> How strongly to penalize repetitions
  /set parameter repeat_last_n <int>    Set how far back to look for repetitions
  /set parameter num_gpu <int>          The number of layers to send to the GPU
  /set parameter stop <string> <string> ...   Set the stop parameters
"""

_TRUE, _FALSE = ("1", "t", "T", "TRUE", "true", "True"), ("0", "f", "F", "FALSE", "false", "False")


def stderr(text: str) -> None:
    click.echo(text, err=True)


def parameter(name: str, values: list[str]):
    """``/set parameter NAME VALUE...`` typed as Ollama's ``api.FormatParams`` types it: a
    list takes every value, anything else the first. Raises ValueError with Ollama's words."""
    kind = PARAMETER_TYPES.get(name)
    if kind is None:
        raise ValueError(f"unknown parameter '{name}'")
    shown = "[" + " ".join(values) + "]"
    if kind is list:
        return list(values)
    first = values[0]
    if kind is bool:
        if first not in _TRUE + _FALSE:
            raise ValueError(f"invalid bool value {shown}")
        return first in _TRUE
    if kind is int:
        if not re.fullmatch(r"[+-]?[0-9]+", first) or not -(2**63) <= int(first) < 2**63:
            raise ValueError(f"invalid int value {shown}")
        return int(first)
    try:
        value = float(first)
    except ValueError:
        raise ValueError(f"invalid float value {shown}") from None
    if not math.isfinite(value):  # Go would take them, but they cannot be sent as JSON
        raise ValueError(f"invalid float value {shown}")
    return value


class Session:
    def __init__(
        self,
        client: Client,
        opts: RunOptions,
        think_explicit: bool,
        reader: LineReader | None = None,
    ):
        self.client, self.opts, self.think_explicit = client, opts, think_explicit
        self.reader = reader or LineReader(History(enabled=not env_flag("OLLAMA_NOHISTORY")))
        self.multiline = MULTILINE_NONE
        self.buffer = ""
        self.use_alt = False

    # -- the loop

    def run(self) -> None:
        while True:
            try:
                if self.use_alt:
                    line = self.reader.read(ALT_PROMPT, ALT_PLACEHOLDER)
                else:
                    line = self.reader.read(PROMPT, PLACEHOLDER)
            except EOFError:
                click.echo()
                return
            except KeyboardInterrupt:
                click.echo("\nUse Ctrl + d or /bye to exit.")
                # Unlike Ollama, a multi-line message being typed is dropped as a whole too.
                self.multiline, self.use_alt, self.buffer = MULTILINE_NONE, False, ""
                continue
            if not self.handle(line):
                return

    def handle(self, line: str) -> bool:
        """Act on one line; False when the session ends."""
        opts = self.opts
        if self.multiline != MULTILINE_NONE:
            ended = line.endswith('"""')
            self.buffer += line[:-3] if ended else line
            if not ended:
                self.buffer += "\n"
                self.use_alt = True
                return True
            if self.multiline == MULTILINE_SYSTEM:
                opts.system = self.buffer
                opts.messages.append({"role": "system", "content": opts.system})
                click.echo("Set system message.")
                self.buffer = ""
            self.multiline, self.use_alt = MULTILINE_NONE, False
        elif line.startswith('"""'):
            text = line[3:]
            ended = text.endswith('"""')
            self.buffer += text[:-3] if ended else text
            if not ended:
                self.buffer += "\n"
                self.multiline, self.use_alt = MULTILINE_PROMPT, True
        elif line.startswith("/list"):
            words = line.split()
            click.echo(
                table(
                    model_rows(self.client.tags(), words[1] if len(words) > 1 else None),
                    ["NAME", "ID", "SIZE", "MODIFIED"],
                )
            )
            return True
        elif line.startswith("/load"):
            self.load(line.split())
            return True
        elif line.startswith("/save"):
            self.save(line.split())
            return True
        elif line.startswith("/clear"):
            opts.messages = [{"role": "system", "content": opts.system}] if opts.system else []
            click.echo("Cleared session context")
            return True
        elif line.startswith("/set"):
            return self.set(line.split())
        elif line.startswith("/show"):
            self.show(line.split())
        elif line.startswith("/help") or line.startswith("/?"):
            words = line.split()
            if len(words) == 1:
                stderr(
                    USAGE.replace("message.\n", "message.\n" + USAGE_MEDIA)
                    if opts.multimodal
                    else USAGE
                )
            elif words[1] in ("set", "/set"):
                stderr(USAGE_SET)
            elif words[1] in ("show", "/show"):
                stderr(USAGE_SHOW)
            elif words[1] in ("shortcut", "shortcuts"):
                editor = (
                    "  Ctrl + g            Open default editor to compose a prompt\n"
                    if editor_key()
                    else ""
                )
                stderr(USAGE_SHORTCUTS.format(editor=editor))
        elif line.startswith("/exit") or line.startswith("/bye"):
            return False
        elif line.startswith("/"):
            first = line.split()[0]
            if not (opts.multimodal and any(name.startswith(first) for name in file_names(line))):
                click.echo(f"Unknown command '{first}'. Type /? for help")
                return True
            self.buffer += line  # a path to an image, not a command
        else:
            self.buffer += line

        if self.buffer and self.multiline == MULTILINE_NONE:
            message = {"role": "user", "content": self.buffer}
            self.buffer = ""
            if opts.multimodal:
                message["content"], images = extract(message["content"])
                if images:
                    message["images"] = images
            opts.messages.append(message)
            try:
                answer = chat(self.client, opts)
            except ApiError as exc:
                if "does not support thinking" in str(exc) or "invalid think value" in str(exc):
                    click.echo(f"error: {exc}")
                    return True
                raise
            if answer is not None:
                opts.messages.append(answer)
        return True

    # -- commands

    def load(self, words: list[str]) -> None:
        if len(words) != 2:
            click.echo("Usage:\n  /load <modelname>")
            return
        before = self.opts.copy()
        opts = self.opts
        opts.model, opts.messages, opts.loaded_messages = words[1], [], []
        click.echo(f"Loading model '{opts.model}'")
        try:
            info = self.client.show(opts.model)
            apply_show(opts, info)
            opts.multimodal = multimodal(info)
            opts.think = infer_think(info, opts, self.think_explicit)
            load_model(self.client, opts)
        except ApiError as exc:
            if "not found" in str(exc):
                click.echo(f"Couldn't find model '{opts.model}'")
                self.opts = before
                return
            if "does not support thinking" in str(exc):
                click.echo(f"error: {exc}")
                return
            raise

    def save(self, words: list[str]) -> None:
        if len(words) != 2:
            click.echo("Usage:\n  /save <modelname>")
            return
        opts = self.opts
        request: dict = {"model": words[1], "from": self.parent() or opts.model}
        if opts.system:
            request["system"] = opts.system
        if opts.options:
            request["parameters"] = opts.options
        messages = opts.loaded_messages + opts.messages
        if messages:
            request["messages"] = messages
        try:
            for _ in self.client.create(request):
                pass
        except ApiError as exc:
            if "invalid model name" in str(exc):
                click.echo(f"error: The model name '{words[1]}' is invalid")
                return
            raise
        click.echo(f"Created new model '{words[1]}'")

    def parent(self) -> str:
        """The model this one was made from, which ``/save`` builds on as Ollama's does; only if
        the server has it: for a model created from a GGUF file it is the file's name, and
        Ollama's ``/save`` fails on such a model."""
        name = self.opts.parent_model
        if not name or ModelName.parse(name) is None:
            return ""
        try:
            self.client.show(name)
        except ApiError:
            return ""
        return name

    def set(self, words: list[str]) -> bool:
        opts = self.opts
        if len(words) < 2:
            stderr(USAGE_SET)
            return True
        what = words[1]
        if what == "history":
            self.reader.history.enabled = True
        elif what == "nohistory":
            self.reader.history.enabled = False
        elif what in ("wordwrap", "nowordwrap"):
            opts.word_wrap = what == "wordwrap"
            click.echo(f"Set '{what}' mode.")
        elif what in ("verbose", "quiet"):
            opts.verbose = what == "verbose"
            click.echo(f"Set '{what}' mode.")
        elif what == "think":
            level = words[2] if len(words) > 2 else ""
            opts.think, self.think_explicit = level or True, True
            self.warn_if_cannot_think()
            click.echo(f"Set 'think' mode to '{level}'." if level else "Set 'think' mode.")
        elif what == "nothink":
            opts.think, self.think_explicit = False, True
            self.warn_if_cannot_think()
            click.echo("Set 'nothink' mode.")
        elif what == "format":
            if len(words) < 3 or words[2] != "json":
                click.echo("Invalid or missing format. For 'json' mode use '/set format json'")
            else:
                opts.format = "json"
                click.echo("Set format to 'json' mode.")
        elif what == "noformat":
            opts.format = ""
            click.echo("Disabled format.")
        elif what == "parameter":
            if len(words) < 4:
                stderr(USAGE_PARAMETERS)
                return True
            try:
                value = parameter(words[2], words[3:])
            except ValueError as exc:
                click.echo(f"Couldn't set parameter: {go_quote(str(exc))}")
                return True
            click.echo(f"Set parameter '{words[2]}' to '{', '.join(words[3:])}'")
            opts.options[words[2]] = value
        elif what == "system":
            if len(words) < 3:
                stderr(USAGE_SET)
                return True
            return self.set_system(" ".join(words[2:]))
        else:
            click.echo(f"Unknown command '/set {what}'. Type /? for help")
        return True

    def set_system(self, text: str) -> bool:
        opts = self.opts
        if text.startswith('"""'):
            text = text[3:]
            if text.endswith('"""'):
                text = text[:-3]
            else:  # the message goes on until a line ends with """
                self.multiline, self.use_alt = MULTILINE_SYSTEM, True
                self.buffer += text
                return True
        self.buffer += text
        opts.system = self.buffer
        message = {"role": "system", "content": self.buffer}
        if opts.messages and opts.messages[-1].get("role") == "system":
            opts.messages[-1] = message
        else:
            opts.messages.append(message)
        click.echo("Set system message.")
        self.buffer = ""
        return True

    def warn_if_cannot_think(self) -> None:
        try:
            info = self.client.show(self.opts.model)
        except ApiError:
            return
        if "thinking" not in capabilities(info):
            stderr(f'warning: model "{self.opts.model}" does not support thinking output')

    def show(self, words: list[str]) -> None:
        opts = self.opts
        if len(words) < 2:
            stderr(USAGE_SHOW)
            return
        body: dict = {"model": opts.model}
        if opts.system:
            body["system"] = opts.system
        if opts.options:
            body["options"] = opts.options
        try:
            info = self.client.json("POST", "/api/show", body)
        except ApiError:
            click.echo("error: couldn't get model")
            raise

        def text(key: str) -> str:
            value = info.get(key)
            return value if isinstance(value, str) else ""

        what = words[1]
        if what == "info":
            click.echo(summary(info), nl=False, err=True)
        elif what == "license":
            click.echo(text("license") or "No license was specified for this model.")
        elif what == "modelfile":
            click.echo(text("modelfile"))
        elif what == "parameters":
            click.echo("Model defined parameters:")
            if not text("parameters"):
                click.echo("  No additional parameters were specified for this model.")
            else:
                for line in text("parameters").split("\n"):
                    click.echo(f"  {line}")
            click.echo()
            if opts.options:
                click.echo("User defined parameters:")
                for key, value in opts.options.items():
                    click.echo(f"  {key:<30} {go_value(value)}")
                click.echo()
        elif what == "system":
            if opts.system:
                click.echo(opts.system + "\n")
            elif text("system"):
                click.echo(text("system") + "\n")
            else:
                click.echo("No system message was specified for this model.")
        elif what == "template":
            click.echo(text("template") or "No prompt template was specified for this model.")
        else:
            click.echo(f"Unknown command '/show {what}'. Type /? for help")
