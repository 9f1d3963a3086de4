"""More terminal agents for ``ollamakit launch``, as Ollama 0.33 configures them
(``cmd/launch/qwen.go``, ``kimi.go``, ``omp.go``): Qwen Code, Kimi Code CLI and Oh My Pi.

Registered in ``pyproject.toml`` under ``ollamakit.integration``, as the others are.
"""

from __future__ import annotations

import json
import os
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


# -- Desktop apps: Ollama sets them up on macOS (and Windows) only ------------------------
# On Linux, where this server runs, Ollama refuses both with these words; an empty
# ``executable`` says ollamakit has no way to set the app up where Ollama would.

CLAUDE_DESKTOP = Integration(
    name="claude-desktop",
    display_name="Claude Desktop",
    description="Use Ollama models in Claude Desktop",
    executable="",
    aliases=("claude-app",),
    install_url="https://claude.com/download",
    platforms=("darwin",),
    unsupported_message="Claude Desktop launch is only supported on macOS",
    hidden=True,
)

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
