"""Settings, read from Ollama's environment variables where they apply; CLI flags override them."""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_PORT = 11434
# A ceiling on the tokens one request generates, whatever its ``num_predict``: without one,
# num_predict 2**63 (or -1 with a huge context) holds a slot without end. 32768 leaves room for
# the longest answers models give (reasoning models think for tens of thousands of tokens).
DEFAULT_MAX_PREDICT = 32768
# The largest request body other than a blob upload: room for a chat with several large images
# (base64) or a long embed batch, small enough that decoding it cannot exhaust memory.
DEFAULT_MAX_REQUEST_BODY = 64 << 20


_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_bool(value: str | None, default: bool = False) -> bool:
    """Ollama's rule (Go's ``strconv.ParseBool``, an error counting as true): empty is
    ``default``; ``0``, ``f``, ``F``, ``FALSE``, ``false``, ``False`` are false; anything else,
    ``no`` and ``off`` included, is true."""
    if value is None:
        return default
    value = value.strip().strip("'\"")
    if value == "":
        return default
    return value not in _GO_FALSE


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(value) -> float:
    """A keep-alive value in seconds: a JSON number of seconds or a Go duration string.

    Negative means forever (returned as ``float('inf')``). Raises ValueError on anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"Unsupported type: '{type(value).__name__}'")
    if isinstance(value, (int, float)):
        return float("inf") if value < 0 else float(value)
    if not isinstance(value, str):
        raise ValueError(f"Unsupported type: '{type(value).__name__}'")
    text = value.strip()
    sign = 1.0
    if text[:1] in "+-" and text:
        sign, text = (-1.0 if text[0] == "-" else 1.0), text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise ValueError(f'time: invalid duration "{value}"')
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f'time: invalid duration "{value}"')
    total *= sign
    return float("inf") if total < 0 else total


def parse_host(value: str | None) -> tuple[str, int]:
    """``OLLAMA_HOST`` forms: host, host:port, scheme://host[:port][/path].

    Without a port, http means 80, https 443, and no scheme the default 11434. Port 0 stays 0:
    as with Ollama, the server then listens on a free port that the system picks, and says which.
    """
    # spaces, then quotes, then the spaces that were inside the quotes (as Ollama trims it)
    value = (value or "").strip().strip("'\"").strip()
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "", value
    hostport = rest.split("/", 1)[0]
    try:  # an IPv6 address without brackets or a port (``::1``)
        hostport = f"[{ipaddress.IPv6Address(hostport)}]"
    except ValueError:
        pass
    parts = urlsplit("//" + hostport)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "127.0.0.1"
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme, DEFAULT_PORT)
    return host, port


def default_models_dir() -> Path:
    """Ollama's own default, so an Ollama user's models are there without configuration."""
    return Path.home() / ".ollama" / "models"


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value.strip().strip("'\"") if value is not None else None


def _env_int(name: str, default: int) -> int:
    value = _env(name)
    try:
        return int(value) if value else default
    except ValueError:
        return default


GIB = 1 << 30
# Ollama's default context lengths by GPU memory (server/routes.go Serve): its thresholds sit a
# little under 48 and 24 GiB, so that cards sold as such reach them.
CONTEXT_TIERS = ((47 * GIB, 262_144), (23 * GIB, 32_768))
DEFAULT_CONTEXT_LENGTH = 4096


def default_context_length(accelerator_memory: int, gpu_overhead: int = 0) -> int:
    """The context a request gets when neither it, its model nor ``OLLAMA_CONTEXT_LENGTH`` sets
    one, as Ollama chooses it: 256k tokens with at least 47 GiB of GPU memory (less
    ``OLLAMA_GPU_OVERHEAD``), 32k with at least 23 GiB, else (the CPU included) 4096."""
    usable = max(0, accelerator_memory - gpu_overhead)
    return next(
        (tokens for least, tokens in CONTEXT_TIERS if usable >= least), DEFAULT_CONTEXT_LENGTH
    )


def _env_uint(name: str, default: int) -> int:
    """Go's ``strconv.ParseUint``: digits only; anything else means the default."""
    value = _env(name)
    return int(value) if value and value.isascii() and value.isdigit() else default


def _env_duration(name: str, default: float) -> float:
    """Ollama's duration variables: a Go duration (``90s``, ``1h30m``), else whole seconds."""
    value = _env(name)
    if not value:
        return default
    try:
        return parse_duration(value) if not value.lstrip("+-").isdigit() else float(int(value))
    except ValueError:
        return default


def env_keep_alive(value: str | None, default: float = 300.0) -> float:
    """``OLLAMA_KEEP_ALIVE`` as Ollama reads it: a Go duration, else whole seconds (a sign
    allowed), else the default; negative means forever (``inf``)."""
    if not value:
        return default
    try:
        return parse_duration(value)
    except ValueError:
        pass
    if re.fullmatch(r"[+-]?\d+", value):
        return parse_duration(int(value))
    return default


def log_level(value: str | None) -> int:
    """``OLLAMA_DEBUG`` as Ollama reads it: a true word or 1 is debug, 2 is trace (every
    record), -1 warnings, -2 errors; anything else the default, info."""
    value = (value or "").strip().strip("'\"")
    if value in _GO_TRUE:
        return logging.DEBUG
    if re.fullmatch(r"[+-]?\d+", value) and int(value) != 0:
        return min(max(logging.INFO - 10 * int(value), 1), logging.CRITICAL)
    return logging.INFO


SERVER_CONFIG_LIMIT = 1 << 16


def cloud_disabled_in_file(path: Path | None = None) -> bool:
    """``disable_ollama_cloud`` in Ollama's ``~/.ollama/server.json`` (what its app writes);
    a missing, oversized or unreadable file says nothing."""
    path = path or Path.home() / ".ollama" / "server.json"
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(SERVER_CONFIG_LIMIT + 1)[:SERVER_CONFIG_LIMIT])
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("disable_ollama_cloud") is True


def _env_float(name: str, default: float) -> float:
    value = _env(name)
    try:
        return float(value) if value else default
    except ValueError:
        return default


KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")


def kv_cache_type(requested: str | None, flash_attention: str | None) -> str:
    """The key/value cache type under Ollama's rules: ``f16`` unless ``OLLAMA_KV_CACHE_TYPE``
    names a type it knows; a quantized cache needs flash attention, so an explicit
    ``OLLAMA_FLASH_ATTENTION=false`` keeps ``f16`` (the engine itself always attends with it)."""
    kind = (requested or "").strip().lower()
    if kind not in KV_CACHE_TYPES:
        return "f16"
    if kind != "f16" and flash_attention and not parse_bool(flash_attention):
        return "f16"
    return kind


API_KEY_FILE_LIMIT = 1 << 16
# The probes OLLAMAKIT_OPEN_PROBES may open to callers without an API key, and their paths.
PROBE_PATHS = {"liveness": "/", "readiness": "/health"}
PROBES = tuple(PROBE_PATHS)


def read_key_file(path: Path) -> tuple[str, ...]:
    """The keys in an API key file: one a line, blank lines and ``#`` comments skipped. Raises
    OSError or ValueError (too large, not text): a server told to use a file it cannot read must
    not start without its keys."""
    with open(path, "rb") as fh:
        data = fh.read(API_KEY_FILE_LIMIT + 1)
    if len(data) > API_KEY_FILE_LIMIT:
        raise ValueError(f"{path} is larger than {API_KEY_FILE_LIMIT} bytes")
    lines = (line.strip() for line in data.decode("utf-8").splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


def _env_list(name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in (_env(name) or "").split(",") if part.strip())


def client_api_key() -> str | None:
    """The key the client commands send: ``OLLAMA_API_KEY`` (what the ``ollama`` clients send),
    else, when ``OLLAMA_HOST`` is this machine, the first key the server in this environment
    would accept (never sent to another host: it is this server's key, not the caller's)."""
    key = _env("OLLAMA_API_KEY")
    if key:
        return key
    host, _ = parse_host(_env("OLLAMA_HOST"))
    if not _is_this_machine(host):
        return None
    keys = _env_list("OLLAMAKIT_API_KEYS")
    key_file = _env("OLLAMAKIT_API_KEYS_FILE")
    if not keys and key_file:
        try:
            keys = read_key_file(Path(key_file).expanduser())
        except (OSError, ValueError):
            keys = ()
    return keys[0] if keys else None


def _is_this_machine(host: str) -> bool:
    """Loopback, or a listen-everywhere address (which the commands reach on loopback)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host.lower() == "localhost"
    return address.is_loopback or address.is_unspecified


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    models_dir: Path = field(default_factory=default_models_dir)
    keep_alive: float = 300.0
    origins: tuple[str, ...] = ()
    num_parallel: int = 0  # 0: chosen per model from memory (the scheduler's)
    max_loaded_models: int = 3
    max_queue: int = 512
    context_length: int = (
        0  # OLLAMA_CONTEXT_LENGTH; 0: by accelerator memory (default_context_length)
    )
    gpu_overhead: int = 0  # OLLAMA_GPU_OVERHEAD: bytes of GPU memory not counted for that choice
    max_predict: int = DEFAULT_MAX_PREDICT  # the most tokens one request may generate
    max_request_body: int = DEFAULT_MAX_REQUEST_BODY  # bytes; blob uploads are not bounded by it
    load_timeout: float = 300.0  # seconds; math.inf: no limit
    memory_fraction: float = 0.8  # share of RAM loaded models may fill before LRU eviction
    noprune: bool = False
    debug: bool = False
    log_level: int = logging.INFO  # OLLAMA_DEBUG as a logging level (see log_level())
    storage: str = "fs"
    compute: str = "auto"
    transport: str = "http"
    kv_cache_type: str = "f16"  # OLLAMA_KV_CACHE_TYPE as it applies (see kv_cache_type())
    fast_prefill: bool = (
        False  # OLLAMAKIT_FAST_PREFILL: long prompts in float32 where faster, not llama.cpp's bits
    )
    no_cloud: bool = False  # OLLAMA_NO_CLOUD, or disable_ollama_cloud in ~/.ollama/server.json
    no_cloud_source: str = (
        "none"  # which said so: "env", "config", "both" or "none" (GET /api/status)
    )
    remotes: tuple[str, ...] = ("ollama.com",)  # OLLAMA_REMOTES: hosts remote models may name
    go_template: bool = True  # OLLAMA_GO_TEMPLATE: false prompts through the GGUF's Jinja template
    debug_log_requests: bool = (
        False  # OLLAMA_DEBUG_LOG_REQUESTS: inference bodies to a temporary folder
    )
    api_keys: tuple[
        str, ...
    ] = ()  # OLLAMAKIT_API_KEYS: with any key (here or in the file) every route needs one
    api_keys_file: Path | None = None  # OLLAMAKIT_API_KEYS_FILE: more keys, one a line
    open_probes: tuple[
        str, ...
    ] = ()  # OLLAMAKIT_OPEN_PROBES: "liveness", "readiness" answered without a key
    preload: tuple[
        str, ...
    ] = ()  # OLLAMAKIT_PRELOAD: models loaded at start; /health is 503 until they are
    metrics: bool = True  # OLLAMAKIT_METRICS: GET /metrics for Prometheus (0/false: no route)

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        host, port = parse_host(_env("OLLAMA_HOST"))
        models = _env("OLLAMA_MODELS")
        keep_alive = env_keep_alive(_env("OLLAMA_KEEP_ALIVE"))
        origins = tuple(o.strip() for o in (_env("OLLAMA_ORIGINS") or "").split(",") if o.strip())
        load_timeout = _env_duration("OLLAMA_LOAD_TIMEOUT", 300.0)
        remotes = _env("OLLAMA_REMOTES")
        key_file = _env("OLLAMAKIT_API_KEYS_FILE")
        level = log_level(_env("OLLAMA_DEBUG"))
        no_cloud_env, no_cloud_config = (
            parse_bool(_env("OLLAMA_NO_CLOUD")),
            cloud_disabled_in_file(),
        )
        settings = cls(
            host=host,
            port=port,
            models_dir=Path(models).expanduser() if models else default_models_dir(),
            keep_alive=keep_alive,
            origins=origins,
            num_parallel=_env_uint("OLLAMA_NUM_PARALLEL", 0),
            max_loaded_models=_env_uint("OLLAMA_MAX_LOADED_MODELS", 0) or 3,
            max_queue=_env_uint("OLLAMA_MAX_QUEUE", 512),
            context_length=_env_uint("OLLAMA_CONTEXT_LENGTH", 0),
            gpu_overhead=_env_uint("OLLAMA_GPU_OVERHEAD", 0),
            load_timeout=load_timeout if load_timeout > 0 else math.inf,
            max_predict=max(0, _env_int("OLLAMAKIT_MAX_PREDICT", 0)) or DEFAULT_MAX_PREDICT,
            max_request_body=max(0, _env_int("OLLAMAKIT_MAX_REQUEST_BODY", 0))
            or DEFAULT_MAX_REQUEST_BODY,
            memory_fraction=_env_float("OLLAMAKIT_MEMORY_FRACTION", 0.8),
            noprune=parse_bool(_env("OLLAMA_NOPRUNE")),
            debug=level <= logging.DEBUG,
            log_level=level,
            storage=_env("OLLAMAKIT_STORAGE") or "fs",
            compute=_env("OLLAMAKIT_COMPUTE") or "auto",
            transport=_env("OLLAMAKIT_TRANSPORT") or "http",
            kv_cache_type=kv_cache_type(
                _env("OLLAMA_KV_CACHE_TYPE"), _env("OLLAMA_FLASH_ATTENTION")
            ),
            fast_prefill=parse_bool(_env("OLLAMAKIT_FAST_PREFILL")),
            no_cloud=no_cloud_env or no_cloud_config,
            no_cloud_source={
                (True, True): "both",
                (True, False): "env",
                (False, True): "config",
            }.get((no_cloud_env, no_cloud_config), "none"),
            remotes=tuple(remotes.split(",")) if remotes else ("ollama.com",),
            debug_log_requests=parse_bool(_env("OLLAMA_DEBUG_LOG_REQUESTS")),
            go_template=parse_bool(_env("OLLAMA_GO_TEMPLATE"), default=True),
            api_keys=_env_list("OLLAMAKIT_API_KEYS"),
            api_keys_file=Path(key_file).expanduser() if key_file else None,
            open_probes=tuple(
                p.lower() for p in _env_list("OLLAMAKIT_OPEN_PROBES") if p.lower() in PROBES
            ),
            preload=_env_list("OLLAMAKIT_PRELOAD"),
            metrics=parse_bool(_env("OLLAMAKIT_METRICS"), default=True),
        )
        known = {f.name for f in fields(cls)}
        return replace(
            settings, **{k: v for k, v in overrides.items() if k in known and v is not None}
        )
