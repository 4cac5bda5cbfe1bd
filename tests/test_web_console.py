"""The console over real HTTP, without a browser: signing in, roles, CSRF, slowed failed
logins, the pages and the actions, secrets never rendered, large histories paginated."""

from __future__ import annotations

import html
import logging
import re
import time
from datetime import datetime, timedelta

import pytest
import requests
import sqlalchemy as sa
from conftest import aged, assert_user_error
from webclient import add_user, csrf_of, post_action, sign_in, with_stdin
from webserver import LiveServer

ADMIN_PASSWORD = "correct horse battery"
VIEWER_PASSWORD = "viewer password 1"


@pytest.fixture
def server(samples, migrated_url):
    add_user(samples, "ada", "admin", ADMIN_PASSWORD)
    add_user(samples, "vic", "viewer", VIEWER_PASSWORD)
    live = LiveServer(migrated_url)
    yield live
    live.close()


def wait_for_run(client: requests.Session, url: str, task: str) -> str:
    """The task page once the console's run of it is over (it refreshes while running)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        page = client.get(url + "/task", params={"name": task}).text
        if 'id="running"' not in page and "No runs yet" not in page:
            return page
        time.sleep(0.1)
    raise AssertionError(f"the run of {task} did not end")


def enabled(engine, task: str) -> bool:
    with engine.connect() as conn:
        return bool(conn.scalar(sa.text("SELECT enabled FROM core_task WHERE name = :n"),
                                {"n": task}))


# --- users ---------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_user_commands(iotask, engine):
    assert add_user(iotask, "ada", "admin", ADMIN_PASSWORD).out == ""  # silent under cron
    add_user(iotask, "vic", "viewer", VIEWER_PASSWORD)
    listed = iotask("user", "list", "--json").json()
    assert listed == [{"name": "ada", "role": "admin"}, {"name": "vic", "role": "viewer"}]
    with engine.connect() as conn:
        stored = conn.scalar(sa.text("SELECT password_hash FROM core_console_user "
                                     "WHERE name = 'ada'"))
    assert stored.startswith("$argon2id$") and ADMIN_PASSWORD not in stored
    assert_user_error(add_user(iotask, "ada", "admin", ADMIN_PASSWORD, ok=False),
                      "already exists")
    assert_user_error(add_user(iotask, "bob", "admin", "short", ok=False), "at least 8")
    assert_user_error(iotask("user", "add", "bob", "--role", "root", ok=False), "root")
    assert_user_error(iotask("user", "remove", "nobody", ok=False), "nobody")
    iotask("user", "remove", "vic")
    assert [u["name"] for u in iotask("user", "list", "--json").json()] == ["ada"]


def test_a_new_password_or_a_removed_user_ends_their_sessions(server, samples):
    client = sign_in(server.url, "ada", ADMIN_PASSWORD)
    viewer = sign_in(server.url, "vic", VIEWER_PASSWORD)
    assert client.get(server.url + "/tasks", allow_redirects=False).status_code == 200
    assert_user_error(with_stdin("", samples, "user", "passwd", "ada", ok=False),
                      "no password")
    with_stdin("a brand new password\n", samples, "user", "passwd", "ada")
    assert client.get(server.url + "/tasks", allow_redirects=False).status_code == 302
    sign_in(server.url, "ada", "a brand new password")
    samples("user", "remove", "vic")
    assert viewer.get(server.url + "/tasks", allow_redirects=False).status_code == 302


# --- signing in ----------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_pages_need_a_signed_in_user_and_cookies_and_headers_are_strict(server):
    anonymous = requests.get(server.url + "/tasks", allow_redirects=False)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    client = requests.Session()
    login = client.get(server.url + "/login")
    cookie = login.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    csp = login.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    wrong = client.post(server.url + "/login", data={
        "name": "ada", "password": "nope", "csrf_token": csrf_of(login.text)})
    assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
    no_csrf = client.post(server.url + "/login", data={"name": "ada",
                                                       "password": ADMIN_PASSWORD})
    assert no_csrf.status_code == 403


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
class Recorded(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_twenty_wrong_passwords_slow_the_next_attempts_but_never_lock_out(server):
    client = requests.Session()
    token = csrf_of(client.get(server.url + "/login").text)
    codes = []
    recorded = Recorded()
    logger = logging.getLogger("iotask.web.auth")
    logger.addHandler(recorded)
    try:
        for attempt in range(20):
            answer = client.post(server.url + "/login", data={
                "name": "ada", "password": f"wrong {attempt}", "csrf_token": token})
            codes.append(answer.status_code)
    finally:
        logger.removeHandler(recorded)
    assert codes[:3] == [401, 401, 401]
    assert 429 in codes and set(codes) == {401, 429}  # slowed down...
    failures = [line for line in recorded.lines if "failed sign-in" in line]
    assert failures and all("'ada'" in line for line in failures)  # ...and logged
    assert not any("wrong " in line for line in failures)  # never the password tried
    right = {"name": "ada", "password": ADMIN_PASSWORD, "csrf_token": token}
    for _ in range(10):  # ...but never locked out: after the wait, the right password works
        answer = client.post(server.url + "/login", data=right)
        if answer.status_code != 429:
            break
        assert int(answer.headers["Retry-After"]) <= 4
        time.sleep(int(answer.headers["Retry-After"]))
    assert answer.status_code == 200 and "ada (admin)" in answer.text


# --- CSRF and roles ------------------------------------------------------------------------

def test_a_missing_or_wrong_csrf_token_changes_nothing(server, samples, engine):
    samples("task", "add", "t", "--source", "src", "--destination", "ledger")
    client = sign_in(server.url, "ada", ADMIN_PASSWORD)
    for data in ({"name": "t", "action": "disable"},
                 {"name": "t", "action": "disable", "csrf_token": "forged"},
                 {"name": "t", "action": "disable", "csrf_token": ""}):
        answer = client.post(server.url + "/task/action", data=data, allow_redirects=False)
        assert answer.status_code == 403
    other = sign_in(server.url, "ada", ADMIN_PASSWORD)  # another session's token
    stolen = csrf_of(other.get(server.url + "/tasks").text)
    answer = client.post(server.url + "/task/action", allow_redirects=False,
                         data={"name": "t", "action": "disable", "csrf_token": stolen})
    assert answer.status_code == 403
    answer = client.post(server.url + "/task/new", allow_redirects=False, data={
        "name": "sneaky", "source": "src", "destination": "ledger", "schedule_type": "any",
        "schedule": "1 day", "import_type": "insert", "sequence": "0"})
    assert answer.status_code == 403
    assert enabled(engine, "t")
    assert samples("task", "list", "--json").json()[0]["name"] == "t"
    assert post_action(client, server.url, "t", "disable").status_code == 302
    assert not enabled(engine, "t")


def test_a_viewer_sees_everything_and_changes_nothing(server, samples, engine):
    samples("task", "add", "t", "--source", "src", "--destination", "ledger")
    samples("run", "t")
    viewer = sign_in(server.url, "vic", VIEWER_PASSWORD)
    listing = viewer.get(server.url + "/tasks").text
    page = viewer.get(server.url + "/task", params={"name": "t"}).text
    assert ">t</a>" in listing and "success" in page and "inserted" in page.lower()
    assert "Add Task" not in listing
    for control in ("action-run", "action-dry-run", "action-accept", "action-reset",
                    "action-toggle", "edit-task"):
        assert control not in page
    token = csrf_of(page)
    for action in ("run", "dry-run", "accept", "reset", "disable", "enable"):
        for data in ({"name": "t", "action": action, "csrf_token": token},
                     {"name": "t", "action": action}):
            answer = viewer.post(server.url + "/task/action", data=data,
                                 allow_redirects=False)
            assert answer.status_code == 403, (action, data)
    assert viewer.get(server.url + "/task/new").status_code == 403
    assert viewer.get(server.url + "/task/edit", params={"name": "t"}).status_code == 403
    assert viewer.post(server.url + "/task/edit", params={"name": "t"}, data={
        "csrf_token": token, "description": "changed"}).status_code == 403
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT COUNT(*) FROM core_task_run")) == 1
    assert enabled(engine, "t")


# --- pages and actions ---------------------------------------------------------------------

def test_run_now_runs_in_the_background_and_the_page_shows_it(server, samples, engine):
    samples("connection", "add", "slow", "--type", "test-source", "--set", "rows=6",
            "--set", "delay_ms=150", "--set", "bad_rows=3")
    samples("task", "add", "slow", "--source", "slow", "--destination", "ledger",
            "--max-errors", "50%")
    client = sign_in(server.url, "ada", ADMIN_PASSWORD)
    answer = post_action(client, server.url, "slow", "run")
    assert answer.status_code == 302
    running = client.get(server.url + "/task", params={"name": "slow"}).text
    assert 'id="running"' in running and 'http-equiv="refresh"' in running
    assert "disabled>Run now" in running
    page = wait_for_run(client, server.url, "slow")
    assert "partial" in page and "console" in page
    assert re.search(r'class="num count-read">5<', page)
    assert re.search(r'class="num count-failed">1<', page)
    assert "row 3 (3) [seq]: bad value" in page
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT triggered_by, status FROM core_task_run")).all() \
            == [("console", "partial")]
    run_id = re.search(r'id="run-(\d+)"', page).group(1)
    report = client.get(server.url + "/run/report", params={"id": run_id})
    assert report.status_code == 200 and report.json()["row_errors"][0]["message"] == "bad value"


def test_dry_run_reset_and_enable_from_the_task_page(server, samples, engine):
    samples("task", "add", "t", "--source", "src", "--destination", "ledger")
    client = sign_in(server.url, "ada", ADMIN_PASSWORD)
    dry = post_action(client, server.url, "t", "dry-run")
    assert dry.status_code == 200 and "Nothing was applied" in dry.text
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT COUNT(*) FROM core_task_run")) == 0
    samples("run", "t")
    reset = post_action(client, server.url, "t", "reset")
    assert reset.status_code == 302
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT last_execution, last_status FROM core_task")).one()
        runner = conn.scalar(sa.text("SELECT runner FROM core_task_run WHERE status = 'reset'"))
    assert row == (None, "reset") and runner.startswith("console:ada@")
    post_action(client, server.url, "t", "disable")
    assert not enabled(engine, "t")
    assert "disabled" in client.get(server.url + "/tasks").text
    post_action(client, server.url, "t", "enable")
    assert enabled(engine, "t")


def test_add_and_edit_task_check_like_the_cli_and_show_errors_beside_fields(server, samples):
    client = sign_in(server.url, "ada", ADMIN_PASSWORD)
    form = client.get(server.url + "/task/new").text
    assert 'value="src"' in form and 'value="ledger"' in form
    fields = {"csrf_token": csrf_of(form), "name": "hr users", "description": "",
              "source": "src", "destination": "ledger", "schedule_type": "at",
              "schedule": "25:99", "import_type": "insert", "map": "", "email": "not-an-address",
              "notify": "start,end", "expect": "", "max_errors": "", "max_remove": "",
              "sequence": "x", "enabled": "on"}
    bad = client.post(server.url + "/task/new", data=fields)
    assert bad.status_code == 400
    cli = samples("task", "add", "cli", "--source", "src", "--destination", "ledger",
                  "--at", "25:99", ok=False).err.removeprefix("iotask: error: ").strip()
    assert html.unescape(re.search(r'id="error-schedule">([^<]*)<', bad.text).group(1)) == cli
    assert 'id="error-email"' in bad.text and 'id="error-sequence"' in bad.text
    assert samples("task", "list", "--json").json() == []

    good = client.post(server.url + "/task/new", data={
        **fields, "schedule": "02:30", "email": "hr@example.com", "sequence": "3"})
    assert good.status_code == 200 and "hr users" in good.text
    shown = samples("task", "show", "hr users", "--json").json()
    assert (shown["schedule_type"], shown["schedule"], shown["notify_email"],
            shown["sequence"]) == ("at", "02:30", "hr@example.com", 3)
    again = client.post(server.url + "/task/new", data={**fields, "schedule": "02:30",
                                                        "email": "", "sequence": "0"})
    assert again.status_code == 400 and 'id="error-name"' in again.text

    edit = client.get(server.url + "/task/edit", params={"name": "hr users"}).text
    assert 'value="02:30"' in edit
    changed = client.post(server.url + "/task/edit", params={"name": "hr users"}, data={
        **fields, "csrf_token": csrf_of(edit), "schedule_type": "any", "schedule": "6 hour",
        "email": "", "sequence": "1", "max_remove": "lots"})
    assert changed.status_code == 400 and 'id="error-max_remove"' in changed.text
    assert samples("task", "show", "hr users", "--json").json()["schedule"] == "02:30"
    client.post(server.url + "/task/edit", params={"name": "hr users"}, data={
        **fields, "csrf_token": csrf_of(edit), "schedule_type": "any", "schedule": "6 hour",
        "email": "", "sequence": "1"})
    assert samples("task", "show", "hr users", "--json").json()["schedule"] == "6 hour"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_secrets_are_never_rendered(server, samples, tmp_path):
    samples("connection", "add", "remote", "--type", "csv", "--set",
            "url=https://hr.example.com/users.csv?token=tok-in-url-99", "--set",
            "password=p4ssw0rd-secret", "--set", "auth_header=Bearer hdr-secret-77")
    samples("task", "add", "remote", "--source", "remote", "--destination", "ledger")
    client = sign_in(server.url, "ada", ADMIN_PASSWORD)
    for path, params in (("/task", {"name": "remote"}), ("/tasks", {}),
                         ("/task/edit", {"name": "remote"}), ("/task/new", {})):
        page = client.get(server.url + path, params=params).text
        for secret in ("p4ssw0rd-secret", "hdr-secret-77", "tok-in-url-99"):
            assert secret not in page
    page = client.get(server.url + "/task", params={"name": "remote"}).text
    assert "<dt>password</dt><dd>********</dd>" in page
    assert "<dt>auth_header</dt><dd>********</dd>" in page


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_pages_with_1000_tasks_and_100000_runs_are_paginated(server, samples, engine):
    now = datetime(2026, 11, 30, 12, 0)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO core_task (name, description, conn_source, conn_destination, "
            "schedule_type, schedule, import_type, sequence, enabled, fail_count, run_count, "
            "allow_empty, created_at, updated_at, last_status) VALUES (:name, '', 'src', "
            "'ledger', 'any', '1 day', 'insert', 0, :enabled, 0, 0, :f, :now, :now, :status)"),
            [{"name": f"task-{n:04d}", "enabled": n % 10 != 0, "f": False, "now": now,
              "status": "failed" if n % 7 == 0 else "success"} for n in range(1000)])
        conn.execute(sa.text(
            "INSERT INTO core_task_run (task, triggered_by, runner, started, finished, status, "
            "rows_read, rows_inserted, rows_updated, rows_unchanged, rows_removed, "
            "rows_failed) VALUES (:task, 'cron', 'h:1', :started, :finished, 'success', "
            ":n, :n, 0, 0, 0, 0)"),
            [{"task": "task-0001" if n < 50_000 else f"task-{n % 1000:04d}",
              "started": now - timedelta(minutes=n), "n": n % 97,
              "finished": now - timedelta(minutes=n) + timedelta(seconds=n % 13)}
             for n in range(100_000)])
    client = sign_in(server.url, "vic", VIEWER_PASSWORD)
    listing = client.get(server.url + "/tasks").text
    assert listing.count('href="/task?name=task-') == 50
    assert "1000 tasks" in listing and "page 1 of 20" in listing
    last = client.get(server.url + "/tasks", params={"page": "20"}).text
    assert "task-0999" in last and "task-0000" not in last
    failed = client.get(server.url + "/tasks", params={"status": "failed"}).text
    assert "143 tasks with status failed" in failed and "task-0007" in failed
    assert "task-0001<" not in failed
    page = client.get(server.url + "/task", params={"name": "task-0001"}).text
    assert page.count('class="run"') == 20
    assert "50050 runs" in page and "page 1 of 2503" in page
    assert page.count("<rect ") == 30  # the chart: the last 30 runs
    older = client.get(server.url + "/task", params={"name": "task-0001", "page": "2503"})
    assert older.text.count('class="run"') == 10


def test_accept_held_changes_applies_what_the_guard_held(server, samples, engine, tmp_path):
    """A sync whose removals pass max_remove is held; Accept held changes applies it once."""
    sa.Table("lms_user", sa.MetaData(),
             sa.Column("userid", sa.String(50), primary_key=True),
             sa.Column("imported_from_connection", sa.String(255))).create(engine)
    feed = tmp_path / "users.csv"
    feed.write_text("userid\n" + "".join(f"u{n}\n" for n in range(20)), encoding="utf-8")
    aged(feed)
    samples("connection", "add", "feed", "--type", "csv", "--set", f"url={feed}")
    samples("connection", "add", "lms", "--type", "sql", "--set", "table=lms_user",
            "--set", "key=userid")
    samples("task", "add", "sync", "--source", "feed", "--destination", "lms",
            "--import-type", "sync")
    samples("run", "sync")
    feed.write_text("userid\nu0\nu1\n", encoding="utf-8")
    aged(feed)
    assert samples("run", "sync", ok=False).code == 1  # held: 18 of 20 would go
    client = sign_in(server.url, "ada", ADMIN_PASSWORD)
    page = client.get(server.url + "/task", params={"name": "sync"}).text
    assert "status-held" in page and "Accept held changes" in page
    assert post_action(client, server.url, "sync", "accept").status_code == 302
    page = wait_for_run(client, server.url, "sync")
    assert re.search(r'class="num count-removed">18<', page)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT COUNT(*) FROM lms_user")) == 2


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_hostile_task_names_are_escaped_and_their_links_work(server, samples):
    name = 'HR/users "x" <b>&amp; ü?#1'
    samples("task", "add", name, "--source", "src", "--destination", "ledger")
    samples("run", name)
    client = sign_in(server.url, "ada", ADMIN_PASSWORD)
    listing = client.get(server.url + "/tasks").text
    assert "<b>" not in listing and "&lt;b&gt;&amp;amp; ü?#1" in listing
    link = html.unescape(re.search(r'href="(/task\?name=[^"]+)"', listing).group(1))
    page = client.get(server.url + link).text
    assert html.unescape(re.search(r"<h1>([^<]*)</h1>", page).group(1)) == name
    assert "status-success" in page
    assert post_action(client, server.url, name, "disable").status_code == 302
    assert samples("task", "show", name, "--json").json()["enabled"] is False


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_form_sets_the_file_ends_url_import_or_export(server, samples, engine, tmp_path):
    """Import or Export says which connection the URL field changes; a refused URL saves
    nothing; a password in a URL is shown masked and kept when the form is saved as shown."""
    first, second = tmp_path / "hr.csv", tmp_path / "hr-2.csv"
    samples("connection", "add", "hr-file", "--type", "csv", "--set", f"url={first}")
    client = sign_in(server.url, "ada", ADMIN_PASSWORD)
    form = client.get(server.url + "/task/new").text
    assert 'id="f-direction"' in form and 'id="f-url"' in form
    fields = {"csrf_token": csrf_of(form), "name": "hr import", "description": "",
              "direction": "import", "source": "hr-file", "destination": "ledger",
              "url": "/etc/passwd", "schedule_type": "any", "schedule": "1 day",
              "import_type": "insert", "map": "", "email": "", "notify": "end", "expect": "",
              "max_errors": "", "max_remove": "", "sequence": "0", "enabled": "on"}
    refused = client.post(server.url + "/task/new", data=fields)
    assert refused.status_code == 400 and 'id="error-url"' in refused.text
    assert samples("task", "list", "--json").json() == []
    assert samples("connection", "show", "hr-file", "--json").json()["params"]["url"] == str(
        first)

    saved = client.post(server.url + "/task/new", data={**fields, "url": str(second)})
    assert saved.status_code == 200
    assert samples("connection", "show", "hr-file", "--json").json()["params"]["url"] == str(
        second)
    edit = client.get(server.url + "/task/edit", params={"name": "hr import"}).text
    assert f'value="{second}"' in edit

    export = client.post(server.url + "/task/new", data={
        **fields, "name": "to ledger", "direction": "export", "url": str(first)})
    assert export.status_code == 400 and "has no URL" in html.unescape(export.text)

    samples("connection", "add", "remote", "--type", "csv",
            "--set", "url=sftp://hr:s3cret-pw@files.example.com/out/users.csv")
    samples("task", "add", "remote", "--source", "remote", "--destination", "ledger")
    page = client.get(server.url + "/task/edit", params={"name": "remote"}).text
    shown = html.unescape(re.search(r'id="f-url" name="url" value="([^"]*)"', page).group(1))
    at = page.find("s3cret-pw")
    assert at < 0 and "***" in shown, page[max(at - 300, 0):at + 50]
    kept = client.post(server.url + "/task/edit", params={"name": "remote"}, data={
        **fields, "csrf_token": csrf_of(page), "source": "remote", "url": shown,
        "schedule": "2 day"})
    assert kept.status_code == 200
    with engine.connect() as conn:
        stored = conn.scalar(sa.text("SELECT params FROM core_connection WHERE name = 'remote'"))
    assert "s3cret-pw" in stored
