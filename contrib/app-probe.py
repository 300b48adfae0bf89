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

Round two (v1.2):
  memory      16 MiB bodies of several shapes (login without a token, posts and bulk
              with one): the server's peak resident memory over idle, each alone and
              four at once (the kernel's high-water mark, reset between shapes)
  backup      `postd backup` and `postd export --output` onto the live database: exit
              status, and whether the server's writes survive a restart
  framing     raw requests with lenient framing: the status of each
  escapes     `postd import` of a line whose field name holds ESC and a newline: stderr
  audit       purge with a DURATION of a million zeros; a bulk delete of 2,500 posts:
              status, and the size of the event stored
  etag        PATCH with If-Match "0<id>.01" against the tag "<id>.1"
  host        the --metrics-addr listener asked with a foreign Host
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
    if b"transfer-encoding: chunked" in hdr.lower():
        body, rest = b"", b
        while True:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size.split(b";")[0], 16)
            if n == 0: break
            body, rest = body + rest[:n], rest[n + 2:]
        b = body
    return status, hdr.decode("latin1"), b
def rss(p, field="VmRSS"):
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith(field): return int(l.split()[1])
def token_for(a, name, d, admin=False):
    if admin:
        subprocess.run([BIN, "user", "add", name, "--admin", "--db", d+"/postd.db"], env=dict(os.environ, POSTD_PASSWORD="correct-horse"), capture_output=True, check=True)
    else:
        req(a, "POST", "/auth/register", json.dumps({"username":name,"password":"correct-horse"}).encode())
    st, h, b = req(a, "POST", "/auth/login", json.dumps({"username":name,"password":"correct-horse"}).encode())
    return json.loads(b)["access_token"]
def filled(size, head, element, tail):
    n = (size - len(head) - len(tail)) // (len(element) + 1)
    body = head + ",".join([element] * n) + tail
    return (body + " " * (size - len(body))).encode()
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
elif what == "memory":
    p, a, d = start()
    tok = token_for(a, "admin", d, admin=True)
    auth = [("Authorization", "Bearer " + tok)]
    size = 16 * 1024 * 1024 - 64
    keys = ("{" + ",".join(f'"k{i:07}":0' for i in range(size // 13)) + "}")
    keys = (keys[:-1] + " " * (size - len(keys)) + "}").encode()
    posts = '{"items":[' + ",".join('{"title":"t%d","body":"%s"}' % (i, "b" * 1630) for i in range(10_000)) + "]}"
    posts = (posts[:-1] + " " * (size - len(posts)) + "}").encode()
    shapes = [
        ("login, 1.6 M unknown keys, no token", "/auth/login", keys, []),
        ('login, {"username":[0,0,...]}, no token', "/auth/login", filled(size, '{"username":[', "0", "]}"), []),
        ("POST /posts, unknown keys", "/posts", keys, auth),
        ('POST /posts, {"title":[0,0,...]}', "/posts", filled(size, '{"title":[', "0", "]}"), auth),
        ("bulk create, millions of {}", "/posts/bulk", filled(size, '{"items":[', "{}", "]}"), auth),
        ("bulk delete, millions of ids", "/posts/bulk/delete", filled(size, '{"post_ids":[', "1", "]}"), auth),
        ("bulk create, 10,000 valid posts", "/posts/bulk", posts, auth),
    ]
    req(a, "GET", "/healthz"); time.sleep(0.3); idle = rss(p)
    print(f"idle: {idle/1024:.1f} MiB")
    for name, path, body, hdrs in shapes:
        open(f"/proc/{p.pid}/clear_refs", "w").write("5")
        st = req(a, "POST", path, body, hdrs)[0]
        print(f"{name}: status {st}, peak +{(rss(p, 'VmHWM') - idle)/1024:.0f} MiB")
    open(f"/proc/{p.pid}/clear_refs", "w").write("5")
    ts = [threading.Thread(target=req, args=(a, "POST", path, body, hdrs)) for _, path, body, hdrs in shapes[:4]]
    [t.start() for t in ts]; [t.join() for t in ts]
    print(f"four at once (the first four): peak +{(rss(p, 'VmHWM') - idle)/1024:.0f} MiB")
    p.kill()
elif what == "backup":
    p, a, d = start()
    db = d + "/postd.db"
    tok = token_for(a, "alice", d)
    auth = [("Authorization", "Bearer " + tok)]
    req(a, "POST", "/posts", b'{"title":"before","body":""}', auth)
    for cmd in (["backup", db], ["export", "--output", db]):
        r = subprocess.run([BIN, *cmd, "--db", db], capture_output=True, text=True)
        print(f"postd {' '.join(cmd[:-1])} <the live database>: exit {r.returncode}: {(r.stdout + r.stderr).strip()[:160]}")
        st = req(a, "POST", "/posts", json.dumps({"title": "after " + cmd[0], "body": ""}).encode(), auth)[0]
        print(f"  a write after it: {st}")
    p.terminate(); p.wait()
    r = subprocess.run([BIN, "export", "--db", db], capture_output=True, text=True)
    c = subprocess.run([BIN, "check", "--db", db], capture_output=True, text=True)
    print(f"after a clean stop (SIGTERM), the database holds {len(r.stdout.splitlines())} posts (3 were acknowledged){(': ' + r.stderr.strip()[:100]) if r.returncode else ''}; postd check: {(c.stdout + c.stderr).strip()[:60]}")
elif what == "framing":
    p, a, d = start()
    tok = token_for(a, "alice", d)
    cases = [
        ("Transfer-Encoding: chunked, then a line Transfer-Encoding: gzip", "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", b"1e\r\n" + b'{"title":"smuggled","body":""}' + b"\r\n0\r\n\r\n"),
        ("Content-Length: +30", "Content-Length: +30\r\n", b'{"title":"smuggled","body":""}'),
        ("chunk size +1e", "Transfer-Encoding: chunked\r\n", b"+1e\r\n" + b'{"title":"smuggled","body":""}' + b"\r\n0\r\n\r\n"),
        ("chunk size ' 1e '", "Transfer-Encoding: chunked\r\n", b" 1e \r\n" + b'{"title":"smuggled","body":""}' + b"\r\n0\r\n\r\n"),
        ("a bare CR in a header value", "X-Note: a\rb\r\nContent-Length: 30\r\n", b'{"title":"smuggled","body":""}'),
    ]
    for name, extra, body in cases:
        s = socket.create_connection(a); s.settimeout(30)
        s.sendall((f"POST /posts HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nAuthorization: Bearer {tok}\r\n" + extra + "\r\n").encode() + body)
        out = b""
        while True:
            c = s.recv(65536)
            if not c: break
            out += c
        print(f"{name}: {out.split(b' ', 2)[1].decode()}")
    p.kill()
elif what == "escapes":
    p, a, d = start()
    token_for(a, "alice", d)
    p.kill()
    path = d + "/in.ndjson"
    open(path, "w").write('{"title":"t","body":"b","\\u001b[2J\\u001b[H\\nimported 0 posts":1}\n')
    r = subprocess.run([BIN, "import", path, "--as", "alice", "--db", d + "/postd.db"], capture_output=True)
    print(f"exit {r.returncode}; stderr bytes: {r.stderr!r}")
elif what == "audit":
    p, a, d = start()
    tok = token_for(a, "root", d, admin=True)
    auth = [("Authorization", "Bearer " + tok)]
    st, h, b = req(a, "POST", "/posts", b'{"title":"t","body":""}', auth)
    req(a, "DELETE", f"/posts/{json.loads(b)['id']}", b"", auth)
    st = req(a, "POST", "/admin/purge", json.dumps({"older_than": "0" * 1_000_000 + "0s"}).encode(), auth)[0]
    db = d + "/postd.db"
    import sqlite3
    c = sqlite3.connect(db)
    print(f"older_than of a million zeros: {st}; largest event detail {c.execute('select coalesce(max(length(detail)),0) from audit_events').fetchone()[0]} bytes")
    items = [{"title": f"p{i}", "body": ""} for i in range(2500)]
    st, h, b = req(a, "POST", "/posts/bulk", json.dumps({"items": items}).encode(), auth)
    ids = [x["id"] for x in json.loads(b)["items"]]
    req(a, "POST", "/posts/bulk/delete", json.dumps({"post_ids": ids}).encode(), auth)
    print(f"bulk delete of 2,500: event target_ids {c.execute('select length(target_ids), json_array_length(target_ids), count from audit_events order by id desc limit 1').fetchone()} (bytes, listed, count)")
    try:
        c.execute("insert or replace into audit_events (id, at, actor_id, action, target_ids, count, detail) select id, at, actor_id, action, target_ids, count, 'forged' from audit_events order by id desc limit 1"); c.commit()
        print("INSERT OR REPLACE of the last event: accepted, detail now", c.execute("select detail from audit_events order by id desc limit 1").fetchone()[0])
    except sqlite3.DatabaseError as e:
        print(f"INSERT OR REPLACE of the last event: refused ({e})")
    p.kill()
elif what == "etag":
    p, a, d = start()
    tok = token_for(a, "alice", d)
    auth = [("Authorization", "Bearer " + tok)]
    st, h, b = req(a, "POST", "/posts", b'{"title":"t","body":"v1"}', auth)
    pid = json.loads(b)["id"]
    st = req(a, "PATCH", f"/posts/{pid}", b'{"body":"v2"}', auth + [("If-Match", f'"0{pid}.01"')])[0]
    print(f'PATCH with If-Match "0{pid}.01" against the tag "{pid}.1": {st}')
    p.kill()
elif what == "host":
    p, a, d = start(["--metrics-addr", "127.0.0.1:0"])
    p.kill()
    d = tempfile.mkdtemp()
    p = subprocess.Popen([BIN, "serve", "--addr", "127.0.0.1:0", "--db", d+"/postd.db", "--metrics-addr", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, POSTD_LOG_FORMAT="off"), text=True)
    line = p.stdout.readline()
    m = line.split("metrics on http://")[1].split("/")[0]
    h, port = m.rsplit(":", 1)
    s = socket.create_connection((h, int(port))); s.sendall(f"GET /metrics HTTP/1.1\r\nHost: rebound.example:{port}\r\nConnection: close\r\n\r\n".encode())
    out = s.recv(65536)
    print(f"GET /metrics with Host: rebound.example: {out.split(b' ', 2)[1].decode()}")
    p.kill()
    p = subprocess.Popen([BIN, "serve", "--addr", "127.0.0.1:0", "--db", d+"/postd2.db", "--metrics-addr", "0.0.0.0:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.readline(); time.sleep(0.3); p.kill()
    warned = "beyond" in p.stderr.read()
    print(f"--metrics-addr 0.0.0.0:0: a warning at start: {warned}")

