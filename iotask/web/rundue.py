"""The run-due URL: what `iotask run-due` does, for a crontab `curl` line, behind a token.

Docebo's cron.iotasks.php ran every due task for anyone who asked; this URL needs the run
token (IOTASK_RUN_TOKEN or run_token), sent as a bearer token or ``?token=``, compared in
constant time and never logged. It answers the CLI's report (Docebo's XML, or JSON on
``Accept: application/json``) with the CLI's exit status as HTTP: 200 all ok, 500 a task
failed or was held. The claims keep each task to one run however many calls arrive at once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

from flask import Blueprint, Response, request

from iotask import report
from iotask.errors import IotaskError
from iotask.runner import Runner
from iotask.web.state import console

log = logging.getLogger("iotask.web.rundue")

bp = Blueprint("rundue", __name__)

MIN_TOKEN = 16  # characters: a token short enough to guess is refused at start
TEXT = {"Content-Type": "text/plain; charset=utf-8"}


def _digest(token: str) -> bytes:
    """Tokens are compared as digests of one length, so not even the length leaks."""
    return hashlib.sha256(token.encode()).digest()


def _given_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.args.get("token") or None


def check_token(token: str | None) -> None:
    """Refuse, when the server starts, a run token short enough to guess."""
    if token is not None and len(token) < MIN_TOKEN:
        raise IotaskError(f"the run token (IOTASK_RUN_TOKEN or run_token) has {len(token)} "
                          f"characters: use at least {MIN_TOKEN}, e.g. from "
                          "`openssl rand -hex 24`")


@bp.route("/run-due", methods=["GET", "POST"])
def run_due() -> Any:
    state = console()
    config = state.config
    if config.run_token is None:
        return ("the run-due URL is off: set IOTASK_RUN_TOKEN (or run_token in the [iotask] "
                "section of the INI file) and restart `iotask serve` to enable it\n", 404, TEXT)
    if request.method == "GET" and not config.run_url_allow_get:
        return ("use POST (curl -X POST); GET is answered only with run_url_allow_get = yes "
                "(IOTASK_RUN_URL_ALLOW_GET) in the configuration\n", 405,
                {**TEXT, "Allow": "POST"})
    given = _given_token()
    if given is None or not hmac.compare_digest(_digest(given), _digest(config.run_token)):
        log.warning("run-due URL refused from %s: %s token", request.remote_addr,
                    "no" if given is None else "a wrong")
        return ("the run-due URL needs the run token: `Authorization: Bearer TOKEN` or "
                "?token=TOKEN\n", 401, {**TEXT, "WWW-Authenticate": 'Bearer realm="iotask"'})
    results = Runner(state.engine, config, "url").run_due()
    status = 200 if all(result.ok for result in results) else 500
    wanted = request.accept_mimetypes.best_match(["application/xml", "application/json"],
                                                 default="application/xml")
    if wanted == "application/json":
        return Response(report.to_json(results, config.timezone) + "\n", status,
                        mimetype="application/json")
    return Response(report.to_xml(results, config.timezone) + "\n", status,
                    content_type="application/xml; charset=utf-8")
