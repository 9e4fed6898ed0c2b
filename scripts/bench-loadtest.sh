#!/usr/bin/env bash
# bench-loadtest.sh — Herald against Mosquitto, same sessions and publish
# pattern, one run, everything on loopback. `make bench` calls it.
#
# Starts HERALD_BENCH_REPLICAS gateway processes (`--roles broker,web`, each
# with its own data dir and port) and one Mosquitto with a WebSocket
# listener, runs `herald loadtest` against both and writes the report
# (report.md, results.json, PNG plots, gateway pprof profiles) under
# HERALD_BENCH_OUT. With HERALD_BENCH_BIG=1 it then runs the whole-box
# Herald run (HERALD_BENCH_BIG_SESSIONS over HERALD_BENCH_BIG_REPLICAS
# gateways; Mosquitto is one process, bounded by its own file limit, so it
# is not part of that run).
#
# Knobs (environment):
#   HERALD_BIN                 herald binary              (bin/herald)
#   HERALD_BENCH_OUT           report directory           (docs/bench)
#   HERALD_BENCH_SESSIONS      sessions per target        (15000)
#   HERALD_BENCH_REPLICAS      gateway processes          (1)
#   HERALD_BENCH_RATES         events/s, each held for    (30000,60000)
#   HERALD_BENCH_DURATION      ... this long              (10s)
#   HERALD_BENCH_QOS           0 or 1                     (0)
#   HERALD_BENCH_RAMP          connects/s                 (2000)
#   HERALD_BENCH_SETTLE        wait after the ramp before the idle memory
#                              reading                    (3s)
#   HERALD_BENCH_PUBLISHERS    service connections per worker per target; a list
#                              (2,8) runs every rate with each count    (2,8)
#   HERALD_BENCH_PIN           off, on or both: servers pinned to the first CPU,
#                              the load generator to the last (taskset)  (both)
#   HERALD_BENCH_MOSQUITTO     0 skips Mosquitto          (1)
#   HERALD_BENCH_BIG           1 adds the whole-box run   (0)
#   HERALD_BENCH_COMPARE       0 skips the Herald/Mosquitto comparison (1)
#   HERALD_BENCH_BIG_SESSIONS  (100000; 0 skips the whole-box run)   HERALD_BENCH_BIG_REPLICAS (6)
#   HERALD_BENCH_BIG_RATES     (20000,60000)      HERALD_BENCH_BIG_QOS (1)
#   HERALD_BENCH_SINGLE_SESSIONS  with BIG=1, also one gateway process this full (19500)
#   HERALD_BENCH_KEEP_LOGS     1 copies the gateways' logs to HERALD_BENCH_OUT (0)
#   HERALD_BENCH_GATEWAY_ENV   extra environment for the gateway processes only
#                              (none: `herald serve` as it runs by default)
set -euo pipefail

BIN=${HERALD_BIN:-bin/herald}
OUT=${HERALD_BENCH_OUT:-docs/bench}
SESSIONS=${HERALD_BENCH_SESSIONS:-15000}
REPLICAS=${HERALD_BENCH_REPLICAS:-1}
RATES=${HERALD_BENCH_RATES:-30000,60000}
DURATION=${HERALD_BENCH_DURATION:-10s}
QOS=${HERALD_BENCH_QOS:-0}
RAMP=${HERALD_BENCH_RAMP:-2000}
SETTLE=${HERALD_BENCH_SETTLE:-3s}
PUBLISHERS=${HERALD_BENCH_PUBLISHERS:-2,8}
PIN=${HERALD_BENCH_PIN:-both}
WITH_MOSQ=${HERALD_BENCH_MOSQUITTO:-1}
BIG=${HERALD_BENCH_BIG:-0}
COMPARE=${HERALD_BENCH_COMPARE:-1}
BIG_SESSIONS=${HERALD_BENCH_BIG_SESSIONS:-100000}
BIG_REPLICAS=${HERALD_BENCH_BIG_REPLICAS:-6}
BIG_RATES=${HERALD_BENCH_BIG_RATES:-20000,60000}
BIG_QOS=${HERALD_BENCH_BIG_QOS:-1}
SINGLE_SESSIONS=${HERALD_BENCH_SINGLE_SESSIONS:-19500}
read -r -a GATEWAY_ENV <<<"${HERALD_BENCH_GATEWAY_ENV-}"
MOSQUITTO=${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}

[[ -x $BIN ]] || { echo "bench-loadtest: $BIN not built (make build)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d "${TMPDIR:-/tmp}/herald-bench.XXXXXX")
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [[ ${HERALD_BENCH_KEEP_LOGS:-0} == 1 ]]; then cp "$WORK"/*.log "$OUT"/ 2>/dev/null || true; fi
	rm -rf "$WORK"
}
trap cleanup EXIT

# free_port prints a loopback TCP port nobody listens on, below the
# ephemeral range so the load generator's own sockets cannot take it.
USED_PORTS=" "
free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((10000 + RANDOM % 20000))
		if [[ $USED_PORTS != *" $p "* ]] && ! ss -Htln "sport = :$p" | grep -q .; then
			USED_PORTS+="$p "
			echo "$p"
			return
		fi
	done
	echo "bench-loadtest: no free port" >&2
	exit 1
}

wait_http() { # url
	for _ in $(seq 1 300); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench-loadtest: $1 did not come up" >&2
	exit 1
}

API_KEY="bench_$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)"
SECRET="$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40)"
cat >"$WORK/herald.yaml" <<YAML
apps:
  - id: demo
    apiKey: "$API_KEY"
    secret: "$SECRET"
    origins: ["*"]
    eventsPerSecond: 10000000
broker:
  maxConnections: 200000
  connectRatePerIP: -1
log:
  level: warn
YAML

# start_gateways N: sets URLS, GW_PIDS, PPROFS.
start_gateways() {
	local n=$1 i port lport pport
	URLS="" GW_PIDS="" PPROFS=""
	for ((i = 0; i < n; i++)); do
		port=$(free_port) lport=$(free_port) pport=$(free_port)
		mkdir -p "$WORK/gw$i"
		env "${GATEWAY_ENV[@]}" HERALD_CONFIG="$WORK/herald.yaml" HERALD_LOCALAWS_ADDR="127.0.0.1:$lport" \
			"$BIN" loadtest --gateway --pprof-addr "127.0.0.1:$pport" -- \
			serve --roles broker,web --http-addr "127.0.0.1:$port" --data-dir "$WORK/gw$i" \
			>"$WORK/gw$i.log" 2>&1 &
		PIDS+=($!)
		GW_PIDS+="${GW_PIDS:+,}$!"
		URLS+="${URLS:+,}http://127.0.0.1:$port"
		PPROFS+="${PPROFS:+,}http://127.0.0.1:$pport"
		wait_http "http://127.0.0.1:$port/readyz"
	done
}

stop_gateways() {
	local p
	for p in ${GW_PIDS//,/ }; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}

# start_mosquitto: sets MOSQ_PID and MOSQ_ARGS.
start_mosquitto() {
	local mport tport
	mport=$(free_port) tport=$(free_port)
	cat >"$WORK/mosquitto.conf" <<CONF
allow_anonymous true
persistence false
log_dest stderr
log_type error
max_connections -1
# Mosquitto 2.0.11 refuses to start with only a WebSocket listener.
listener $tport 127.0.0.1
listener $mport 127.0.0.1
protocol websockets
CONF
	"$MOSQUITTO" -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
	MOSQ_PID=$!
	PIDS+=("$MOSQ_PID")
	for _ in $(seq 1 100); do ss -Htln "sport = :$mport" | grep -q . && break; sleep 0.1; done
	MOSQ_ARGS=(--mosquitto "ws://127.0.0.1:$mport" --mosquitto-pid "$MOSQ_PID")
}

stop_mosquitto() {
	kill "$MOSQ_PID" 2>/dev/null || true
	wait "$MOSQ_PID" 2>/dev/null || true
}

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
mkdir -p "$OUT"

# --- 10k comparison: Herald and Mosquitto, same run -----------------------
if [[ $COMPARE == 1 ]]; then
start_gateways "$REPLICAS"
MOSQ_ARGS=()
if [[ $WITH_MOSQ == 1 ]]; then start_mosquitto; fi

CMD="scripts/bench-loadtest.sh (HERALD_BENCH_SESSIONS=$SESSIONS HERALD_BENCH_SETTLE=$SETTLE HERALD_BENCH_REPLICAS=$REPLICAS HERALD_BENCH_RATES=$RATES HERALD_BENCH_DURATION=$DURATION HERALD_BENCH_QOS=$QOS HERALD_BENCH_PUBLISHERS=$PUBLISHERS HERALD_BENCH_PIN=$PIN HERALD_BENCH_GATEWAY_ENV='${GATEWAY_ENV[*]}')"
HERALD_DEMO_API_KEY="$API_KEY" "$BIN" loadtest \
	--herald "$URLS" --herald-pids "$GW_PIDS" --herald-pprof "$PPROFS" "${MOSQ_ARGS[@]}" \
	--sessions "$SESSIONS" --ramp "$RAMP" --settle "$SETTLE" --rates "$RATES" --duration "$DURATION" --qos "$QOS" --publishers "$PUBLISHERS" --pin "$PIN" \
	--payload 64 --out "$OUT/loadtest-${SESSIONS}" --title "Herald vs Mosquitto, $SESSIONS WebSocket sessions" \
	--command "$CMD" --commit "$COMMIT"
stop_gateways
if [[ $WITH_MOSQ == 1 ]]; then stop_mosquitto; fi
fi

# --- one gateway process as full as its file limit allows ------------------
if [[ $BIG == 1 ]]; then
	start_gateways 1
	CMD="scripts/bench-loadtest.sh (HERALD_BENCH_BIG=1 HERALD_BENCH_SINGLE_SESSIONS=$SINGLE_SESSIONS HERALD_BENCH_GATEWAY_ENV='${GATEWAY_ENV[*]}')"
	HERALD_DEMO_API_KEY="$API_KEY" "$BIN" loadtest \
		--herald "$URLS" --herald-pids "$GW_PIDS" --herald-pprof "$PPROFS" \
		--sessions "$SINGLE_SESSIONS" --workers 2 --ramp "$RAMP" --rates 20000 --duration "$DURATION" --qos "$QOS" \
		--payload 64 --out "$OUT/loadtest-${SINGLE_SESSIONS}-1proc" --title "Herald, $SINGLE_SESSIONS sessions on one gateway process" \
		--command "$CMD" --commit "$COMMIT"
	stop_gateways
	if [[ $WITH_MOSQ == 1 ]]; then
		# Mosquitto is one process under the same file limit: its full box.
		start_mosquitto
		"$BIN" loadtest "${MOSQ_ARGS[@]}" \
			--sessions "$SINGLE_SESSIONS" --workers 2 --ramp "$RAMP" --rates 20000 --duration "$DURATION" --qos "$QOS" \
			--payload 64 --out "$OUT/mosquitto-${SINGLE_SESSIONS}-1proc" --title "Mosquitto, $SINGLE_SESSIONS sessions on one process" \
			--command "$CMD" --commit "$COMMIT"
		stop_mosquitto
	fi
fi

# --- whole-box run: many sessions over several gateway processes ----------
if [[ $BIG == 1 && $BIG_SESSIONS -gt 0 ]]; then
	start_gateways "$BIG_REPLICAS"
	CMD="scripts/bench-loadtest.sh (HERALD_BENCH_BIG=1 HERALD_BENCH_BIG_SESSIONS=$BIG_SESSIONS HERALD_BENCH_BIG_REPLICAS=$BIG_REPLICAS HERALD_BENCH_BIG_RATES=$BIG_RATES HERALD_BENCH_BIG_QOS=$BIG_QOS HERALD_BENCH_GATEWAY_ENV='${GATEWAY_ENV[*]}')"
	HERALD_DEMO_API_KEY="$API_KEY" "$BIN" loadtest \
		--herald "$URLS" --herald-pids "$GW_PIDS" --herald-pprof "$PPROFS" \
		--sessions "$BIG_SESSIONS" --ramp "$RAMP" --rates "$BIG_RATES" --duration "$DURATION" --qos "$BIG_QOS" \
		--payload 64 --out "$OUT/loadtest-${BIG_SESSIONS}" --title "Herald, $BIG_SESSIONS sessions over $BIG_REPLICAS gateway processes" \
		--command "$CMD" --commit "$COMMIT"
	stop_gateways
fi
