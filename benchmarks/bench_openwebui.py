"""A chat turn through Open WebUI, sent as its chat page sends it, against ``ollamakit serve``
with SmolLM2-135M: what Open WebUI asks of the server, and the turn's decode speed beside
``bench_context.py``'s figure at a 4k prompt, in the same run.

Open WebUI is heavy (torch, transformers, a hundred more), so it lives in a scratch environment of
its own, never in the project's dependencies:

    python3 -m venv /tmp/openwebui-venv
    /tmp/openwebui-venv/bin/pip install 'open-webui==0.12.4'
    .venv/bin/python benchmarks/bench_openwebui.py --webui-venv /tmp/openwebui-venv
    .venv/bin/python benchmarks/bench_openwebui.py --record tests/reference/openwebui-0.12.4

The server runs from the environment that runs this script (``.venv``, which has llama-cpp-python
for the reference figure; without it only ours is measured), with ``OLLAMA_DEBUG_LOG_REQUESTS``
on, so the bodies Open WebUI sent are the server's own record of them. SmolLM2 is created under
the name ``smollm2`` with the tools template of ``ollamakit.testing.smollm2`` (its GGUF's plain
ChatML offers no tools, and Open WebUI sends some).

Open WebUI runs headless (``open-webui serve``, a fresh data folder, offline: no model downloads,
no update check) with this server as its only Ollama connection. The chat page is then followed
through Open WebUI's HTTP API, in the page's order and with its defaults: the first account signs
up (and so is the admin); a socket.io session joins as the page's does (Open WebUI adds its
built-in tools only to requests that carry the page's ``session_id``); ``GET /api/models``; the
chat is created (``POST /api/v1/chats/new``) with the user's message in its history; then
``POST /api/chat/completions`` with the body ``Chat.svelte`` builds: ``stream``, ``params`` (the
page's defaults: none set), ``tool_ids``, ``tool_servers``, ``features``, ``variables``,
``model_item``, ``session_id``, ``chat_id``, the message ids and ``background_tasks`` (title,
tags, follow-ups). The answer arrives as socket events and in the saved chat.

It prints every request the server received (route, the prompt's size in characters and in the
tools, options, stream), the main turn's ``prompt_eval_count`` and decode rate (``eval_count`` /
``eval_duration``, as Open WebUI reports them in the message's usage), and ``bench_context.py``'s
decode rate after a 4,096-token prompt (``--bench-length``) for both engines, in fresh processes,
before and after the turn. ``--record DIR`` copies the bodies, byte for byte as the server logged
them (the turn, then the follow-ups, title and tags tasks), for
``tests/plugins/ollama_api/test_openwebui_replay.py`` (``tests/reference/openwebui-0.12.4``; its
README says where they came from).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = "smollm2"
QUESTION = "What is the capital of France? Answer in one sentence."


# -- the driver: runs in Open WebUI's environment (socketio, requests), not ours -------------------


def drive(webui: str) -> dict:
    """Sign up, join a socket session, create a chat and send one turn as the chat page does;
    returns what came back."""
    import requests
    import socketio

    session = requests.Session()
    reply = session.post(
        f"{webui}/api/v1/auths/signup",
        json={"name": "Admin", "email": "admin@example.com", "password": "a-long-password-1"},
    )
    reply.raise_for_status()
    user = reply.json()
    token = user["token"]
    session.headers["Authorization"] = f"Bearer {token}"

    events: list[dict] = []
    done = {"at": None, "tags": None}
    sio = socketio.Client()

    @sio.on("events")
    def on_event(payload):
        events.append(payload)
        data = payload.get("data", {})
        if data.get("type") == "chat:completion" and data.get("data", {}).get("done"):
            done["at"] = time.time()
        if data.get("type") == "chat:tags":  # the last of the background tasks
            done["tags"] = time.time()

    # as src/routes/+layout.svelte: websocket transport, the token as auth, then user-join
    sio.connect(
        webui, socketio_path="/ws/socket.io", auth={"token": token}, transports=["websocket"]
    )
    sio.emit("user-join", {"auth": {"token": token}})

    config = session.get(f"{webui}/api/config").json()
    models = session.get(f"{webui}/api/models").json()["data"]
    model_item = next(m for m in models if m["id"].split(":")[0] == MODEL)
    model_id = model_item["id"]

    now = int(time.time())
    user_id, response_id = str(uuid.uuid4()), str(uuid.uuid4())
    user_message = {
        "id": user_id,
        "parentId": None,
        "childrenIds": [response_id],
        "role": "user",
        "content": QUESTION,
        "timestamp": now,
        "models": [model_id],
    }
    response_message = {
        "id": response_id,
        "parentId": user_id,
        "childrenIds": [],
        "role": "assistant",
        "content": "",
        "model": model_id,
        "modelName": model_item.get("name", model_id),
        "modelIdx": 0,
        "timestamp": now,
    }
    history = {
        "messages": {user_id: user_message, response_id: response_message},
        "currentId": response_id,
    }
    created = session.post(
        f"{webui}/api/v1/chats/new",
        json={
            "chat": {
                "id": "",
                "title": "New Chat",
                "models": [model_id],
                "params": {},
                "history": history,
                "messages": [user_message, response_message],
                "tags": [],
                "timestamp": now * 1000,
            },
            "folder_id": None,
        },
    )
    created.raise_for_status()
    chat_id = created.json()["id"]

    features = config.get("features", {})
    body = {
        "stream": True,
        "model": model_id,
        "params": {"model_controls": {}},
        "tool_ids": [],
        "tool_servers": [],
        "features": {
            "voice": False,
            "image_generation": False,
            "code_interpreter": False,
            "web_search": False,
            **({"memory": True} if features.get("enable_memories") else {}),
        },
        "variables": {
            "{{USER_NAME}}": user["name"],
            "{{USER_EMAIL}}": user["email"],
            "{{USER_LOCATION}}": "Unknown",
            "{{CURRENT_DATETIME}}": time.strftime("%Y-%m-%d %H:%M:%S"),
            "{{CURRENT_DATE}}": time.strftime("%Y-%m-%d"),
            "{{CURRENT_TIME}}": time.strftime("%H:%M:%S"),
            "{{CURRENT_WEEKDAY}}": time.strftime("%A"),
            "{{CURRENT_TIMEZONE}}": "UTC",
            "{{USER_LANGUAGE}}": "en-US",
        },
        "model_item": model_item,
        "session_id": sio.get_sid(),
        "chat_id": chat_id,
        "id": response_id,
        "parent_id": None,
        "user_message": user_message,
        "background_tasks": {
            "title_generation": True,
            "tags_generation": True,
            "follow_up_generation": True,
        },
    }
    sent = time.time()
    started = session.post(f"{webui}/api/chat/completions", json=body)
    started.raise_for_status()
    while done["at"] is None and time.time() - sent < 900:
        time.sleep(0.2)
    # the background tasks (follow-ups, title, tags) follow the answer, one request each
    while done["at"] is not None and done["tags"] is None and time.time() - done["at"] < 300:
        time.sleep(0.5)
    saved = session.get(f"{webui}/api/v1/chats/{chat_id}").json()
    sio.disconnect()
    answer = saved["chat"]["history"]["messages"][response_id]
    return {
        "started": started.json(),
        "seconds": (done["at"] or time.time()) - sent,
        "finished": done["at"] is not None,
        "tasks_finished": done["tags"] is not None,
        "content": answer.get("content", ""),
        "usage": answer.get("usage") or {},
        "event_types": sorted({e.get("data", {}).get("type", "") for e in events}),
        "chat_id": chat_id,
    }


# -- the orchestrator: runs in the project's environment ------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, seconds: float) -> None:
    import httpx

    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode} before it answered")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise RuntimeError(f"{url} did not answer in {seconds:.0f} s")


def bench_4k(length: int, engines: list[str], threads: int) -> dict[str, float]:
    """``bench_context.py``'s decode rate after a ``length``-token prompt, each engine once in
    a fresh process."""
    if not length:
        return {engine: float("nan") for engine in engines}
    sys.path.insert(0, str(HERE))
    import bench_context

    args = argparse.Namespace(threads=threads)
    path = bench_context.models()["smollm2"]()
    return {
        engine: bench_context.run("plain", engine, path, length, args, "f16")["decode"]
        for engine in engines
    }


def rendered_tokens(path: Path) -> int:
    """Tokens of the whole prompt the body makes with the model's template, before it is cut
    to fit ``num_ctx``."""
    from ollamakit.lib.gguf import GGUFFile
    from ollamakit.lib.templates import execute, parse_template
    from ollamakit.lib.tokenizers import load_tokenizer
    from ollamakit.testing import models
    from ollamakit.testing.smollm2 import TOOLS_TEMPLATE

    body = json.loads(path.read_bytes())
    text = execute(parse_template(TOOLS_TEMPLATE), body["messages"], tools=body.get("tools"))
    with GGUFFile.open(models.smollm2_q4_1()) as gguf:
        return len(load_tokenizer(dict(gguf.metadata)).encode(text))


def prompt_size(body: dict) -> dict:
    messages = body.get("messages") or []
    tools = body.get("tools") or []
    return {
        "messages": len(messages),
        "message_chars": sum(len(str(m.get("content") or "")) for m in messages),
        "tools": [t.get("function", {}).get("name") for t in tools],
        "tool_chars": len(json.dumps(tools)),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webui-venv", default="/tmp/openwebui-venv")
    parser.add_argument("--bench-length", type=int, default=4096, help="0: no reference figure")
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="both engines' threads, the server's (num_thread) too",
    )
    parser.add_argument("--record", help="copy the bodies to this folder")
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.drive:
        print(json.dumps(drive(args.drive)))
        return 0

    import importlib.util

    from ollamakit.testing.fixtures import ServerProcess
    from ollamakit.testing.smollm2 import create_smollm2

    venv = Path(args.webui_venv)
    webui_bin, webui_python = venv / "bin" / "open-webui", venv / "bin" / "python"
    if not webui_bin.exists():
        print(f"no Open WebUI in {venv}: install it there first (see this script's docstring)")
        return 2
    version = subprocess.run(
        [str(webui_python), "-c", "import importlib.metadata as m; print(m.version('open-webui'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    engines = ["ours", "llama.cpp"] if importlib.util.find_spec("llama_cpp") else ["ours"]
    scratch = Path(tempfile.mkdtemp(prefix="bench-openwebui-"))
    logs = scratch / "request-logs"
    logs.mkdir()
    print(f"Open WebUI {version}; scratch {scratch}; load average {os.getloadavg()}", flush=True)
    before = bench_4k(args.bench_length, engines, args.threads)
    print(f"bench_context decode after {args.bench_length} tokens (before): {before}", flush=True)

    (scratch / "models").mkdir()
    server = ServerProcess(
        scratch / "models",
        env={"OLLAMA_DEBUG_LOG_REQUESTS": "1", "TMPDIR": str(logs)},
    ).start()
    webui = None
    try:
        create_smollm2(server.url, [MODEL], parameters={"num_thread": args.threads})
        port = free_port()
        env = {
            **os.environ,
            "DATA_DIR": str(scratch / "webui-data"),
            "OLLAMA_BASE_URL": server.url,
            "ENABLE_OPENAI_API": "False",
            "OFFLINE_MODE": "True",
            "HF_HUB_OFFLINE": "1",
            "WEBUI_SECRET_KEY": uuid.uuid4().hex,
            "ENABLE_VERSION_UPDATE_CHECK": "False",
            "PYTHONUNBUFFERED": "1",
        }
        webui_log = open(scratch / "webui.log", "wb")
        started = time.time()
        webui = subprocess.Popen(
            [str(webui_bin), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=webui_log,
            stderr=subprocess.STDOUT,
            cwd=scratch,
        )
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/health", webui, 900)
        print(f"Open WebUI answered after {time.time() - started:.0f} s", flush=True)
        drove = subprocess.run(
            [str(webui_python), __file__, "--drive", url],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if drove.returncode:
            print(drove.stderr[-4000:])
            raise RuntimeError("the driver failed")
        turn = json.loads(drove.stdout.strip().splitlines()[-1])
    finally:
        if webui is not None:
            webui.terminate()
            try:
                webui.wait(30)
            except subprocess.TimeoutExpired:
                webui.kill()
        server.stop()
    after = bench_4k(args.bench_length, engines, args.threads)

    from ollamakit.web.request_log import LOGGED_ROUTES

    routes = {route.lstrip("/").replace("/", "_"): route for route in LOGGED_ROUTES}
    bodies = sorted(logs.glob("ollama-request-logs-*/*_body.json"))
    print(f"\nthe server received {len(bodies)} inference request(s):")
    if not turn.get("tasks_finished"):
        print("  (the background tasks had not all finished 300 s after the answer)")
    main_body = None
    for path in bodies:
        body = json.loads(path.read_bytes())
        route = routes[path.name.split("_", 1)[1].rsplit("_body", 1)[0]]
        size = prompt_size(body)
        print(
            f"  {route}: stream {body.get('stream')}, {size['messages']} message(s) of "
            f"{size['message_chars']} chars, {len(size['tools'])} tool(s) of {size['tool_chars']} "
            f"chars {size['tools']}, options {body.get('options')}, other keys "
            f"{sorted(set(body) - {'model', 'messages', 'tools', 'options', 'stream'})}"
        )
        if main_body is None and route == "/api/chat":
            main_body = path  # the turn itself: the background tasks come after it
    if main_body is not None:
        print(
            f"the turn's prompt as SmolLM2's template renders it: {rendered_tokens(main_body)} tokens"
        )
    usage = turn["usage"]
    print(
        f"\nthe answer ({turn['seconds']:.1f} s, finished {turn['finished']}): {turn['content']!r}"
    )
    print(f"socket event types: {turn['event_types']}")
    rate = usage.get("eval_count", 0) / (usage.get("eval_duration", 0) / 1e9 or float("nan"))
    print(
        f"prompt_eval_count {usage.get('prompt_eval_count')}, eval_count {usage.get('eval_count')}, "
        f"decode {rate:.1f} tok/s"
    )
    for engine in engines if args.bench_length else []:
        reference = max(before[engine], after[engine])
        print(
            f"  against bench_context {engine} after {args.bench_length} tokens: "
            f"{before[engine]:.1f} before, {after[engine]:.1f} after: {rate / reference:.2f}x the best"
        )
    print(f"load average at the end {os.getloadavg()}")
    if args.record:  # the bytes as the server logged them, in the order they came
        names = ["1-chat", "2-follow-ups", "3-title", "4-tags"]
        if len(bodies) != len(names):
            print(f"not recorded: {len(bodies)} requests where a first turn makes {len(names)}")
        else:
            Path(args.record).mkdir(parents=True, exist_ok=True)
            for path, name in zip(bodies, names):
                shutil.copyfile(path, Path(args.record) / f"{name}.json")
            print(f"recorded {args.record} (Open WebUI {version})")
    shutil.rmtree(scratch / "models", ignore_errors=True)
    return 0 if turn["finished"] and turn["content"] else 1


if __name__ == "__main__":
    sys.exit(main())
