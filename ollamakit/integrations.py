"""Integrations for ``ollamakit launch``: coding tools that ``launch`` points at this server.

An integration is a declarative description, an ``Integration`` instance registered as a named
driver in the ``ollamakit.integration`` entry point group (the name is the word typed after
``launch``). ``launch`` does the rest, the same for every integration: it finds the tool, picks and
readies the model, merges the described settings into the tool's config files (atomically, with
a backup of the file it replaces, keeping every setting it does not own), and starts the tool
with the described arguments and environment.

Strings in ``args`` and ``env`` are templates: ``{host}`` is the server's URL as Ollama's
``envconfig.Host()`` makes it from ``OLLAMA_HOST`` (``http://0.0.0.0:11434`` stays so),
``{connectable_host}`` the same with a listen-everywhere address turned into loopback
(``ConnectableHost()``: ``http://127.0.0.1:11434``), ``{model}`` the chosen model, ``{home}`` the
user's home folder. Each integration takes the one Ollama gives that tool.
A value may instead be a function of the ``LaunchContext``, for what a template cannot say (a
JSON document built from the models, say).

A tool that needs more than its files around its run (an onboarding wizard the first time, a
gateway that must answer while it runs and stop after) describes that as ``around_start``: a
context manager that ``launch`` enters just before the tool starts and leaves when it exits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

#: A JSON object (a dict) in, the same object with this integration's settings merged in, out.
JsonUpdate = Callable[[dict[str, Any], "LaunchContext"], dict[str, Any]]
Template = str | Callable[["LaunchContext"], str]


@dataclass(frozen=True)
class LaunchModel:
    """A model as ``/api/tags`` lists it, for the config files that describe it."""

    name: str
    capabilities: tuple[str, ...] = ()
    context_length: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)

    def has(self, capability: str) -> bool:
        return capability in self.capabilities


@dataclass(frozen=True)
class LaunchContext:
    host: str  # the server's base URL as OLLAMA_HOST gives it (Ollama's envconfig.Host())
    model: str  # the primary model, the one the tool starts with
    models: tuple[LaunchModel, ...]  # the primary first, then the others the tool should list
    home: Path
    # ``host`` with 0.0.0.0 or :: as loopback (Ollama's envconfig.ConnectableHost())
    connectable_host: str = ""
    extra_args: tuple[str, ...] = ()  # the words given after ``--``, passed on after ``args``
    local_models: tuple[str, ...] = ()  # every model the server lists (``/api/tags``)
    installed_now: bool = False  # launch installed the tool just now (no update is needed)

    def fill(self, template: Template) -> str:
        if callable(template):
            return template(self)
        return template.format(
            host=self.host,
            connectable_host=self.connectable_host or self.host,
            model=self.model,
            home=self.home,
        )

    def base_url(self, connectable: bool, suffix: str) -> str:
        """``host`` or ``connectable_host`` without a trailing slash, then ``suffix``."""
        root = (self.connectable_host or self.host) if connectable else self.host
        return root.rstrip("/") + suffix

    @property
    def primary(self) -> LaunchModel:
        return self.models[0]


class Declined(Exception):
    """A hook's question was answered no: ``launch`` stops there, and it is no error."""


class Questions(Protocol):
    """How an integration's hooks put a question to the person launching the tool."""

    @property
    def asks(self) -> bool:
        """A question of the tool's own may be put: a terminal, and no ``--yes``."""
        ...

    def agree(self, question: str) -> bool:
        """Ollama's ``ConfirmPrompt``: yes under ``--yes``, asked in a terminal, and outside one
        an error that names ``--yes``."""
        ...


#: Entered just before the tool starts, left when it has exited: yields more words for its
#: command line (after ``args``, before the extra arguments).
AroundStart = Callable[[str, LaunchContext, Questions], AbstractContextManager[Sequence[str]]]


@dataclass(frozen=True)
class ConfigFile:
    """One file ``launch`` writes: a path under the home folder, and how its content is made.

    ``json`` and ``yaml`` files are read (an absent file is ``{}``), passed through ``update``,
    and written back; whatever ``update`` leaves alone stays as the user had it. ``path`` is
    relative to the home folder (or absolute), or a function of the context for a tool whose
    folder moves with its own environment variables. ``text`` files belong to the
    integration whole: ``render`` makes their content. Or ``edit`` changes a text file of the
    user's: it gets the text (None when there is no file) and returns the new text, or None to
    leave the file as it is. ``legacy_paths``: where older releases of the tool kept the file,
    read (the first that exists) while the file itself is absent; the file is written in its
    new place.
    """

    path: str | Callable[[LaunchContext], str]
    format: Literal["json", "yaml", "text"] = "json"
    update: JsonUpdate | None = None
    render: Callable[[LaunchContext], str] | None = None
    edit: Callable[[str | None, LaunchContext], str | None] | None = None
    indent: int | None = 2
    sort_keys: bool = True  # YAML: keys sorted (Go's map), or kept in their order (a node)
    private: bool = False  # the file and its folder only their owner's (0600, 0700)
    legacy_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Integration:
    name: str
    display_name: str
    description: str
    executable: str
    # other names it has had on PATH (an older release's), looked for after ``executable``
    other_executables: tuple[str, ...] = ()
    # where the tool's own installer puts it when that is not on PATH, under the home folder
    fallback_paths: tuple[str, ...] = ()
    # how to find it instead of all that (an app in its platform's place): the home folder in,
    # its path (on macOS maybe an ``.app`` bundle) or None out
    find: Callable[[Path], str | None] | None = None
    # an app: started (an ``.app`` bundle with ``open -a``) and left running; launch returns
    detached: bool = False
    aliases: tuple[str, ...] = ()
    install_url: str = ""
    install_command: tuple[str, ...] = ()  # shown as the way to install it
    # run (after a yes) to install the tool when it is missing; needs these programs on PATH
    installer: tuple[str, ...] = ()
    installer_needs: tuple[str, ...] = ()
    # the installer's environment, where this one does not set them already
    installer_env: Mapping[str, str] = field(default_factory=dict)
    install_question: str = ""  # default: "<display name> is not installed. Install now?"
    # before the extra arguments given after ``--``: templates, or a function for a list
    args: tuple[Template, ...] | Callable[[LaunchContext], list[str]] = ()
    env: Mapping[str, Template] = field(default_factory=dict)
    # taken out of the environment it starts with (other providers' keys, so it uses this one)
    unset_env: tuple[str, ...] = ()
    files: tuple[ConfigFile, ...] = ()
    # True: written when the model is configured (``--config`` too); False: just before start
    files_on_configure: bool = True
    # the tool's config lists every model saved for it, not only the one it starts with
    lists_models: bool = False
    # ... or every model the picker offers (Ollama's ManagedModelListConfigurer)
    lists_available_models: bool = False
    # launch marks it ``onboarded`` in ~/.ollama/config.json (Ollama's managed integrations)
    onboards: bool = False
    notice: str = ""  # printed just before the tool starts
    # after its files are written: the tool's executable and the context (a daemon to refresh)
    after_configure: Callable[[str, LaunchContext], None] | None = None
    # just before it starts, with a way to ask a yes/no question (None where none may be asked)
    before_start: Callable[[str, LaunchContext, Callable[[str], bool] | None], None] | None = None
    # around its run: what it needs first, and what is stopped after it exits (see above)
    around_start: AroundStart | None = None
    # the operating systems (``sys.platform`` prefixes) it runs on, and what is said elsewhere
    platforms: tuple[str, ...] = ()
    unsupported_message: str = ""
    # set: the integration is only ever restored from the command line; launching says this
    restore_only_message: str = ""
    # ``--restore`` removes these files (paths under the home folder) and prints the message
    restore_files: tuple[str, ...] = ()
    # ... or calls this, with the tool's path (it must be installed), the home folder, and a
    # way to ask (to restart an app), for what is more than removing files
    restore: Callable[[str, Path, Questions], None] | None = None
    restore_message: str = ""
    # the tool must report at least this version (``executable --version``, last word)
    min_version: str = ""
    version_hint: str = ""
    # the words after ``--`` that clash with what the integration manages: an error, or None
    check_extra_args: Callable[[tuple[str, ...]], str | None] | None = None
    hidden: bool = False

    def supported(self, platform: str) -> bool:
        return not self.platforms or platform.startswith(self.platforms)

    def config_path(self, spec: ConfigFile, ctx: LaunchContext) -> Path:
        return ctx.home / (spec.path(ctx) if callable(spec.path) else spec.path)

    def source_path(self, spec: ConfigFile, ctx: LaunchContext) -> Path:
        """Where the file's present content is read: the file, or while it is absent the first
        of its legacy places that exists."""
        path = self.config_path(spec, ctx)
        if path.exists() or path.is_symlink():
            return path
        for legacy in spec.legacy_paths:
            if (ctx.home / legacy).exists():
                return ctx.home / legacy
        return path

    def start_args(self, ctx: LaunchContext) -> list[str]:
        if callable(self.args):
            return list(self.args(ctx))
        return [ctx.fill(arg) for arg in self.args]

    def start_env(self, ctx: LaunchContext) -> dict[str, str]:
        return {name: ctx.fill(value) for name, value in self.env.items()}

    def environment(self, ctx: LaunchContext, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` (this process's environment) without ``unset_env``, then ``env`` on top."""
        kept = {name: value for name, value in base.items() if name not in self.unset_env}
        return {**kept, **self.start_env(ctx)}

    def install_hint(self) -> str:
        if self.install_url:
            return f"install from {self.install_url}"
        if self.install_command:
            return "install with: " + " ".join(self.install_command)
        return ""
