"""The HTTP client's handling of what a server may send: errors before and inside a stream,
replies that are not JSON, uploads with their length."""

import json

import httpx
import pytest
from ollamakit_cli.client import ApiError, Client


def client_for(handler):
    return Client("http://server.test", transport=httpx.MockTransport(handler))


def ndjson(*objects):
    return "".join(json.dumps(o) + "\n" for o in objects).encode()


def test_a_stream_yields_progress_then_raises_a_mid_stream_error():
    def handler(request):
        assert json.loads(request.content)["stream"] is True
        return httpx.Response(
            200,
            content=ndjson(
                {"status": "pulling manifest"},
                {"error": "pull model manifest: file does not exist"},
            ),
        )

    seen = []
    with pytest.raises(ApiError) as info:
        for message in client_for(handler).create({"model": "m", "from": "x"}):
            seen.append(message["status"])
    assert seen == ["pulling manifest"]
    assert (
        str(info.value.message) == "pull model manifest: file does not exist"
        and info.value.status == -1
    )


def test_an_error_status_carries_the_servers_message():
    client = client_for(lambda request: httpx.Response(404, json={"error": "model 'x' not found"}))
    with pytest.raises(ApiError) as info:
        client.show("x")
    assert info.value.message == "model 'x' not found" and info.value.status == 404


def test_a_plain_text_error_is_shown_as_text():
    client = client_for(lambda request: httpx.Response(405, text="405 method not allowed"))
    with pytest.raises(ApiError, match="405 method not allowed"):
        client.delete("x")


def test_replies_that_are_not_json_are_errors_not_tracebacks():
    client = client_for(lambda request: httpx.Response(200, text="<html>proxy page</html>"))
    with pytest.raises(ApiError, match="not JSON"):
        client.tags()
    stream = client_for(lambda request: httpx.Response(200, content=b'{"status":"ok"}\nnot json\n'))
    with pytest.raises(ApiError, match="not JSON"):
        list(stream.create({"model": "m"}))


def test_tags_tolerates_a_null_list():
    assert client_for(lambda request: httpx.Response(200, json={"models": None})).tags() == []


def test_has_blob_maps_404_to_false_and_other_errors_through():
    statuses = iter([200, 404, 400])
    client = client_for(
        lambda request: httpx.Response(next(statuses), json={"error": "invalid digest format"})
    )
    assert client.has_blob("sha256:" + "0" * 64) is True
    assert client.has_blob("sha256:" + "0" * 64) is False
    with pytest.raises(ApiError, match="invalid digest format"):
        client.has_blob("sha256:bad")


def test_upload_sends_the_length_and_reports_progress(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"x" * (3 * 1024 * 1024 + 5))
    received = {}

    def handler(request):
        received["length"] = request.headers["content-length"]
        received["body"] = request.read()
        return httpx.Response(201)

    progress = []
    client_for(handler).upload_blob(
        "sha256:" + "1" * 64, path, path.stat().st_size, progress.append
    )
    assert received["length"] == str(path.stat().st_size) and received["body"] == path.read_bytes()
    assert (
        progress[-1] == path.stat().st_size and progress == sorted(progress) and len(progress) == 4
    )
