"""The coding tools ``ollamakit launch`` knows out of the box, described as Ollama 0.33's
``ollama launch`` configures them (``cmd/launch/*.go``): the same files, keys, arguments and
environment, so a tool set up by either finds its settings where it expects them.

Each is registered in ``pyproject.toml`` under ``ollamakit.integration``, as a third party's
would be.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from typing import Any

import click

from ollamakit.integrations import ConfigFile, Integration, LaunchContext, LaunchModel

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

OLLAMA_KEY = "ollama"  # the API key the tools send; the server accepts any


# -- Claude Code: Anthropic's Messages API at the server's root -----------------------------

CLAUDE = Integration(
    name="claude",
    display_name="Claude Code",
    description="Anthropic's coding tool with subagents",
    executable="claude",
    fallback_paths=(".local/bin/claude", ".claude/local/claude"),
    install_url="https://code.claude.com/docs/en/quickstart",
    installer=("bash", "-c", "curl -fsSL https://claude.ai/install.sh | bash"),
    installer_needs=("curl", "bash"),
    args=("--model", "{model}"),
    env={
        "ANTHROPIC_BASE_URL": "{host}",
        "ANTHROPIC_API_KEY": "",
        "ANTHROPIC_AUTH_TOKEN": OLLAMA_KEY,
        "CLAUDE_CODE_ATTRIBUTION_HEADER": "0",
        "CLAUDE_CODE_TOTAL_TOKENS_REMINDER": "off",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_FEEDBACK_COMMAND": "1",
        "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
        # every tier Claude Code may switch to is the chosen model
        "ANTHROPIC_DEFAULT_OPUS_MODEL": "{model}",
        "ANTHROPIC_DEFAULT_SONNET_MODEL": "{model}",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "{model}",
        "CLAUDE_CODE_SUBAGENT_MODEL": "{model}",
    },
)


# -- Codex: the Responses API, through a profile file of its own ----------------------------

CODEX_PROFILE = "ollama-launch"
CODEX_CONTEXT_WINDOW = 128_000  # when the model's own is not known
CODEX_CATALOG = ".codex/model.json"


def codex_base_url(ctx: LaunchContext) -> str:
    return ctx.base_url(connectable=True, suffix="/v1/")


def toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a TOML basic string is JSON's string syntax


def codex_catalog_path(ctx: LaunchContext) -> str:
    return str(ctx.home / CODEX_CATALOG)


def codex_overrides(ctx: LaunchContext) -> list[str]:
    """The ``-c`` settings Codex is started with, so that no other profile can override them."""
    return [
        f"model_provider={toml_string(CODEX_PROFILE)}",
        f"model_providers.{CODEX_PROFILE}.name={toml_string('Ollama')}",
        f"model_providers.{CODEX_PROFILE}.base_url={toml_string(codex_base_url(ctx))}",
        f"model_providers.{CODEX_PROFILE}.wire_api={toml_string('responses')}",
        f"model_catalog_json={toml_string(codex_catalog_path(ctx))}",
    ]


def codex_args(ctx: LaunchContext) -> list[str]:
    args = ["--profile", CODEX_PROFILE]
    for override in codex_overrides(ctx):
        args += ["-c", override]
    return args + ["-m", ctx.model]


def codex_profile(ctx: LaunchContext) -> str:
    return (
        f"model = {toml_string(ctx.model)}\n"
        f"model_provider = {toml_string(CODEX_PROFILE)}\n"
        f"model_catalog_json = {toml_string(codex_catalog_path(ctx))}\n"
        "\n"
        f"[model_providers.{CODEX_PROFILE}]\n"
        f"name = {toml_string('Ollama')}\n"
        f"base_url = {toml_string(codex_base_url(ctx))}\n"
        'wire_api = "responses"\n'
    )


def codex_context_window(model: LaunchModel) -> int:
    window = model.context_length or CODEX_CONTEXT_WINDOW
    if model.details.get("format") != "safetensors":  # OLLAMA_CONTEXT_LENGTH is what runs
        try:
            configured = int(os.environ.get("OLLAMA_CONTEXT_LENGTH", "") or 0)
        except ValueError:
            configured = 0
        if configured > 0:
            window = configured
    return window


def codex_catalog(ctx: LaunchContext) -> str:
    model = ctx.primary
    entry = {
        "slug": model.name,
        "display_name": model.name,
        "context_window": codex_context_window(model),
        "shell_type": "default",
        "visibility": "list",
        "supported_in_api": True,
        "priority": 0,
        "truncation_policy": {"mode": "bytes", "limit": 10000},
        "input_modalities": ["text", "image"] if model.has("vision") else ["text"],
        "base_instructions": "",
        "support_verbosity": True,
        "default_verbosity": "low",
        "supports_parallel_tool_calls": False,
        "supports_reasoning_summaries": False,
        "supported_reasoning_levels": [],
        "experimental_supported_tools": [],
    }
    return json.dumps({"models": [entry]}, indent=2, sort_keys=True, ensure_ascii=False)


def toml_table_path(line: str) -> list[str] | None:
    """The key path of a ``[table]`` header line (not an array of tables), or None."""
    stripped = line.strip()
    if not stripped.startswith("[") or stripped.startswith("[["):
        return None
    try:
        parsed = tomllib.loads(stripped + "\n_probe = true\n")
    except tomllib.TOMLDecodeError:
        return None
    path: list[str] = []
    while isinstance(parsed, dict) and "_probe" not in parsed and len(parsed) == 1:
        key, parsed = next(iter(parsed.items()))
        path.append(key)
    return path


def codex_drop_old_profile(text: str | None, ctx: LaunchContext) -> str | None:
    """Earlier launchers put ``profile = "ollama-launch"`` and a ``[profiles.ollama-launch]``
    table in the user's ``config.toml``; Ollama's takes them out again, since the profile now
    has a file of its own. Every other line stays as written, comments included."""
    if not text:
        return None
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise click.ClickException(f"invalid Codex config TOML: {exc}") from None
    except RecursionError:
        raise click.ClickException("invalid Codex config TOML: nested too deeply") from None
    old_root = config.get("profile") == CODEX_PROFILE
    old_table = CODEX_PROFILE in (config.get("profiles") or {})
    if not (old_root or old_table):
        return None
    kept, in_root, in_old_table = [], True, False
    for line in text.splitlines(keepends=True):
        table = toml_table_path(line)
        if table is not None:
            in_root, in_old_table = False, table == ["profiles", CODEX_PROFILE]
        if in_old_table:
            continue
        if in_root and old_root and line.split("=", 1)[0].strip() == "profile":
            continue
        kept.append(line)
    edited = "".join(kept)
    tomllib.loads(edited)  # still valid
    return edited


CODEX_MANAGED_KEYS = ("profile", "model", "model_provider", "model_catalog_json")


def codex_extra_args(args: tuple[str, ...]) -> str | None:
    """Extra arguments that would undo the profile: Codex's own flags for it, or ``-c`` with a
    key the profile sets."""

    def clashes(override: str) -> bool:
        key, sep, _ = override.strip().partition("=")
        key = key.strip().strip("\"'")
        return bool(sep) and (key in CODEX_MANAGED_KEYS or key.startswith("model_providers."))

    for i, arg in enumerate(args):
        if arg.startswith("-p") or arg == "--profile" or arg.startswith("--profile="):
            return f"conflicting extra argument {arg!r}: ollamakit launch codex manages --profile"
        if arg.startswith("-m") or arg == "--model" or arg.startswith("--model="):
            return f"conflicting extra argument {arg!r}: ollamakit launch codex manages --model"
        if arg in ("-c", "--config"):
            value = args[i + 1] if i + 1 < len(args) else ""
        elif arg.startswith("--config="):
            value = arg[len("--config=") :]
        elif arg.startswith("-c"):
            value = arg[2:]
        else:
            continue
        if clashes(value):
            return (
                f"conflicting extra config {value!r}: ollamakit launch codex manages provider "
                "and model catalog config"
            )
    return None


CODEX = Integration(
    name="codex",
    display_name="Codex",
    description="OpenAI's open-source coding agent",
    executable="codex",
    install_url="https://developers.openai.com/codex/cli/",
    install_command=("npm", "install", "-g", "@openai/codex"),
    args=codex_args,
    env={"OPENAI_API_KEY": OLLAMA_KEY},
    files=(
        ConfigFile(".codex/config.toml", format="text", edit=codex_drop_old_profile),
        ConfigFile(CODEX_CATALOG, format="text", render=codex_catalog),
        ConfigFile(f".codex/{CODEX_PROFILE}.config.toml", format="text", render=codex_profile),
    ),
    files_on_configure=False,  # Codex's files are written as it starts, with its model
    restore_files=(f".codex/{CODEX_PROFILE}.config.toml", CODEX_CATALOG),
    restore_message="Codex launch configuration removed.",
    min_version="0.134.0",
    version_hint="npm update -g @openai/codex",
    check_extra_args=codex_extra_args,
)


# -- Copilot CLI and Pool: environment only -------------------------------------------------

COPILOT = Integration(
    name="copilot",
    display_name="Copilot CLI",
    description="GitHub's AI coding agent for the terminal",
    executable="copilot",
    fallback_paths=(".local/bin/copilot",),
    aliases=("copilot-cli",),
    install_url="https://github.com/features/copilot/cli/",
    args=("--model", "{model}"),
    env={
        "COPILOT_PROVIDER_BASE_URL": "{host}/v1",
        "COPILOT_PROVIDER_API_KEY": "",
        "COPILOT_PROVIDER_WIRE_API": "responses",
        "COPILOT_MODEL": "{model}",
    },
)

POOL = Integration(
    name="pool",
    display_name="Pool",
    description="Poolside's software agent for enterprise development",
    executable="pool",
    install_url="https://github.com/poolsideai/pool",
    args=("-m", "{model}"),
    env={"POOLSIDE_STANDALONE_BASE_URL": "{host}/v1", "POOLSIDE_API_KEY": OLLAMA_KEY},
)


# -- Droid: custom models in ~/.factory/settings.json ---------------------------------------

DROID_REASONING = ("high", "medium", "low", "none")
DROID_MAX_OUTPUT = 64000


def droid_settings(settings: dict[str, Any], ctx: LaunchContext) -> dict[str, Any]:
    """The server's models first in ``customModels`` (those with the ``ollama`` key are
    replaced, the user's own kept after them), and the first as the session's default."""
    existing = settings.get("customModels")
    theirs = [
        m
        for m in (existing if isinstance(existing, list) else [])
        if isinstance(m, dict) and m.get("apiKey") != OLLAMA_KEY
    ]
    ours = [
        {
            "model": model.name,
            "displayName": model.name,
            "baseUrl": ctx.host + "/v1",
            "apiKey": OLLAMA_KEY,
            "provider": "generic-chat-completion-api",
            "maxOutputTokens": DROID_MAX_OUTPUT,
            "supportsImages": model.has("vision"),
            "id": f"custom:{model.name}-{index}",
            "index": index,
        }
        for index, model in enumerate(ctx.models)
    ]
    settings["customModels"] = ours + theirs
    session = settings.get("sessionDefaultSettings")
    session = session if isinstance(session, dict) else {}
    session["model"] = ours[0]["id"]
    if session.get("reasoningEffort") not in DROID_REASONING:
        session["reasoningEffort"] = "none"
    settings["sessionDefaultSettings"] = session
    return settings


DROID = Integration(
    name="droid",
    display_name="Droid",
    description="Factory's coding agent across terminal and IDEs",
    executable="droid",
    install_url="https://docs.factory.ai/cli/getting-started/quickstart",
    files=(ConfigFile(".factory/settings.json", update=droid_settings),),
    lists_models=True,
)


# -- OpenCode: its config in the environment, the models in its recent list -----------------

OPENCODE_RECENT = 10


def opencode_model_entry(model: LaunchModel) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": model.name}
    if model.has("vision"):
        entry["modalities"] = {"input": ["text", "image"], "output": ["text"]}
    if model.has("thinking"):
        entry["reasoning"] = True
        families = [model.details.get("family"), *(model.details.get("families") or [])]
        names = [str(f or "") for f in families] + [model.name]
        if any("gptoss" in n.lower().replace("-", "").replace("_", "") for n in names):
            entry["options"] = {"reasoningEffort": "medium"}
            entry["variants"] = {
                level: {"reasoningEffort": level} for level in ("low", "medium", "high", "max")
            }
        else:  # thinking that is on or off: only "none" turns it off
            entry["variants"] = {
                "none": {"reasoningEffort": "none"},
                "low": {"disabled": True},
                "medium": {"disabled": True},
                "high": {"disabled": True},
            }
    return entry


def opencode_config(ctx: LaunchContext) -> str:
    config = {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            "ollama": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Ollama",
                "options": {"baseURL": ctx.host + "/v1"},
                "models": {model.name: opencode_model_entry(model) for model in ctx.models},
            }
        },
        "model": "ollama/" + ctx.model,
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def opencode_state(state: dict[str, Any], ctx: LaunchContext) -> dict[str, Any]:
    """The models first in OpenCode's recent list (so its picker shows them), the rest kept."""
    names = [model.name for model in ctx.models]
    recent = state.get("recent")
    kept = [
        entry
        for entry in (recent if isinstance(recent, list) else [])
        if not (
            isinstance(entry, dict)
            and entry.get("providerID") == "ollama"
            and entry.get("modelID") in names
        )
    ]
    ours = [{"providerID": "ollama", "modelID": name} for name in names]
    state.setdefault("favorite", [])
    state.setdefault("variant", {})
    state["recent"] = (ours + kept)[:OPENCODE_RECENT]
    return state


OPENCODE = Integration(
    name="opencode",
    display_name="OpenCode",
    description="Anomaly's open-source coding agent",
    executable="opencode",
    fallback_paths=(".opencode/bin/opencode",),
    install_url="https://opencode.ai",
    installer=("bash", "-c", "set -o pipefail; curl -fsSL https://opencode.ai/install | bash"),
    installer_needs=("curl", "bash"),
    env={"OPENCODE_CONFIG_CONTENT": opencode_config},
    files=(ConfigFile(".local/state/opencode/model.json", update=opencode_state),),
    lists_models=True,
)


# -- Cline: its provider settings, and the older global state it still reads ----------------


def cline_providers(config: dict[str, Any], ctx: LaunchContext) -> dict[str, Any]:
    providers = config.get("providers")
    providers = providers if isinstance(providers, dict) else {}
    provider = providers.get("ollama")
    provider = provider if isinstance(provider, dict) else {}
    settings = provider.get("settings")
    settings = settings if isinstance(settings, dict) else {}
    base_url = ctx.base_url(connectable=True, suffix="/v1")
    unchanged = (
        settings.get("model") == ctx.model
        and settings.get("baseUrl") == base_url
        and provider.get("tokenSource") == "manual"
        and isinstance(provider.get("updatedAt"), str)
    )
    settings.update(provider="ollama", model=ctx.model, baseUrl=base_url)
    settings.pop("apiKey", None)
    provider["settings"] = settings
    if not unchanged:  # Cline takes the newest provider settings
        provider["updatedAt"] = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    provider["tokenSource"] = "manual"
    providers["ollama"] = provider
    config.update(version=1, lastUsedProvider="ollama", providers=providers)
    return config


def cline_global_state(state: dict[str, Any], ctx: LaunchContext) -> dict[str, Any]:
    root = ctx.base_url(connectable=True, suffix="")
    state.update(
        ollamaBaseUrl=root,
        actModeApiProvider="ollama",
        actModeOllamaModelId=ctx.model,
        actModeOllamaBaseUrl=root,
        planModeApiProvider="ollama",
        planModeOllamaModelId=ctx.model,
        planModeOllamaBaseUrl=root,
        welcomeViewCompleted=True,
    )
    return state


CLINE = Integration(
    name="cline",
    display_name="Cline",
    description="Autonomous coding agent with parallel execution",
    executable="cline",
    install_command=("npm", "install", "-g", "cline@latest"),
    installer=("npm", "install", "-g", "cline@latest"),
    installer_needs=("npm",),
    install_question="Cline is not installed. Install with npm?",
    files=(
        ConfigFile(".cline/data/settings/providers.json", update=cline_providers),
        ConfigFile(".cline/data/globalState.json", update=cline_global_state),
    ),
)


# -- Pi: an ``ollama`` provider in its models file, and the default in its settings --------


def pi_models(config: dict[str, Any], ctx: LaunchContext) -> dict[str, Any]:
    """Pi's ``ollama`` provider lists the models: entries marked ``_launch`` are the launcher's
    (kept while chosen, dropped when not), any others the user's own, always kept."""
    providers = config.get("providers")
    providers = providers if isinstance(providers, dict) else {}
    ollama = providers.get("ollama")
    if not isinstance(ollama, dict):
        ollama = {"baseUrl": ctx.host + "/v1", "api": "openai-completions", "apiKey": OLLAMA_KEY}
    existing = ollama.get("models")
    chosen = {model.name for model in ctx.models}
    kept, present = [], set()
    for entry in existing if isinstance(existing, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        if entry.get("_launch") is not True:
            kept.append(entry)
        elif entry["id"] in chosen and entry["id"] not in present:
            kept.append(entry)
            present.add(entry["id"])
    for model in ctx.models:
        if model.name in present:
            continue
        entry = {"id": model.name, "_launch": True}
        entry["input"] = ["text", "image"] if model.has("vision") else ["text"]
        if model.has("thinking"):
            entry["reasoning"] = True
        if model.context_length > 0:
            entry["contextWindow"] = model.context_length
        kept.append(entry)
    ollama["models"] = kept
    providers["ollama"] = ollama
    config["providers"] = providers
    return config


def pi_settings(settings: dict[str, Any], ctx: LaunchContext) -> dict[str, Any]:
    settings.update(defaultProvider="ollama", defaultModel=ctx.model)
    return settings


PI = Integration(
    name="pi",
    display_name="Pi",
    description="Minimal AI agent toolkit with plugin support",
    executable="pi",
    install_command=("npm", "install", "-g", "@earendil-works/pi-coding-agent@latest"),
    installer=("npm", "install", "-g", "@earendil-works/pi-coding-agent@latest"),
    installer_needs=("npm",),
    install_question="Install Pi with npm?",
    files=(
        ConfigFile(".pi/agent/models.json", update=pi_models),
        ConfigFile(".pi/agent/settings.json", update=pi_settings),
    ),
    lists_models=True,
)
