#!/usr/bin/env python3
"""Probes postd's application layer the way a hostile client would, and prints figures.

Usage: python3 contrib/app-probe.py BINARY PROBE

BINARY is a postd binary (e.g. target/release/postd); each probe starts it on a free
loopback port with a fresh database in a temporary directory (access log off).

Probes:
  json        a body with 1k/10k/30k/50k distinct unknown keys: time and answer size
  names       12 failed logins with 4 MiB usernames: status and resident memory growth
  concurrent  20 concurrent bad logins for one name: how many 401 and 429
  proxy       30 failures from one client behind a proxy, then another client's login,
              without and with --trusted-proxies
  register    40 sign-ups from one address: how many 201 and 429
  modes       the modes of the database, its WAL and shm, and the key file
  headers     the headers of a login answer
"""
import json, os, socket, subprocess, sys, tempfile, time, threading

BIN = sys.argv[1]
def start(extra=(), env=None):
    d = tempfile.mkdtemp()
    e = dict(os.environ, POSTD_LOG_FORMAT="off", **(env or {}))
    p = subprocess.Popen([BIN, "serve", "--addr", "127.0.0.1:0", "--db", d+"/postd.db", *extra], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=e, text=True)
    line = p.stdout.readline()
    addr = line.split("http://")[1].split()[0]
    h, port = addr.rsplit(":", 1)
    return p, (h, int(port)), d
def req(addr, method, path, body=b"", headers=()):
    s = socket.create_connection(addr); s.settimeout(600)
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    for k, v in headers: head += f"{k}: {v}\r\n"
    s.sendall(head.encode() + b"\r\n" + body)
    out = b""
    while True:
        c = s.recv(65536)
        if not c: break
        out += c
    s.close()
    status = int(out.split(b" ", 2)[1]); hdr, _, b = out.partition(b"\r\n\r\n")
    return status, hdr.decode("latin1"), b
def rss(p):
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])
what = sys.argv[2]
if what == "json":
    p, a, d = start()
    for n in (1000, 10000, 30000, 50000):
        body = ("{" + ",".join(f'"k{i}":0' for i in range(n)) + "}").encode()
        t = time.time(); st, h, b = req(a, "POST", "/auth/login", body); el = time.time()-t
        print(f"{n} unknown keys: {el:.3f} s, status {st}, answer {len(b)} bytes (body in {len(body)} bytes)")
    p.kill()
elif what == "names":
    p, a, d = start()
    req(a, "POST", "/auth/register", json.dumps({"username":"victim","password":"correct-horse"}).encode())
    time.sleep(0.3); before = rss(p)
    for i in range(12):
        st, h, b = req(a, "POST", "/auth/login", json.dumps({"username": str(i)+"u"*(4<<20), "password":"wrong-password"}).encode())
    time.sleep(0.5); after = rss(p)
    print(f"12 logins with 4 MiB usernames: status {st}; RSS {before/1024:.1f} -> {after/1024:.1f} MiB (+{(after-before)/1024:.1f})")
    p.kill()
elif what == "concurrent":
    p, a, d = start()
    req(a, "POST", "/auth/register", json.dumps({"username":"target","password":"correct-horse"}).encode())
    res = []
    def go():
        res.append(req(a, "POST", "/auth/login", json.dumps({"username":"target","password":"wrong-password"}).encode())[0])
    ts = [threading.Thread(target=go) for _ in range(20)]
    [t.start() for t in ts]; [t.join() for t in ts]
    print(f"20 concurrent bad logins for one name: {res.count(401)}x401, {res.count(429)}x429 (limit 10)")
    p.kill()
elif what == "proxy":
    extra = sys.argv[3:] 
    p, a, d = start(extra)
    for i in range(30):
        req(a, "POST", "/auth/login", json.dumps({"username": f"nobody{i}", "password":"wrong-password"}).encode(), [("X-Forwarded-For", "203.0.113.5")])
    st = req(a, "POST", "/auth/login", json.dumps({"username": "innocent", "password":"wrong-password"}).encode(), [("X-Forwarded-For", "198.51.100.7")])[0]
    print(f"after 30 failures from client 203.0.113.5 behind a proxy ({' '.join(extra) or 'no --trusted-proxies'}): another client gets {st}")
    p.kill()
elif what == "register":
    p, a, d = start()
    res = []
    t = time.time()
    for i in range(40):
        res.append(req(a, "POST", "/auth/register", json.dumps({"username": f"bot{i}", "password":"correct-horse"}).encode())[0])
    print(f"40 sign-ups from one address: {res.count(201)}x201, {res.count(429)}x429 in {time.time()-t:.2f} s")
    p.kill()
elif what == "modes":
    p, a, d = start()
    req(a, "POST", "/auth/register", json.dumps({"username": "m", "password":"correct-horse"}).encode())
    for f in ("postd.db", "postd.db-wal", "postd.db-shm", "postd.key"):
        print(f, oct(os.stat(d+"/"+f).st_mode & 0o777))
    p.kill()
elif what == "headers":
    p, a, d = start()
    st, h, b = req(a, "POST", "/auth/login", json.dumps({"username": "x"*5, "password":"wrong-password"}).encode())
    print("login answer headers:", [l for l in h.split("\r\n") if l.split(":")[0].lower() in ("server","cache-control","x-content-type-options")])
    p.kill()
