"""The web side: the run-due URL for cron's `curl` lines and the Background Task Console, one
Flask app.

``iotask serve`` runs it under waitress; ``iotask.web:app`` is the WSGI entry point for
gunicorn or mod_wsgi, configured as every command is (IOTASK_DATABASE_URL, the INI file...).
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from flask import Flask, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from iotask import config as config_module
from iotask import db, log, users
from iotask.config import Config
from iotask.errors import IotaskError
from iotask.web import actions, auth, forms, pages, rundue
from iotask.web.state import Console

# No inline script or style anywhere: pages load /static files only, and no one may frame them.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PUBLIC = {"static", "auth.login", "rundue.run_due"}  # endpoints open without signing in
MAX_FORM = 1024 * 1024
_BASE_PATH = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")


def base_path(text: str) -> str:
    """A reverse proxy's path prefix as WSGI needs it: '' or '/a/b', no trailing slash."""
    path = "/" + text.strip().strip("/") if text.strip().strip("/") else ""
    if path and not _BASE_PATH.match(path):
        raise IotaskError(f"--base-path {text!r}: expected a path such as /iotask (letters, "
                          "digits, . _ ~ - between slashes)")
    return path


def create_app(config: Config | None = None) -> Flask:
    """The app for one iotask database (a reverse proxy's X-Forwarded-* headers are the
    server's business: waitress's trusted_proxy, gunicorn's forwarded_allow_ips)."""
    config = config or config_module.load()
    rundue.check_token(config.run_token)
    engine = db.make_engine(config.database_url)
    db.check_migrated(engine)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=users.secret_key(engine),
        SESSION_COOKIE_NAME="iotask_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        MAX_CONTENT_LENGTH=MAX_FORM,
        MAX_FORM_MEMORY_SIZE=MAX_FORM,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.session_interface = auth.SecureWhenHttps()
    app.extensions["iotask"] = Console(config, engine)
    app.extensions["iotask.throttle"] = auth.Throttle()
    for blueprint in (rundue.bp, auth.bp, pages.bp, forms.bp, actions.bp):
        app.register_blueprint(blueprint)
    app.jinja_env.globals.update(csrf_token=auth.csrf_token)
    app.jinja_env.autoescape = True
    app.before_request(_before)
    app.after_request(_headers)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(IotaskError, _user_error)
    return app


def _before() -> Any:
    if request.endpoint in ("rundue.run_due", "static"):
        return None  # the run-due URL has its own token; the style sheet is for anyone
    auth.load_user()
    if request.endpoint not in PUBLIC and g.user is None:
        if request.method != "GET":
            return _http_error_page(401, "sign in first")
        return redirect(url_for("auth.login", next=request.script_root + request.full_path))
    if request.method == "POST":
        auth.check_csrf()
    return None


def _headers(response: Any) -> Any:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


def _http_error_page(code: int, message: str) -> Any:
    if request.endpoint == "rundue.run_due":
        return message + "\n", code, {"Content-Type": "text/plain; charset=utf-8"}
    return render_template("message.html", title=f"{code}", message=message), code


def _http_error(exc: HTTPException) -> Any:
    return _http_error_page(exc.code or 500, exc.description or exc.name)


def _user_error(exc: IotaskError) -> Any:
    return _http_error_page(400, str(exc))


def route_server_logs() -> None:
    """waitress's own log lines (errors; it writes no access log) through iotask's masked
    handlers, so they go where IOTASK_LOG says and never carry a secret."""
    server = logging.getLogger("waitress")
    server.handlers = list(logging.getLogger("iotask").handlers)
    server.propagate = False


def __getattr__(name: str) -> Any:
    """``iotask.web:app``: built on first use, so importing the package costs nothing."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    config = config_module.load()
    log.setup(config, 0)
    route_server_logs()
    built = globals()["app"] = create_app(config)
    return built
