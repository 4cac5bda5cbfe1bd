"""Peak memory of the ims-enterprise source on a generated IMS Enterprise file: flat, whatever
the file's size.

    python bench/ims_memory.py [--megabytes 200] [--keep DIR] [--write [--mariadb URL]]

Generates a file of about the size asked (persons, course groups, memberships of 30 members
each and one membership of up to 100,000 members), and the same at a quarter of the size, then reads
each in a fresh process through the connector's ``read()`` (parse, spool, yield every row) and
prints the rows, the time and the process's peak RSS. Flat memory: both peaks about the same.
``--write`` also imports each file into a new forma site (ims-enterprise into forma-lms, through
the CLI) and prints that process's peak RSS: SQLite runs in the process, so its page caches
count; ``--mariadb URL`` writes into a throwaway database on that server instead.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PERSON = ('<person recstatus="1"><sourcedid><source>SIS</source><id>P{n:08d}</id></sourcedid>'
          "<userid>user{n}</userid><name><fn>Given{n} Family{n}</fn><n><family>Family{n}</family>"
          "<given>Given{n}</given></n></name><email>user{n}@example.edu</email></person>\n")
GROUP = ('<group recstatus="1"><sourcedid><source>SIS</source><id>C{n:06d}</id></sourcedid>'
         "<description><short>C{n}</short><long>Course number {n}</long><full>A course of the "
         "generated benchmark file.</full></description><timeframe><begin>2026-09-07</begin>"
         "<end>2026-12-18</end></timeframe></group>\n")
MEMBER = ("<member><sourcedid><source>SIS</source><id>P{n:08d}</id></sourcedid><idtype>1</idtype>"
          '<role roletype="01" recstatus="1"><status>1</status></role></member>\n')


def generate(path: Path, megabytes: int) -> None:
    """A file of about ``megabytes``: a third persons, the rest groups and memberships."""
    target = megabytes * 1024 * 1024
    persons = target // 3 // len(PERSON.format(n=0))
    member = len(MEMBER.format(n=0))
    groups = max(1, (target - persons * len(PERSON.format(n=0)) - 100_000 * member)
                 // (len(GROUP.format(n=0)) + 30 * member + 120))
    with open(path, "w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n<enterprise>\n')
        for n in range(persons):
            out.write(PERSON.format(n=n))
        for n in range(groups + 1):  # the last one: the big membership's
            out.write(GROUP.format(n=n))
        for n in range(groups):
            out.write(f"<membership><sourcedid><id>C{n:06d}</id></sourcedid>\n")
            for k in range(30):
                out.write(MEMBER.format(n=(n * 30 + k) % persons))
            out.write("</membership>\n")
        out.write(f"<membership><sourcedid><id>C{groups:06d}</id></sourcedid>\n")
        for k in range(min(100_000, persons)):
            out.write(MEMBER.format(n=k))
        out.write("</membership>\n</enterprise>\n")


def read(path: Path) -> None:
    """Run in a fresh process: every row of ``path`` through the source; one result line."""
    from iotask.connectors.context import MemoryContext
    from iotask.connectors.ims_enterprise import ImsEnterpriseConnector

    context = MemoryContext(file_roots=[path.parent])
    source = ImsEnterpriseConnector({"url": str(path), "stable_seconds": 0})
    started = time.perf_counter()
    rows = 0
    try:
        for batch in source.read(context):
            rows += len(batch)
    finally:
        source.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{rows} {time.perf_counter() - started:.1f} {peak:.0f} {len(context.errors)}")


def write(path: Path, server: str | None) -> None:
    """Run in a fresh process: ``path`` imported through the CLI (ims-enterprise into
    forma-lms) into a new forma site: SQLite (in this process: its memory counts), or a
    throwaway database on the MariaDB server ``server``; one result line."""
    import os

    import sqlalchemy as sa

    from iotask.cli import main as cli

    def iotask(*args: str) -> None:
        try:
            cli(list(args))
        except SystemExit as exc:
            if exc.code:
                raise

    db = f"sqlite:///{path.parent / 'bench.db'}"
    site, engine, name = db, None, f"ims_bench_{os.getpid()}"
    if server:
        engine = sa.create_engine(server)
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        site = sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    os.environ["IOTASK_FILE_ROOTS"] = str(path.parent)
    os.utime(path, (time.time() - 60, time.time() - 60))
    try:
        iotask("--db", db, "db", "upgrade")
        if server:
            iotask("--db", site, "db", "upgrade")
        iotask("--db", site, "lms", "init")
        iotask("--db", db, "connection", "add", "sis", "--type", "ims-enterprise", "--set",
               f"url={path}")
        iotask("--db", db, "connection", "add", "lms", "--type", "forma-lms", "--set",
               f"database={site}")
        iotask("--db", db, "task", "add", "ims", "--source", "sis", "--destination", "lms")
        started = time.perf_counter()
        iotask("--db", db, "run", "ims")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"0 {time.perf_counter() - started:.1f} {peak:.0f} 0")
    finally:
        (path.parent / "bench.db").unlink(missing_ok=True)
        if engine is not None:
            with engine.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--keep", type=Path, help="generate the files here and keep them")
    parser.add_argument("--write", action="store_true",
                        help="also import each file into a new SQLite forma site (forma-lms)")
    parser.add_argument("--mariadb", metavar="URL",
                        help="with --write: into a throwaway database on this MariaDB server "
                             "instead (e.g. $IOTASK_TEST_MARIADB_URL)")
    parser.add_argument("--read", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--import", dest="imported", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read:
        read(args.read)
        return
    if args.imported:
        write(args.imported, args.mariadb)
        return
    with tempfile.TemporaryDirectory(prefix="iotask-ims-bench-") as scratch:
        folder = args.keep or Path(scratch)
        for megabytes in (max(1, args.megabytes // 4), args.megabytes):
            path = folder / f"ims-{megabytes}mb.xml"
            generate(path, megabytes)
            size = path.stat().st_size / 1024 / 1024
            done = subprocess.run([sys.executable, "-P", __file__, "--read", str(path)],
                                  check=True, capture_output=True, text=True)
            rows, seconds, peak, errors = done.stdout.split()
            print(f"ims-enterprise read {size:.0f} MB: {int(rows):,} rows ({errors} row "
                  f"errors) in {seconds} s, peak RSS {peak} MB")
            if args.write:
                server = ["--mariadb", args.mariadb] if args.mariadb else []
                done = subprocess.run([sys.executable, "-P", __file__, "--import", str(path),
                                       *server], check=True, capture_output=True, text=True)
                _, seconds, peak, _ = done.stdout.split()
                where = "MariaDB" if args.mariadb else "SQLite, in process"
                print(f"ims-enterprise -> forma-lms ({where}) {size:.0f} MB: imported in "
                      f"{seconds} s, peak RSS {peak} MB")


if __name__ == "__main__":
    main()
