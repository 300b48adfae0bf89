#!/usr/bin/env python3
"""Probes postd's transport the way a hostile client would, and prints what it saw.

Usage: python3 contrib/transport-probe.py BINARY PROBE [postd serve options...]

BINARY is a postd binary (e.g. target/release/postd); the probe starts it on a free
loopback port with a fresh database in a temporary directory, and stops it afterwards.

Probes:
  headers   Server / X-Content-Type-Options / Connection of an answer and of a refusal
  refusals  each transport refusal with a second request pipelined in the same write:
            status, Connection header, how the connection ended (EOF or reset); then a
            client that goes on sending 512 KiB (8 KiB every 20 ms) after its refused
            head: did its writes fail?
  emfile    open-file limit 256 (prlimit), 600 idle connections, all closed again;
            then GET /healthz every 0.5 s for 30 s: when it is answered again
  cap       1100 idle connections (or --max-connections + 10): threads of the server,
            what the connections past the cap received
  budget    17 bodies of 16 MiB held just short of their end (272 MiB > the 256 MiB
            read-ahead budget), then 2 slow bodies on a server with 2 workers: what the
            slow bodies get and how long a fresh GET /healthz takes
"""

import os
import re
import socket
import subprocess
import sys
import tempfile
import time


def start(binary, extra):
    tmp = tempfile.mkdtemp(prefix="postd-probe-")
    args = [binary, "serve", "--addr", "127.0.0.1:0", "--db", os.path.join(tmp, "p.db"),
            "--log-format", "off"] + extra
    err = open(os.path.join(tmp, "stderr.log"), "wb")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err)
    line = proc.stdout.readline().decode()
    match = re.search(r"http://([0-9.]+):(\d+)", line)
    if not match:
        sys.exit(f"no address in {line!r}")
    return proc, (match.group(1), int(match.group(2))), tmp


def exchange(addr, data, timeout=5.0):
    """Sends `data` in one write, reads until the server ends the connection.
    Returns (bytes received, how it ended)."""
    s = socket.create_connection(addr)
    s.settimeout(timeout)
    try:
        s.sendall(data)
    except OSError as e:
        return b"", f"send failed: {e.__class__.__name__}"
    got = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            end = "RESET"
            break
        except socket.timeout:
            end = f"still open after {timeout:.0f} s"
            break
        if not chunk:
            end = "EOF"
            break
        got += chunk
    s.close()
    return got, end


def head_of(answer):
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers.setdefault(k.strip().lower(), v.strip())
    return lines[0], headers


def get(addr, path="/healthz", timeout=5.0):
    req = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    try:
        got, end = exchange(addr, req, timeout)
    except OSError as e:
        return f"connect failed: {e.__class__.__name__}"
    return (head_of(got)[0] if got else f"nothing ({end})")


def threads(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"Threads:\s+(\d+)", f.read()).group(1))


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def probe_headers(addr, pid):
    for name, data in [
        ("GET /healthz", b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        ("431 (20 KB line)", b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
    ]:
        got, end = exchange(addr, data)
        status, h = head_of(got)
        print(f"{name}: {status!r} Server={h.get('server')!r} "
              f"X-Content-Type-Options={h.get('x-content-type-options')!r} "
              f"Connection={h.get('connection')!r} then {end}")


REFUSALS = [
    ("non-ASCII header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Name: caf\xc3\xa9\r\n\r\n"),
    ("malformed request line", b"GARBAGE\r\nHost: x\r\n\r\n"),
    ("431 line too long", b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("431 too many headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
     + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n"),
    ("HTTP/2.0", b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n"),
    ("CL + TE", b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("header name with a space", b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n"),
    ("header name not a token", b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad(Name): v\r\n\r\n"),
    ("417 Expect", b"GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\n\r\n"),
    ("413 declared length", b"POST /auth/login HTTP/1.1\r\nHost: x\r\n"
     b"Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n{\"a\":1}"),
]


def probe_refusals(addr, pid):
    # The pipelined request is padded past the server's 1 KiB read buffer, so its bytes
    # are still unread in the kernel when the server closes.
    second = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 4000 + b"\r\n\r\n")
    for name, data in REFUSALS:
        got, end = exchange(addr, data + second)
        status, h = head_of(got) if got else ("(nothing)", {})
        answers = len(re.findall(rb"HTTP/1\.[01] \d\d\d ", got))
        print(f"{name:26} {status:40} Connection={h.get('connection')!r:9} "
              f"answers={answers} then {end}")
    for name, head in [
        ("417, still sending", b"POST /auth/login HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\n"
         b"Content-Length: 524288\r\n\r\n"),
        ("413, still sending", b"POST /auth/login HTTP/1.1\r\nHost: x\r\n"
         b"Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n"),
    ]:
        status, end, sent = still_sending(addr, head)
        print(f"{name:26} {status:40} then {end}; client: {sent}")


def still_sending(addr, head):
    s = socket.create_connection(addr)
    s.settimeout(10)
    s.sendall(head)
    outcome = {}

    def send_rest():
        try:
            # As a client on a slow uplink would: 8 KiB every 20 ms.
            for _ in range(64):
                s.sendall(b"x" * 8192)
                time.sleep(0.02)
            outcome["send"] = "all 512 KiB sent"
        except OSError as e:
            outcome["send"] = f"send failed: {e.__class__.__name__}"

    import threading
    t = threading.Thread(target=send_rest)
    t.start()
    got, end = b"", None
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            end = "RESET"
            break
        except socket.timeout:
            end = "still open"
            break
        if not chunk:
            end = "EOF"
            break
        got += chunk
    t.join()
    s.close()
    return (head_of(got)[0] if got else "(nothing)"), end, outcome.get("send")


def idle_connections(addr, n):
    conns = []
    for _ in range(n):
        try:
            s = socket.socket()
            s.settimeout(2)
            s.connect(addr)
            conns.append(s)
        except OSError:
            s.close()
    return conns


def probe_emfile(addr, pid):
    subprocess.run(["prlimit", "--pid", str(pid), "--nofile=256:256"], check=True)
    print(f"server: {fds(pid)} descriptors open, limit 256; {threads(pid)} threads")
    conns = idle_connections(addr, 600)
    time.sleep(2)
    print(f"opened {len(conns)} idle connections; server: {fds(pid)} descriptors, "
          f"{threads(pid)} threads; GET /healthz now: {get(addr, timeout=2)}")
    for s in conns:
        s.close()
    closed = time.monotonic()
    print("closed every connection")
    while time.monotonic() - closed < 30:
        status = get(addr, timeout=1)
        alive = proc_alive(pid)
        if status.startswith("HTTP/1.1 200"):
            print(f"GET /healthz answered 200 {time.monotonic() - closed:.1f} s after the "
                  f"clients closed")
            return
        time.sleep(0.5)
    print(f"GET /healthz still not answered 30 s after the clients closed (last: {status}); "
          f"process alive: {proc_alive(pid)}; {fds(pid)} descriptors, {threads(pid)} threads")


def proc_alive(pid):
    return os.path.exists(f"/proc/{pid}")


def probe_cap(addr, pid, cap):
    n = (cap or 1024) + 10
    before = threads(pid)
    conns = idle_connections(addr, n)
    time.sleep(1.5)
    print(f"{len(conns)} idle connections: server threads {before} -> {threads(pid)}, "
          f"descriptors {fds(pid)}")
    # What did the last ten connections get without sending anything?
    for s in conns[-10:]:
        s.settimeout(0.5)
    seen = {}
    for s in conns[-10:]:
        try:
            data = s.recv(4096)
            key = head_of(data)[0] + " Retry-After=" + repr(head_of(data)[1].get("retry-after")) \
                + " Connection=" + repr(head_of(data)[1].get("connection")) if data else "EOF"
        except socket.timeout:
            key = "nothing (open)"
        except ConnectionResetError:
            key = "RESET"
        seen[key] = seen.get(key, 0) + 1
    print(f"the last 10 connections received: {seen}")
    print(f"a fresh GET /healthz: {get(addr, timeout=2)}")
    for s in conns:
        s.close()


def probe_budget(addr, pid):
    body = 16 * 1024 * 1024
    head = (f"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {body}\r\n\r\n").encode()
    big = []
    for i in range(17):
        s = socket.create_connection(addr)
        try:
            s.sendall(head + b" " * (body - 1))
        except OSError as e:
            s.settimeout(1)
            try:
                answer = head_of(s.recv(4096))[0]
            except OSError:
                answer = "nothing"
            print(f"16 MiB body {i}: sending failed ({e.__class__.__name__}); answer: {answer!r}")
        big.append(s)
    time.sleep(1)
    slow = []
    for _ in range(2):
        s = socket.create_connection(addr)
        s.sendall(head.replace(str(body).encode(), b"1000") + b"{")
        s.settimeout(3)
        slow.append(s)
    time.sleep(0.5)
    for i, s in enumerate(slow):
        try:
            data = s.recv(4096)
            h = head_of(data)
            print(f"slow body {i}: {h[0]!r} Retry-After={h[1].get('retry-after')!r} "
                  f"Connection={h[1].get('connection')!r}")
        except socket.timeout:
            print(f"slow body {i}: no answer within 3 s (a worker is reading it)")
    started = time.monotonic()
    status = get(addr, timeout=30)
    print(f"fresh GET /healthz: {status} in {time.monotonic() - started:.2f} s")
    for s in big + slow:
        s.close()


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, probe, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
    if probe == "budget" and "--workers" not in extra:
        extra += ["--workers", "2"]
    proc, addr, tmp = start(binary, extra)
    try:
        if probe == "headers":
            probe_headers(addr, proc.pid)
        elif probe == "refusals":
            probe_refusals(addr, proc.pid)
        elif probe == "emfile":
            probe_emfile(addr, proc.pid)
        elif probe == "cap":
            cap = None
            if "--max-connections" in extra:
                cap = int(extra[extra.index("--max-connections") + 1])
            probe_cap(addr, proc.pid, cap)
        elif probe == "budget":
            probe_budget(addr, proc.pid)
        else:
            sys.exit(__doc__)
    finally:
        proc.kill()
        proc.wait()
        log = open(os.path.join(tmp, "stderr.log"), "rb").read().decode("utf-8", "replace")
        lines = [l for l in log.splitlines() if l.strip()]
        print(f"server stderr: {len(lines)} lines" + (f", e.g. {lines[:3]}" if lines else ""))
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
