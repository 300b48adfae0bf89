#!/usr/bin/env python3
"""Measures the trash retention sweep: how long it holds the writer per batch, how long a
whole sweep takes, and how long a writer waits meanwhile.

Usage: python3 contrib/retention-sweep.py BINARY [POSTS]      (POSTS default 100000)

BINARY is a postd binary (e.g. target/release/postd). The script
1. starts it once on a fresh database in a temporary directory (schema and key), stops it,
   and makes a user with the command line;
2. writes POSTS posts soft-deleted long ago, a comment on every tenth, straight into the
   file (one transaction, Python's sqlite3; the schema's triggers index them);
3. starts it again with --trash-retention 1s, so the sweep begins at once, while one
   client makes POST /posts after POST /posts on a keep-alive connection, recording each
   answer's latency;
4. prints the server's own line about the sweep (batches, longest batch, whole sweep),
   the posts left, and the writer's latencies during the sweep and after it.
"""

import http.client
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

PASSWORD = "retention-probe-password"


def start(binary, db, extra):
    err_path = db + ".stderr.log"
    proc = subprocess.Popen(
        [binary, "serve", "--addr", "127.0.0.1:0", "--db", db, "--log-format", "logfmt"] + extra,
        stdout=subprocess.PIPE,
        stderr=open(err_path, "ab"),
        env=dict(os.environ, POSTD_REGISTER_LIMIT="0"),
    )
    line = proc.stdout.readline().decode()
    match = re.search(r"http://([0-9.]+):(\d+)", line)
    if not match:
        sys.exit(f"no address in {line!r}")
    return proc, (match.group(1), int(match.group(2))), err_path


def stop(proc):
    proc.terminate()
    proc.wait(timeout=60)


def seed(db, posts):
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA foreign_keys = ON")
    author = conn.execute("SELECT id FROM users WHERE username = 'writer'").fetchone()[0]
    started = time.monotonic()
    with conn:
        for n in range(posts):
            deleted = "2000-01-%02dT%02d:%02d:%02d.000Z" % (
                2 + n // 86400, n // 3600 % 24, n // 60 % 60, n % 60)
            cur = conn.execute(
                "INSERT INTO posts (author_id, title, slug, body, created_at, updated_at,"
                " deleted_at, deleted_by_id) VALUES (?, ?, ?, ?, '2000-01-01T00:00:00.000Z',"
                " '2000-01-01T00:00:00.000Z', ?, ?)",
                (author, f"Seeded post {n}", f"seeded-{n}", "A body of some length. " * 20,
                 deleted, author),
            )
            if n % 10 == 0:
                conn.execute(
                    "INSERT INTO comments (post_id, author_id, body, created_at)"
                    " VALUES (?, ?, 'a comment', '2000-01-01T00:00:00.000Z')",
                    (cur.lastrowid, author),
                )
    conn.close()
    return time.monotonic() - started


def writer(addr, token, stop_flag, samples):
    conn = http.client.HTTPConnection(*addr, timeout=60)
    n = 0
    while not stop_flag.is_set():
        n += 1
        body = json.dumps({"title": f"written during the sweep {n}", "body": "x"})
        sent = time.monotonic()
        conn.request("POST", "/posts", body=body, headers={
            "Content-Type": "application/json", "Authorization": "Bearer " + token})
        response = conn.getresponse()
        response.read()
        done = time.monotonic()
        if response.status != 201:
            sys.exit(f"POST /posts answered {response.status}")
        samples.append((sent, done - sent))


def summary(latencies):
    if not latencies:
        return "no requests"
    ordered = sorted(latencies)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000
    return (f"{len(ordered)} writes, median {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms, "
            f"max {ordered[-1] * 1000:.1f} ms")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    posts = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    tmp = tempfile.mkdtemp(prefix="postd-retention-")
    db = os.path.join(tmp, "p.db")

    proc, _, _ = start(binary, db, [])
    stop(proc)
    subprocess.run([binary, "user", "add", "writer", "--db", db], check=True,
                   env=dict(os.environ, POSTD_PASSWORD=PASSWORD), stdout=subprocess.DEVNULL)
    took = seed(db, posts)
    print(f"seeded {posts} expired posts ({posts // 10} comments) in {took:.1f} s")

    started = time.monotonic()
    proc, addr, err_path = start(binary, db, ["--trash-retention", "1s"])
    conn = http.client.HTTPConnection(*addr, timeout=60)
    conn.request("POST", "/auth/login", body=json.dumps(
        {"username": "writer", "password": PASSWORD}), headers={"Content-Type": "application/json"})
    token = json.loads(conn.getresponse().read())["access_token"]
    samples, stop_flag = [], threading.Event()
    thread = threading.Thread(target=writer, args=(addr, token, stop_flag, samples))
    thread.start()

    line, swept_at = None, None
    while time.monotonic() - started < 600:
        with open(err_path) as log:
            for entry in log:
                if "retention sweep purged" in entry:
                    line, swept_at = entry.strip(), time.monotonic()
        if line:
            break
        time.sleep(0.05)
    # The writer goes on for as long again, for its latencies without a sweep.
    time.sleep(max(2.0, (swept_at or time.monotonic()) - started))
    stop_flag.set()
    thread.join()
    stop(proc)

    if not line:
        sys.exit("no sweep line within 10 minutes")
    print("server:", re.search(r'msg="([^"]*)"', line).group(1))
    left = sqlite3.connect(db).execute(
        "SELECT (SELECT count(*) FROM posts WHERE deleted_at IS NOT NULL),"
        " (SELECT count(*) FROM audit_events WHERE action = 'trash.purge'),"
        " (SELECT max(count) FROM audit_events WHERE action = 'trash.purge')").fetchone()
    print(f"left in the trash: {left[0]}; trash.purge events: {left[1]}, the largest {left[2]} posts")
    during = [lat for sent, lat in samples if sent < swept_at]
    after = [lat for sent, lat in samples if sent >= swept_at]
    print("writer during the sweep:", summary(during))
    print("writer after the sweep: ", summary(after))


if __name__ == "__main__":
    main()
