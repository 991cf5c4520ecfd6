#!/usr/bin/env bash
# tests/e2e/run.sh: a quick end-to-end check of `basalt serve` with real Kafka clients.
#
# Installs kcat and the confluent-kafka Python package if they are missing, starts the broker
# (from $BASALT_BIN, or built with cargo) on a free loopback port over a temporary data
# directory, produces and consumes with kcat, runs tests/e2e/python_client.py and
# tests/e2e/python_group.py (consumer groups, both protocols) and tests/e2e/kafkajs_txn.js
# (transactions with kafkajs, installed with npm into the temporary directory), then stops the
# broker with SIGTERM and expects exit code 0.
#
# The last line printed is "N passed, M failed"; the exit code is non-zero if anything failed.

set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/basalt-e2e.XXXXXX")
DATA="$WORK/data"
LOG="$WORK/broker.log"
PASSED=0
FAILED=0
BROKER_PID=""

pass() { echo "PASS: $1"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $1"; FAILED=$((FAILED + 1)); }
finish() {
    if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -KILL "$BROKER_PID" 2>/dev/null
        wait "$BROKER_PID" 2>/dev/null
    fi
    if [ "$FAILED" -gt 0 ] && [ -f "$LOG" ]; then
        echo "--- broker log (last 40 lines) ---"
        tail -n 40 "$LOG"
    fi
    rm -rf "$WORK"
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
    exit $?
}

# --- Tools -----------------------------------------------------------------------------------
if ! command -v kcat >/dev/null 2>&1; then
    echo "installing kcat"
    if ! apt-get install -y kcat >/dev/null 2>&1; then
        apt-get update >/dev/null 2>&1 && apt-get install -y kcat >/dev/null 2>&1
    fi
fi
if command -v kcat >/dev/null 2>&1; then pass "kcat available"; else fail "kcat available"; finish; fi

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import confluent_kafka' >/dev/null 2>&1; then
    echo "installing confluent-kafka"
    "$PYTHON" -m pip install --quiet confluent-kafka >/dev/null 2>&1
fi
if "$PYTHON" -c 'import confluent_kafka' >/dev/null 2>&1; then
    pass "confluent-kafka available"
else
    fail "confluent-kafka available"; finish
fi

KAFKAJS_DIR="$WORK/node"
mkdir -p "$KAFKAJS_DIR"
if command -v node >/dev/null 2>&1 \
    && (cd "$KAFKAJS_DIR" && npm install --silent --no-audit --no-fund kafkajs@2.2.4 >/dev/null 2>&1); then
    pass "kafkajs available"
else
    fail "kafkajs available (node and npm)"; finish
fi

# --- Broker ----------------------------------------------------------------------------------
BIN=${BASALT_BIN:-}
if [ -z "$BIN" ]; then
    echo "building basalt"
    if ! (cd "$ROOT" && cargo build --quiet -p basalt --bin basalt); then
        fail "build basalt"; finish
    fi
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/basalt"
fi
if [ ! -x "$BIN" ]; then fail "basalt binary at $BIN"; finish; fi

RUST_LOG=info "$BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA" 2>"$LOG" &
BROKER_PID=$!
ADDR=""
for _ in $(seq 1 300); do
    ADDR=$(sed -n 's/.*basalt is serving the Kafka protocol.*listen=\([^ ]*\).*/\1/p' "$LOG" | head -n 1)
    [ -n "$ADDR" ] && break
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
done
if [ -n "$ADDR" ]; then pass "broker serving on $ADDR"; else fail "broker started"; finish; fi

# --- kcat ------------------------------------------------------------------------------------
KCAT=(timeout 30 kcat -b "$ADDR" -X socket.timeout.ms=10000)

if printf 'one\ntwo\nthree\n' | "${KCAT[@]}" -P -t lines \
    && [ "$("${KCAT[@]}" -C -t lines -o beginning -e -q -c 3)" = "$(printf 'one\ntwo\nthree')" ]; then
    pass "kcat produce and consume lines"
else
    fail "kcat produce and consume lines"
fi

if printf 'k1:v1\nk2:v2\nk1:v3\n' | "${KCAT[@]}" -P -K: -t keyed \
    && [ "$("${KCAT[@]}" -C -t keyed -o beginning -e -q -c 3 -f '%k=%s@%o\n')" \
        = "$(printf 'k1=v1@0\nk2=v2@1\nk1=v3@2')" ]; then
    pass "kcat keyed records (-K:)"
else
    fail "kcat keyed records (-K:)"
fi

if seq 1 500 | "${KCAT[@]}" -P -t compressed -z lz4 \
    && [ "$("${KCAT[@]}" -C -t compressed -o beginning -e -q -c 500 | awk '{s += $1} END {print s}')" = "125250" ]; then
    pass "kcat lz4-compressed records"
else
    fail "kcat lz4-compressed records"
fi

if "${KCAT[@]}" -L -t keyed | grep -q 'topic "keyed" with 1 partitions'; then
    pass "kcat metadata"
else
    fail "kcat metadata"
fi

# --- confluent-kafka -------------------------------------------------------------------------
if timeout 120 "$PYTHON" "$ROOT/tests/e2e/python_client.py" "$ADDR"; then
    pass "python client: admin, idempotent zstd producer, assign consumer"
else
    fail "python client: admin, idempotent zstd producer, assign consumer"
fi

if timeout 180 "$PYTHON" "$ROOT/tests/e2e/python_group.py" "$ADDR"; then
    pass "python client: consumer groups (classic and KIP-848), commits"
else
    fail "python client: consumer groups (classic and KIP-848), commits"
fi

# --- kafkajs ---------------------------------------------------------------------------------
if NODE_PATH="$KAFKAJS_DIR/node_modules" timeout 120 node "$ROOT/tests/e2e/kafkajs_txn.js" "$ADDR"; then
    pass "kafkajs: transactions commit and abort, offsets sent with the transaction"
else
    fail "kafkajs: transactions commit and abort, offsets sent with the transaction"
fi

# --- Shutdown --------------------------------------------------------------------------------
kill -TERM "$BROKER_PID"
STATUS=""
for _ in $(seq 1 300); do
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        wait "$BROKER_PID"
        STATUS=$?
        break
    fi
    sleep 0.1
done
if [ "$STATUS" = "0" ]; then
    BROKER_PID=""
    pass "SIGTERM stops the broker with exit code 0"
else
    fail "SIGTERM stops the broker with exit code 0 (got ${STATUS:-no exit})"
fi

finish
