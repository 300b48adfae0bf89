#!/usr/bin/env bash
# Schemathesis against a live postd: every operation of openapi.json is called with
# generated valid and invalid input, and every answer is checked against the document
# (status codes, content types, headers, response schemas) and for server errors, with
# schemathesis's default checks (all of them): .ci/schemathesis.toml only widens the
# statuses a few operations may refuse valid input with, each for a reason it gives, and
# the one hook makes Idempotency-Keys unique. GET /events is left out: it is a stream that
# does not end while the server runs (tests/it/events.rs tests it).
#
#   bash .ci/schemathesis.sh            # debug binary, about 3 minutes on 2 cores
#
# Environment:
#   ST_MAX_EXAMPLES  examples per operation and phase (default 40)
#   ST_MAX_TIME      time budget in seconds for schemathesis (default 150)
#   ST_WORKERS       concurrent schemathesis workers (default 1: stateful checks such as
#                    "created resource not found" assume no other client deletes meanwhile)
#   ST_SEED          seed for a reproducible run (default: random)
#   ST_ARGS          extra arguments for `st run` (e.g. "--continue-on-failure")
#   POSTD_PROFILE    debug (default) or release
#   SCHEMATHESIS_VERSION  the PyPI version installed (default pinned below)
#
# Exits non-zero when schemathesis reports a failure. The server is always stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

ST_VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
ST_MAX_EXAMPLES="${ST_MAX_EXAMPLES:-40}"
ST_MAX_TIME="${ST_MAX_TIME:-150}"
ST_WORKERS="${ST_WORKERS:-1}"
PROFILE="${POSTD_PROFILE:-debug}"
VENV=target/schemathesis-venv
REPORT_DIR=target/schemathesis-report
PASSWORD='schemathesis-password'

# The newest Python 3.13+ there is: CPython 3.11.7's ast module can crash inside
# hypothesis ("AST constructor recursion depth mismatch"), fixed in later releases.
pick_python() {
    if [ -n "${PYTHON:-}" ]; then
        echo "$PYTHON"
        return
    fi
    local candidate
    for candidate in python3.14 python3.13; do
        if "$candidate" -c '' 2>/dev/null; then
            command -v "$candidate"
            return
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        for candidate in $(ls -d "$(pyenv root)"/versions/3.1[3-9]* 2>/dev/null | sort -V -r); do
            if "$candidate/bin/python3" -c '' 2>/dev/null; then
                echo "$candidate/bin/python3"
                return
            fi
        done
    fi
    echo python3
}

# (a) schemathesis in a venv under target/, reused while it has the wanted version.
if ! "$VENV/bin/st" --version 2>/dev/null | grep -qF "$ST_VERSION"; then
    rm -rf "$VENV"
    "$(pick_python)" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi
"$VENV/bin/st" --version
"$VENV/bin/python" --version

# (b) the binary, a temporary database, a free port.
if [ "$PROFILE" = release ]; then
    cargo build --quiet --release --bin postd
else
    cargo build --quiet --bin postd
fi
BIN="target/$PROFILE/postd"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/postd-schemathesis.XXXXXX")"
DB="$WORK/postd.db"
SERVER_PID=""

cleanup() {
    # (d) always stop the server we started, and only it.
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    # The server logs in logfmt: show its warnings and errors, if any.
    if [ -s "$WORK/stderr.log" ] && grep -q 'level=\(warn\|error\)' "$WORK/stderr.log"; then
        echo "--- server stderr (warnings and errors) ---"
        grep 'level=\(warn\|error\)' "$WORK/stderr.log" | tail -n 20
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# An admin made the only way there is, before the server starts: with an admin token every
# operation, the admin-only ones included, can get past 403 to its other answers.
POSTD_PASSWORD="$PASSWORD" "$BIN" user add st-admin --admin --db "$DB" >/dev/null

# Sign-ups unthrottled: a run registers far more than 20 users from one address, and
# answering most of them 429 would leave registration itself untested (the throttle has
# its own tests in tests/it/hardening.rs).
POSTD_LOG_FORMAT=off POSTD_REGISTER_LIMIT=0 "$BIN" serve --addr 127.0.0.1:0 --db "$DB" \
    >"$WORK/stdout.log" 2>"$WORK/stderr.log" &
SERVER_PID=$!
ADDR=""
for _ in $(seq 100); do
    ADDR="$(sed -n 's|.*listening on http://\([^ ]*\).*|\1|p' "$WORK/stdout.log")"
    [ -n "$ADDR" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/stderr.log"; exit 1; }
    sleep 0.1
done
[ -n "$ADDR" ] || { echo "postd did not start"; cat "$WORK/stderr.log"; exit 1; }
BASE="http://$ADDR"
echo "postd listening on $BASE (database $DB)"

# A plain user registered over HTTP (proves signup works), then the admin's token.
TOKEN="$(python3 - "$BASE" "$PASSWORD" <<'EOF'
import json, sys, urllib.request

base, password = sys.argv[1], sys.argv[2]

def post(path, body):
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.load(response)

status, user = post("/auth/register", {"username": "st-user", "password": password})
assert status == 201, (status, user)
status, token = post("/auth/login", {"username": "st-admin", "password": password})
assert status == 200 and token["token_type"] == "Bearer", (status, token)
print(token["access_token"])
EOF
)"

# (c) the run. Schemathesis loads the document the server serves.
rm -rf "$REPORT_DIR"
SEED_ARGS=()
[ -n "${ST_SEED:-}" ] && SEED_ARGS=(--seed "$ST_SEED")
status=0
SCHEMATHESIS_HOOKS=.ci/schemathesis_hooks.py \
    "$VENV/bin/st" --config-file .ci/schemathesis.toml run "$BASE/openapi.json" \
    --url "$BASE" \
    --header "Authorization: Bearer $TOKEN" \
    --max-examples "$ST_MAX_EXAMPLES" \
    --max-time "$ST_MAX_TIME" \
    --workers "$ST_WORKERS" \
    --request-timeout 30 \
    --generation-database none \
    --report junit \
    --report-dir "$REPORT_DIR" \
    --no-color \
    --exclude-operation-id streamEvents \
    "${SEED_ARGS[@]}" ${ST_ARGS:-} || status=$?

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "postd died during the run"
    status=1
fi
exit "$status"
