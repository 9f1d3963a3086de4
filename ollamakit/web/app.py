"""``create_app``: a Falcon app with Ollama's error conventions; plugins add every route."""

from __future__ import annotations

import falcon

from ..errors import OllamaError
from .body import BodyLimit
from .request_log import RequestLogMiddleware
from .auth import ApiKeyMiddleware, ApiKeys
from .observe import RequestObserver
from .routes import PluginApp, register_routes
from .security import PreflightMiddleware, SecurityMiddleware
from .streaming import error_body, json_response


def _ollama_error(req, resp, exc, params):
    status, body = error_body(exc)
    json_response(resp, body, status)


def _unexpected_error(req, resp, exc, params):
    if isinstance(exc, falcon.HTTPError):
        raise exc
    status, body = error_body(exc)
    json_response(resp, body, status)


def _not_found(req, resp, exc, params):
    resp.status = 404
    resp.content_type = "text/plain"
    resp.data = b"404 page not found"


def _method_not_allowed(req, resp, exc, params):
    resp.status = 405
    resp.content_type = "text/plain"
    resp.data = b"405 method not allowed"


def create_app(kernel) -> PluginApp:
    # Order matters: the observer (so it sees every answer, refusals included), the host and
    # origin guard, then the API key (so a 401 carries CORS headers a browser can read), then
    # OPTIONS answers (so they need a key too), then the body limit.
    middleware: list = []
    if kernel.hook.on_request_done.get_hookimpls():
        middleware.append(RequestObserver(kernel))
    middleware.append(SecurityMiddleware(kernel.settings))
    api_keys = ApiKeys(kernel.settings)
    if api_keys.enabled:
        middleware.append(ApiKeyMiddleware(api_keys))
    middleware += [PreflightMiddleware(), BodyLimit(kernel.settings)]
    if kernel.settings.debug_log_requests:
        middleware.append(RequestLogMiddleware())
    app = PluginApp(middleware=middleware, cors_enable=False)
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_form_urlencoded = False
    app.resp_options.default_media_type = "application/json"
    app.add_error_handler(Exception, _unexpected_error)
    app.add_error_handler(falcon.HTTPRouteNotFound, _not_found)
    app.add_error_handler(falcon.HTTPMethodNotAllowed, _method_not_allowed)
    app.add_error_handler(OllamaError, _ollama_error)
    register_routes(app, kernel)  # a path two plugins add is a RouteCollision
    return app
