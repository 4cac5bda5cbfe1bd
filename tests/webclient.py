"""Signing in to the console over real HTTP, and reading its pages, for the web tests."""

from __future__ import annotations

import io
import re
import sys

import requests
from conftest import Result

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def with_stdin(text: str, iotask, *args: str, ok: bool = True) -> Result:
    """`iotask ARGS` reading ``text`` from stdin (not a terminal), as a script gives it."""
    saved = sys.stdin
    sys.stdin = io.StringIO(text)
    try:
        return iotask(*args, ok=ok)
    finally:
        sys.stdin = saved


def add_user(iotask, name: str, role: str, password: str, ok: bool = True) -> Result:
    """`iotask user add NAME --role ROLE` with the password on stdin."""
    return with_stdin(password + "\n", iotask, "user", "add", name, "--role", role, ok=ok)


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found, "no CSRF token in the page"
    return found.group(1)


def sign_in(url: str, name: str, password: str) -> requests.Session:
    client = requests.Session()
    token = csrf_of(client.get(url + "/login").text)
    answer = client.post(url + "/login", data={"name": name, "password": password,
                                               "csrf_token": token})
    assert answer.status_code == 200 and f"{name} (" in answer.text, answer.text[:500]
    return client


def post_action(client: requests.Session, url: str, task: str, action: str,
                **extra: str) -> requests.Response:
    page = client.get(url + "/tasks").text
    data = {"name": task, "action": action, "csrf_token": csrf_of(page), **extra}
    return client.post(url + "/task/action", data=data, allow_redirects=False)
