#!/usr/bin/env python3
"""Keep every local SQLite database of the app open while it runs (`make up`, the bench,
the end-to-end harness), as a database server would.

Why: Spin opens a fresh SQLite connection for each component instance, that is for each
request, and closes it when the instance ends. In WAL mode the last connection to close
checkpoints the WAL into the database (two fsyncs) and deletes the WAL and its
shared-memory index; the next request recreates them and runs WAL recovery under an
exclusive lock that the other instances wait out in SQLite's busy handler. Measured on
2 cores: 220 fsyncs for three rides. One idle connection per database that stays open
keeps the WAL in place, so a commit costs what WAL promises. It holds no transaction
(the WAL still checkpoints automatically) and changes nothing in the data. In the
cluster the databases are libSQL servers and this is not needed.

Usage: sqlite-keeper.py RUNTIME_CONFIG [DIR]
  RUNTIME_CONFIG: the Spin runtime config; its `type = "spin"` databases are kept open.
  DIR: where relative `path`s resolve (Spin: the working directory). Default: `.`.
Exits when its parent process exits.
"""

import os
import sqlite3
import sys
import time
import tomllib

POLL_SECONDS = 0.2


def database_paths(runtime_config, base):
    with open(runtime_config, "rb") as f:
        config = tomllib.load(f)
    for db in config.get("sqlite_database", {}).values():
        if db.get("type") == "spin" and db.get("path"):
            yield os.path.join(base, db["path"])


def touch(conn):
    # A read opens the WAL index once the database is in WAL mode (the app's migration
    # sets it); the connection then counts as open for SQLite's last-close check.
    conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.split("\n\n")[-1])
    base = sys.argv[2] if len(sys.argv) == 3 else "."
    paths = list(database_paths(sys.argv[1], base))
    parent = os.getppid()
    open_conns = {}
    while os.getppid() == parent:
        for path in paths:
            try:
                if path not in open_conns:
                    # mode=rw: never create a database; the app does that on first use.
                    open_conns[path] = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5)
                touch(open_conns[path])
            except sqlite3.Error:
                # Not created yet, or busy for a moment: try again on the next tick.
                conn = open_conns.pop(path, None)
                if conn is not None:
                    conn.close()
        time.sleep(POLL_SECONDS if len(open_conns) < len(paths) else 1.0)


if __name__ == "__main__":
    main()
