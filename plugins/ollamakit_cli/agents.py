"""More terminal agents for ``ollamakit launch``, as Ollama 0.33 configures them
(``cmd/launch/qwen.go``, ``kimi.go``, ``omp.go``): Qwen Code, Kimi Code CLI and Oh My Pi.

Registered in ``pyproject.toml`` under ``ollamakit.integration``, as the others are.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ollamakit.integrations import ConfigFile, Integration, LaunchContext, LaunchModel

OLLAMA_KEY = "ollama"
CLOUD_OFF = "\033[90m{}\033[0m"  # Ollama's grey for what it skips


def has_flag(args: tuple[str, ...], *names: str) -> bool:
    return any(arg == name or arg.startswith(name + "=") for arg in args for name in names)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# -- Qwen Code: an OpenAI provider in ~/.qwen/settings.json, and the same in its environment --

QWEN_ENV_KEY = "OLLAMA_API_KEY"


def qwen_base_url(ctx: LaunchContext) -> str:
    return ctx.base_url(connectable=False, suffix="/v1")


def qwen_settings(config: dict[str, Any], ctx: LaunchContext) -> dict[str, Any]:
    """Ollama's provider first in ``modelProviders.openai`` (an earlier one for this server
    replaced, every other kept), Qwen's OpenAI auth pointed here, and the model chosen."""
    base_url = qwen_base_url(ctx)
    env = as_dict(config.get("env"))
    env[QWEN_ENV_KEY] = OLLAMA_KEY
    config["env"] = env
    providers = as_dict(config.get("modelProviders"))
    existing = providers.get("openai")
    ours = {
        "id": ctx.model,
        "name": f"{ctx.model} (Ollama)",
        "baseUrl": base_url,
        "envKey": QWEN_ENV_KEY,
    }
    providers["openai"] = [ours] + [
        entry
        for entry in (existing if isinstance(existing, list) else [])
        if not (
            isinstance(entry, dict)
            and entry.get("envKey") == QWEN_ENV_KEY
            and str(entry.get("baseUrl") or "").rstrip("/") == base_url
        )
    ]
    config["modelProviders"] = providers
    security = as_dict(config.get("security"))
    auth = as_dict(security.get("auth"))
    auth.update(selectedType="openai", baseUrl=base_url)
    security["auth"] = auth
    config["security"] = security
    model = as_dict(config.get("model"))
    model["name"] = ctx.model
    config["model"] = model
    return config


def qwen_args(ctx: LaunchContext) -> list[str]:
    """``--model`` and ``--auth-type openai`` unless the extra arguments already say them."""
    args = []
    if not has_flag(ctx.extra_args, "--model", "-m"):
        args += ["--model", ctx.model]
    if not has_flag(ctx.extra_args, "--auth-type"):
        args += ["--auth-type", "openai"]
    return args


QWEN = Integration(
    name="qwen",
    display_name="Qwen Code",
    description="Qwen's AI coding agent with tool use",
    executable="qwen",
    fallback_paths=(".npm-global/bin/qwen", ".local/bin/qwen", ".cargo/bin/qwen"),
    install_url="https://qwen.ai/qwencode",
    installer=(
        "bash",
        "-c",
        "set -o pipefail; curl -fsSL https://qwen-code-assets.oss-cn-hangzhou.aliyuncs.com/"
        "installation/install-qwen.sh | sed '/log_info \"Starting Qwen Code...\"/,/exec qwen/d'"
        " | bash",
    ),
    installer_needs=("curl", "bash"),
    args=qwen_args,
    env={"OPENAI_API_KEY": OLLAMA_KEY, "OPENAI_BASE_URL": qwen_base_url, "OPENAI_MODEL": "{model}"},
    files=(ConfigFile(".qwen/settings.json", update=qwen_settings),),
    onboards=True,
)


# -- Kimi Code CLI: its whole config inline, in ``--config`` ------------------------------

KIMI_ALIAS = "ollama"
KIMI_CONTEXT = 32768  # when the model's own is not known


def kimi_args(ctx: LaunchContext) -> list[str]:
    config = {
        "default_model": KIMI_ALIAS,
        "providers": {
            KIMI_ALIAS: {
                "type": "openai_legacy",
                "base_url": ctx.base_url(connectable=True, suffix="") + "/v1",
                "api_key": OLLAMA_KEY,
            }
        },
        "models": {
            KIMI_ALIAS: {
                "provider": KIMI_ALIAS,
                "model": ctx.model,
                "max_context_size": ctx.primary.context_length or KIMI_CONTEXT,
            }
        },
    }
    # Go's json.Marshal of a map: sorted keys, no spaces
    return ["--config", json.dumps(config, sort_keys=True, separators=(",", ":"))]


def kimi_extra_args(args: tuple[str, ...]) -> str | None:
    for arg in args:
        for flag, managed in (
            ("--config", "--config"),
            ("--config-file", "--config-file"),
            ("--model", "--model"),
            ("-m", "-m/--model"),
        ):
            if arg == flag or arg.startswith(flag + "="):
                return (
                    f"conflicting extra argument {arg!r}: ollamakit launch kimi manages {managed}"
                )
    return None


KIMI = Integration(
    name="kimi",
    display_name="Kimi Code CLI",
    description="Moonshot's coding agent for terminal and IDEs",
    executable="kimi",
    fallback_paths=(
        ".local/bin/kimi",
        "bin/kimi",
        ".local/share/uv/tools/kimi-cli/bin/kimi",
        ".local/share/uv/tools/kimi/bin/kimi",
    ),
    install_url="https://moonshotai.github.io/kimi-cli/en/guides/getting-started.html",
    installer=("bash", "-c", "curl -LsSf https://code.kimi.com/install.sh | bash"),
    installer_needs=("curl", "bash"),
    install_question="Kimi is not installed. Install now?",
    args=kimi_args,
    check_extra_args=kimi_extra_args,
    hidden=True,
)


# -- Oh My Pi: an ``ollama`` provider in its models.yml, its setup marked done ------------


def omp_agent_dir(ctx: LaunchContext) -> str:
    """``$PI_CODING_AGENT_DIR``, or ``agent`` in ``$PI_CONFIG_DIR`` (``~/.omp`` by default)."""
    agent_dir = os.environ.get("PI_CODING_AGENT_DIR", "").strip()
    if agent_dir:
        return agent_dir
    config_dir = os.environ.get("PI_CONFIG_DIR", "").strip() or ".omp"
    return os.path.join(config_dir, "agent")  # absolute or under the home folder


def omp_model_entry(model: LaunchModel) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": model.name,
        "name": model.name,
        "input": ["text", "image"] if model.has("vision") else ["text"],
    }
    if model.context_length > 0:
        entry["contextWindow"] = model.context_length
    return entry


def omp_models(config: dict[str, Any], ctx: LaunchContext) -> dict[str, Any]:
    """The models first (the chosen one leading; keys the user added to an entry stay), then
    the provider's other entries as they were."""
    providers = as_dict(config.get("providers"))
    provider = as_dict(providers.get("ollama"))
    provider.update(
        baseUrl=ctx.base_url(connectable=True, suffix="/v1"),
        api="openai-responses",
        auth="none",
        discovery={"type": "ollama"},
    )
    existing = provider.get("models")
    existing = existing if isinstance(existing, list) else []
    by_id = {e["id"]: e for e in existing if isinstance(e, dict) and isinstance(e.get("id"), str)}
    merged: list[Any] = []
    seen = set()
    for model in ctx.models:
        if not model.name or model.name in seen:
            continue
        seen.add(model.name)
        merged.append({**by_id.get(model.name, {}), **omp_model_entry(model)})
    for entry in existing:
        if not isinstance(entry, dict):
            merged.append(entry)
        elif entry.get("id") and entry["id"] not in seen:
            merged.append(entry)
    provider["models"] = merged
    providers["ollama"] = provider
    config["providers"] = providers
    return config


def omp_config(config: dict[str, Any], ctx: LaunchContext) -> dict[str, Any]:
    config["setupVersion"] = 1
    return config


OMP = Integration(
    name="omp",
    display_name="Oh My Pi",
    description="AI coding agent with IDE integration",
    executable="omp",
    fallback_paths=(".local/bin/omp", ".bun/bin/omp"),
    install_url="https://omp.sh",
    args=lambda ctx: [
        "--model",
        ctx.model if ctx.model.startswith("ollama/") else "ollama/" + ctx.model,
    ],
    files=(
        ConfigFile(lambda ctx: os.path.join(omp_agent_dir(ctx), "models.yml"), "yaml", omp_models),
        ConfigFile(lambda ctx: os.path.join(omp_agent_dir(ctx), "config.yml"), "yaml", omp_config),
    ),
    lists_available_models=True,
    onboards=True,
    # the web search plugin it would install needs Ollama's cloud, which this server has not
    notice=CLOUD_OFF.format("Cloud is disabled; skipping @ollama/pi-web-search setup."),
)


# -- ChatGPT (the Codex app): Ollama sets it up on macOS and Windows only ------------------
# On Linux, where this server runs, Ollama refuses it with these words; an empty
# ``executable`` says ollamakit has no way to set the app up where Ollama would.

CHATGPT = Integration(
    name="chatgpt",
    display_name="ChatGPT",
    description="Complete work with ChatGPT",
    executable="",
    aliases=("codex-app", "codex-desktop", "codex-gui"),
    install_url="https://chatgpt.com/download",
    platforms=("darwin", "win32"),
    unsupported_message="ChatGPT launch is only supported on macOS and Windows",
)


# -- Muse Code: its settings in a config folder of launch's own, its catalog the models -----

MUSE_PROVIDER = "meta"
MUSE_PROFILE = "tbh"
MUSE_FALLBACK_LIMIT = 32768
MUSE_CONFIG_HOME = ".ollama/launch/muse-config"


def muse_user_settings(ctx: LaunchContext) -> dict[str, Any]:
    """The user's own Muse settings, the base of launch's copy the first time."""
    from . import configfiles

    config_home = os.environ.get("XDG_CONFIG_HOME", "").strip()
    folder = Path(config_home) if config_home else ctx.home / ".config"
    try:
        return configfiles.read_json_object(folder / "muse" / "settings.json")
    except configfiles.ConfigError:
        return {}


def loaded_context(model: str) -> int:
    """The context the server loads ``model`` with (it is loaded first), as ``/api/ps`` says."""
    from .client import ApiError, Client

    try:
        with Client() as client:
            client.json("POST", "/api/generate", {"model": model, "stream": False})
            running = client.json("GET", "/api/ps").get("models") or []
    except (ApiError, OSError, ValueError):
        return 0
    for entry in running:
        length = entry.get("context_length") if isinstance(entry, dict) else None
        names = {entry.get("name"), entry.get("model")} if isinstance(entry, dict) else set()
        if (
            isinstance(length, int)
            and length > 0
            and (model in names or f"{model}:latest" in names)
        ):
            return length
    return 0


def muse_settings(settings: dict[str, Any], ctx: LaunchContext) -> dict[str, Any]:
    if not settings:
        settings = muse_user_settings(ctx)
    settings.setdefault("schema_version", 1)
    settings["provider"] = MUSE_PROVIDER
    settings["model"] = ctx.model
    settings["endpoint_transport"] = {
        "base_url": ctx.connectable_host + "/v1",
        "auth": "none",
    }
    rows = []
    for index, model in enumerate(ctx.models):
        context = (loaded_context(model.name) if index == 0 else 0) or model.context_length
        context = context if context > 0 else MUSE_FALLBACK_LIMIT
        rows.append(
            {
                "model_id": model.name,
                "provider_id": MUSE_PROVIDER,
                "profile_id": MUSE_PROFILE,
                "display_label": model.name,
                "visibility": "visible",
                "display_order": index,
                "is_default": index == 0,
                "context_limit": context,
                "output_limit": min(context, MUSE_FALLBACK_LIMIT),
                "description": "Served by Ollama",
            }
        )
    settings["model_catalog"] = rows
    return settings


MUSE = Integration(
    name="muse",
    display_name="Muse Code",
    description="Meta's agentic coding CLI",
    executable="muse",
    fallback_paths=(".local/bin/muse",),
    aliases=("muse-code",),
    install_command=("bash", "-c", "curl -fsSL https://dev.meta.ai/install.sh | bash"),
    installer=("bash", "-c", "curl -fsSL https://dev.meta.ai/install.sh | bash"),
    install_question="Muse is not installed. Install now?",
    env={"XDG_CONFIG_HOME": lambda ctx: str(ctx.home / MUSE_CONFIG_HOME)},
    files=(ConfigFile(f"{MUSE_CONFIG_HOME}/muse/settings.json", update=muse_settings),),
    files_on_configure=False,  # written as it starts, with the context its model loaded with
    lists_models=True,
    platforms=("linux", "darwin"),
    unsupported_message="Warning: Muse is not currently supported on Windows",
    hidden=True,
)


# -- DeepSeek Harness: its settings and a patch naming them, in launch's own folder ---------

DSH_FOLDER = ".ollama/launch/dsh"
DSH_KEY_ENV = "OLLAMA_LAUNCH_DSH_API_KEY"
DSH_PACKAGE = "@deepseek-ai/dsh@latest"


def dsh_mapping(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        value = parent[key] = {}
    return value


def dsh_settings(settings: dict[str, Any], ctx: LaunchContext) -> dict[str, Any]:
    """The chosen model the agents' default, and an ``ollama`` provider listing every model
    offered (the chosen first); the rest of the file as it was, in its order. (Ollama also
    points the harness's web search at its cloud; this server has none, as with its cloud off.)"""
    dsh_mapping(settings, "agent-default-model").update(provider="ollama", model=ctx.model)
    providers = dsh_mapping(dsh_mapping(settings, "llm-pi-ai"), "providers")
    models, seen = [], set()
    for model in ctx.models:
        if model.name and model.name not in seen:
            seen.add(model.name)
            models.append(omp_model_entry(model))
    dsh_mapping(providers, "ollama").update(
        displayName="Ollama",
        apiKeyEnv=DSH_KEY_ENV,
        api="openai-completions",
        baseURL=ctx.base_url(connectable=True, suffix="/v1"),
        models=models,
    )
    return settings


def dsh_patch(ctx: LaunchContext) -> str:
    from .configfiles import yaml_text

    return yaml_text(
        [{"id": "settings", "config": {"path": str(ctx.home / DSH_FOLDER / "settings.yaml")}}]
    )


def dsh_extra_args(args: tuple[str, ...]) -> str | None:
    for arg in args:
        if arg == "--patch" or arg.startswith("--patch="):
            return f"conflicting extra argument {arg!r}: ollamakit launch dsh manages --patch"
    return None


DSH = Integration(
    name="dsh",
    display_name="DeepSeek Harness",
    description="DeepSeek's open-source agent harness",
    executable="dsh",
    aliases=("deepseek-harness",),
    install_url="https://github.com/deepseek-ai/deepseek-harness",
    install_command=("npm", "install", "-g", DSH_PACKAGE),
    installer=("npm", "install", "-g", DSH_PACKAGE),
    installer_needs=("npm",),
    install_question="DeepSeek Harness is not installed. Install with npm?",
    args=lambda ctx: ["web", "--patch", str(ctx.home / DSH_FOLDER / "ollama.cordis.yml")],
    env={DSH_KEY_ENV: OLLAMA_KEY},
    files=(
        ConfigFile(
            f"{DSH_FOLDER}/settings.yaml", "yaml", dsh_settings, sort_keys=False, private=True
        ),
        ConfigFile(f"{DSH_FOLDER}/ollama.cordis.yml", "text", render=dsh_patch, private=True),
    ),
    check_extra_args=dsh_extra_args,
    lists_available_models=True,
    onboards=True,
)
