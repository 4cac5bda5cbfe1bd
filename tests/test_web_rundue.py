"""The run-due URL of `iotask serve`: a real waitress server, real HTTP. Off without a token,
401 without the right one, the CLI's report (well-formed XML or JSON) with the CLI's outcome
as the HTTP status, runs recorded with trigger url, and never a task run twice however many
calls come at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa
from conftest import assert_user_error
from lxml import etree
from webserver import TESTS, LiveServer, start_serve, stop_serve

TOKEN = "s3cret-run-token-4711"


@pytest.fixture
def server(samples, migrated_url, monkeypatch):
    """The sample connectors, and a server whose run token is TOKEN."""
    monkeypatch.setenv("IOTASK_RUN_TOKEN", TOKEN)
    live = LiveServer(migrated_url)
    yield live
    live.close()


def runs(engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(
            "SELECT task, triggered_by, status FROM core_task_run ORDER BY id"))]


def test_without_a_token_configured_the_url_is_off_and_says_how_to_enable_it(
        samples, migrated_url, monkeypatch):
    monkeypatch.delenv("IOTASK_RUN_TOKEN", raising=False)
    samples("task", "add", "t", "--source", "src", "--destination", "ledger")
    live = LiveServer(migrated_url)
    try:
        answer = requests.post(live.url + "/run-due", headers={"Authorization": "Bearer x"})
    finally:
        live.close()
    assert answer.status_code == 404
    assert "IOTASK_RUN_TOKEN" in answer.text and "run_token" in answer.text


def test_no_token_or_a_wrong_one_is_401_and_runs_nothing(server, samples, engine):
    samples("task", "add", "t", "--source", "src", "--destination", "ledger")
    for headers, query in (({}, ""), ({"Authorization": "Bearer wrong"}, ""),
                           ({}, "?token=wrong"), ({"Authorization": f"Basic {TOKEN}"}, ""),
                           ({}, f"?token={TOKEN}x"), ({}, "?token=")):
        answer = requests.post(server.url + "/run-due" + query, headers=headers)
        assert answer.status_code == 401, (headers, query)
        assert "Bearer" in answer.headers["WWW-Authenticate"]
    assert runs(engine) == []


def test_the_right_token_runs_due_tasks_and_answers_docebos_xml(server, samples, engine):
    samples("task", "add", "good", "--source", "src", "--destination", "ledger")
    samples("connection", "add", "bad-rows", "--type", "test-source", "--set", "rows=4",
            "--set", "bad_rows=2")
    samples("task", "add", "rejecting", "--source", "bad-rows", "--destination", "ledger",
            "--max-errors", "50%")
    answer = requests.post(server.url + "/run-due", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/xml")
    root = etree.fromstring(answer.content)
    assert root.tag == "iotasks"
    tasks = {node.get("name"): node for node in root.findall("iotask")}
    assert tasks["good"].get("executed") == "TRUE" and tasks["good"].get("inserted") == "3"
    assert tasks["rejecting"].get("failed") == "1"
    assert [row.findtext("error") for row in tasks["rejecting"].findall("row")] == ["bad value"]
    assert sorted(runs(engine)) == [("good", "url", "success"), ("rejecting", "url", "partial")]

    again = requests.post(server.url + f"/run-due?token={TOKEN}",
                          headers={"Accept": "application/json"})
    assert again.status_code == 200
    assert again.headers["Content-Type"].startswith("application/json")
    body = again.json()
    assert body["ok"] is True and not any(t["executed"] for t in body["tasks"])
    assert len(runs(engine)) == 2


def test_a_failed_task_is_500_with_its_error_in_the_report(server, samples, engine):
    samples("connection", "add", "broken", "--type", "test-source", "--set", "fail=true")
    samples("task", "add", "breaks", "--source", "broken", "--destination", "ledger")
    samples("task", "add", "fine", "--source", "src", "--destination", "ledger")
    answer = requests.post(server.url + "/run-due", headers={"Authorization": f"Bearer {TOKEN}",
                                                             "Accept": "application/json"})
    assert answer.status_code == 500
    by_name = {t["task"]: t for t in answer.json()["tasks"]}
    assert by_name["breaks"]["status"] == "failed"
    assert "source broke at row" in by_name["breaks"]["error"]
    assert by_name["fine"]["status"] == "success"
    assert answer.json()["ok"] is False


def test_get_is_answered_only_when_allowed(samples, migrated_url, monkeypatch, engine):
    samples("task", "add", "t", "--source", "src", "--destination", "ledger")
    monkeypatch.setenv("IOTASK_RUN_TOKEN", TOKEN)
    live = LiveServer(migrated_url)
    try:
        refused = requests.get(live.url + f"/run-due?token={TOKEN}")
    finally:
        live.close()
    assert refused.status_code == 405 and "run_url_allow_get" in refused.text
    assert runs(engine) == []
    monkeypatch.setenv("IOTASK_RUN_URL_ALLOW_GET", "yes")
    live = LiveServer(migrated_url)
    try:
        allowed = requests.get(live.url + f"/run-due?token={TOKEN}")
    finally:
        live.close()
    assert allowed.status_code == 200
    assert runs(engine) == [("t", "url", "success")]


def test_twenty_concurrent_calls_run_every_due_task_exactly_once(server, samples, engine):
    """What the claims guarantee the CLI, the URL keeps: five due tasks, each a little slow,
    twenty calls at once: five runs in core_task_run, one per task."""
    samples("connection", "add", "slow", "--type", "test-source", "--set", "rows=5",
            "--set", "delay_ms=20")
    names = [f"task-{n}" for n in range(5)]
    for name in names:
        samples("task", "add", name, "--source", "slow", "--destination", "ledger")

    def call(_: int) -> requests.Response:
        return requests.post(server.url + "/run-due", timeout=120,
                             headers={"Authorization": f"Bearer {TOKEN}"})

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(call, range(20)))
    assert {answer.status_code for answer in answers} == {200}
    for answer in answers:
        etree.fromstring(answer.content)  # every report well-formed
    with engine.connect() as conn:
        counted = dict(conn.execute(sa.text(
            "SELECT task, COUNT(*) FROM core_task_run WHERE triggered_by = 'url' "
            "GROUP BY task")).all())
        rows = dict(conn.execute(sa.text(
            "SELECT task, COUNT(*) FROM test_ledger GROUP BY task")).all())
    assert counted == {name: 1 for name in names}
    assert rows == {name: 5 for name in names}
    executed = sum(node.get("executed") == "TRUE" for answer in answers
                   for node in etree.fromstring(answer.content).findall("iotask"))
    assert executed == 5


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_iotask_serve_answers_and_never_logs_the_token(samples, migrated_url, tmp_path):
    """`iotask serve` as cron's curl line meets it, logging at DEBUG: the token is in no log
    line, whether it came right, wrong, in the query string or a header, nor in a task's
    error."""
    samples("connection", "add", "broken", "--type", "test-source", "--set", "fail=true")
    samples("task", "add", "breaks", "--source", "broken", "--destination", "ledger")
    process, url = start_serve(migrated_url, tmp_path, "-v", env={
        "IOTASK_RUN_TOKEN": TOKEN, "IOTASK_LOG_LEVEL": "DEBUG", "IOTASK_TIMEZONE": "UTC"})
    try:
        assert requests.post(url + f"/run-due?token={TOKEN}").status_code == 500
        assert requests.post(url + f"/run-due?token={TOKEN}-wrong").status_code == 401
        assert requests.post(url + "/run-due",
                             headers={"Authorization": f"Bearer {TOKEN}"}).status_code in (
            200, 500)
        assert requests.get(url + f"/nowhere?token={TOKEN}",
                            allow_redirects=False).status_code == 302
    finally:
        out, err = stop_serve(process)
    assert "serving the console and the run-due URL on http://127.0.0.1:" in out
    assert "run-due URL refused" in err and "task breaks" in err  # it did log
    assert TOKEN not in out + err


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_serve_under_a_base_path(samples, migrated_url, tmp_path):
    samples("task", "add", "t", "--source", "src", "--destination", "ledger")
    process, url = start_serve(migrated_url, tmp_path, "--base-path", "/iotask/",
                               env={"IOTASK_RUN_TOKEN": TOKEN})
    try:
        answer = requests.post(url + "/iotask/run-due",
                               headers={"Authorization": f"Bearer {TOKEN}"})
        login = requests.get(url + "/iotask/tasks", allow_redirects=False)
        https = requests.get(url + "/iotask/login", headers={"X-Forwarded-Proto": "https"})
        plain = requests.get(url + "/iotask/login")
    finally:
        stop_serve(process)
    assert answer.status_code == 200 and 'name="t"' in answer.text
    assert login.status_code == 302 and login.headers["Location"].startswith("/iotask/login")
    assert 'href="/iotask/static/console.css"' in https.text
    cookie = https.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/iotask;" in cookie
    assert "Secure" not in plain.headers["Set-Cookie"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_wsgi_entry_point_is_configured_like_every_command(samples, migrated_url, tmp_path):
    """`gunicorn iotask.web:app`: the app is built on first use from the environment."""
    samples("task", "add", "t", "--source", "src", "--destination", "ledger")
    code = ("import iotask.web as web, sys; client = web.app.test_client(); "
            "answer = client.post('/run-due', headers={'Authorization': 'Bearer ' + sys.argv[1]}); "
            "print(answer.status_code, answer.get_data(as_text=True))")
    done = subprocess.run([sys.executable, "-P", "-c", code, TOKEN], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env={
                              **os.environ, "PYTHONPATH": str(TESTS),
                              "IOTASK_DATABASE_URL": migrated_url, "IOTASK_RUN_TOKEN": TOKEN})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("200 ") and 'name="t" executed="TRUE"' in done.stdout


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_serve_refuses_what_it_cannot_serve_in_one_line(iotask, monkeypatch):
    monkeypatch.setenv("IOTASK_RUN_TOKEN", "short")
    assert_user_error(iotask("serve", "--port", "0", ok=False), "at least 16")
    monkeypatch.setenv("IOTASK_RUN_TOKEN", TOKEN)
    assert_user_error(iotask("serve", "--base-path", "/a b", ok=False), "--base-path")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_user_error(iotask("serve", "--port", str(port), ok=False),
                          f"cannot listen on 127.0.0.1:{port}")
