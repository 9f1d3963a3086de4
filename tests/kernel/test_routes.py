"""A path belongs to one plugin: a second plugin adding it is an error at start-up that names
both, unless it says it overrides the first (a third party replacing a built-in route)."""

import pytest
from click.testing import CliRunner
from falcon.testing import TestClient

from ollamakit.cli import build_cli
from ollamakit.hookspecs import hookimpl
from ollamakit.plugins import make_plugin_manager
from ollamakit.web import RouteCollision, create_app


class Answer:
    def __init__(self, text):
        self.text = text

    def on_get(self, req, resp):
        resp.media = {"from": self.text}


class RoutePlugin:
    def __init__(self, path, text, override=False):
        self.path, self.text, self.override = path, text, override

    @hookimpl
    def register_routes(self, app):
        app.add_route(self.path, Answer(self.text), override=self.override)


def get(kernel, path):
    return TestClient(create_app(kernel), headers={"Host": "localhost"}).simulate_get(path)


def test_a_path_two_plugins_add_is_refused_naming_both(kernel):
    kernel.pm.register(RoutePlugin("/acme/usage", "one"), name="acme-one")
    kernel.pm.register(RoutePlugin("/acme/usage", "two"), name="acme-two")
    with pytest.raises(RouteCollision) as caught:
        create_app(kernel)
    message = str(caught.value)
    assert '"acme-two"' in message and '"acme-one"' in message and "/acme/usage" in message
    assert "override=True" in message  # says how to mean it


def test_a_third_party_plugin_taking_a_built_in_path_is_refused(kernel):
    # /api/tags is the native API plugin's (entry point ollama_api); an unnamed plugin object is
    # named by its class
    kernel.pm.register(RoutePlugin("/api/tags", "acme"))
    with pytest.raises(
        RouteCollision, match=r'"ollama_api" and "RoutePlugin"|"RoutePlugin" and "ollama_api"'
    ):
        create_app(kernel)


def test_field_names_and_a_trailing_slash_do_not_make_another_path(kernel):
    kernel.pm.register(RoutePlugin("/acme/{name}/", "one"), name="acme-one")
    kernel.pm.register(RoutePlugin("/acme/{model}", "two"), name="acme-two")
    with pytest.raises(RouteCollision):
        create_app(kernel)


@pytest.mark.parametrize("tryfirst", [True, False])
def test_a_third_party_override_replaces_a_built_in_route(kernel, models_dir, tryfirst):
    """Whichever plugin runs first, the override wins, and the other routes stay."""

    class Tags:
        @hookimpl(tryfirst=tryfirst, trylast=not tryfirst)
        def register_routes(self, app):
            app.add_route("/api/tags", Answer("acme"), override=True)

    kernel.pm.register(Tags(), name="acme-tags")
    app = create_app(kernel)
    client = TestClient(app, headers={"Host": "localhost"})
    assert client.simulate_get("/api/tags").json == {"from": "acme"}
    assert client.simulate_get("/api/version").status_code == 200
    assert app.route_owners["/api/tags"] == ("acme-tags", True)
    assert app.route_owners["/api/version"] == ("ollama_api", False)


def test_two_overrides_of_one_path_are_refused(kernel):
    kernel.pm.register(RoutePlugin("/api/tags", "one", override=True), name="acme-one")
    kernel.pm.register(RoutePlugin("/api/tags", "two", override=True), name="acme-two")
    with pytest.raises(RouteCollision, match="both override it"):
        create_app(kernel)


def test_an_override_of_a_path_nobody_else_adds_is_just_a_route(kernel):
    kernel.pm.register(RoutePlugin("/acme/usage", "acme", override=True), name="acme-usage")
    assert get(kernel, "/acme/usage").json == {"from": "acme"}


def test_the_built_in_plugins_add_no_path_twice(kernel):
    app = create_app(kernel)  # would raise
    owners = {plugin for plugin, _ in app.route_owners.values()}
    assert {"ollama_api", "openai", "anthropic"} <= owners
    assert not any(override for _, override in app.route_owners.values())


def test_serve_says_which_plugins_collide_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path))
    pm = make_plugin_manager([RoutePlugin("/api/tags", "acme")])
    result = CliRunner().invoke(build_cli(pm), ["serve"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: plugins ") and '"RoutePlugin"' in result.output
    assert "Traceback" not in result.output
