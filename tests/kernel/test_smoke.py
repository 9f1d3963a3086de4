import ollama


def test_root_and_version(client):
    assert client.simulate_get("/").text == "Ollama is running"
    assert client.simulate_head("/api/version").status_code == 200
    # the Ollama API version clients gate features on, and ollamakit's own beside it
    assert client.simulate_get("/api/version").json == {"version": "0.33.0", "ollamakit": "0.1.0"}


def test_real_server_answers_the_official_client(server):
    assert ollama.Client(host=server.url).list().models == []
