#!/usr/bin/env python3
"""Measures what the server's clients wait for while `postd import` writes into the
database it serves.

Usage: python3 contrib/import-beside.py BINARY [LINES]      (LINES default 1000000)

BINARY is a postd binary (e.g. target/release/postd). The script
1. makes a fresh database in a temporary directory with a user (the command line) and
   writes an NDJSON file of LINES posts (~40-char titles, ~500-char bodies);
2. starts the server on it, logs in, and starts two clients on keep-alive connections:
   a reader looping on GET /posts?limit=20 and a writer sending POST /posts every 20 ms;
3. runs `postd import FILE --as USER` beside them and stops the clients when it ends;
4. prints the import's time and, for each client, how many requests it made and the
   median, p99 and longest wait.
"""

import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

PASSWORD = "import-probe-password"
BODY = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 9


def start(binary, db):
    proc = subprocess.Popen(
        [binary, "serve", "--addr", "127.0.0.1:0", "--db", db, "--log-format", "off"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    line = proc.stdout.readline().decode()
    match = re.search(r"http://([0-9.]+):(\d+)", line)
    if not match:
        sys.exit(f"no address in {line!r}")
    return proc, (match.group(1), int(match.group(2)))


def login(addr):
    conn = http.client.HTTPConnection(*addr)
    conn.request(
        "POST",
        "/auth/login",
        json.dumps({"username": "importer", "password": PASSWORD}),
        {"Content-Type": "application/json"},
    )
    answer = conn.getresponse()
    token = json.loads(answer.read())["access_token"]
    conn.close()
    return token


def client(addr, stop, waits, request, pause):
    conn = http.client.HTTPConnection(*addr, timeout=60)
    n = 0
    while not stop.is_set():
        n += 1
        started = time.monotonic()
        request(conn, n)
        answer = conn.getresponse()
        answer.read()
        waits.append(time.monotonic() - started)
        if answer.status >= 300:
            sys.exit(f"{answer.status} from the server")
        if pause:
            time.sleep(pause)
    conn.close()


def summary(name, waits):
    waits = sorted(waits)
    if not waits:
        return f"{name}: no requests"
    at = lambda q: waits[min(len(waits) - 1, int(q * len(waits)))] * 1000
    return (
        f"{name}: {len(waits):,} requests, median {at(0.5):.1f} ms, "
        f"p99 {at(0.99):.1f} ms, longest {waits[-1] * 1000:.1f} ms"
    )


def main():
    binary = sys.argv[1]
    lines = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "postd.db")
        subprocess.run(
            [binary, "user", "add", "importer", "--db", db],
            env=dict(os.environ, POSTD_PASSWORD=PASSWORD),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        ndjson = os.path.join(tmp, "posts.ndjson")
        with open(ndjson, "w") as out:
            for n in range(lines):
                out.write(json.dumps({"title": f"Imported post number {n}", "body": BODY}))
                out.write("\n")
        proc, addr = start(binary, db)
        try:
            token = login(addr)
            auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            stop = threading.Event()
            reads, writes = [], []

            def read(conn, n):
                conn.request("GET", "/posts?limit=20")

            def write(conn, n):
                post = {"title": f"Written beside the import {n}", "body": BODY}
                conn.request("POST", "/posts", json.dumps(post), auth)

            clients = [
                threading.Thread(target=client, args=(addr, stop, reads, read, 0)),
                threading.Thread(target=client, args=(addr, stop, writes, write, 0.02)),
            ]
            for c in clients:
                c.start()
            time.sleep(1)
            started = time.monotonic()
            subprocess.run(
                [binary, "import", ndjson, "--as", "importer", "--db", db],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            took = time.monotonic() - started
            stop.set()
            for c in clients:
                c.join()
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        print(f"import of {lines:,} lines: {took:.1f} s")
        print(summary("GET /posts?limit=20", reads))
        print(summary("POST /posts every 20 ms", writes))


if __name__ == "__main__":
    main()
