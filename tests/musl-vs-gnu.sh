#!/usr/bin/env bash
# tests/musl-vs-gnu.sh [N] [FIRST] -- the two x86_64 release builds, gnu (glibc,
# dynamic: `cargo build --release`) and musl (static), under the same load one
# after the other in one run: N concurrent /events streams (default 1,000) held
# by the Go load client sseload from ../shared/bench (or $BENCH), the client of
# side-by-side.sh. FIRST (gnu or musl, default gnu) runs first; alternate it
# between runs, since a shared machine drifts. Prints both columns; compare
# their ratio, not figures from different runs. The measured window is 30 s
# (WINDOW), not sseload's 10 s: /proc counts CPU in 10 ms ticks, about 22 of
# them in 10 s at 1,000 streams, so one tick would be 5 % of the figure.
# Needs Go (apt-get install golang-go) and the musl target
# (rustup target add x86_64-unknown-linux-musl).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
FIRST=${2:-gnu}
WINDOW=${WINDOW:-30s}
case $FIRST in gnu | musl) ;; *) echo "FIRST is gnu or musl, not $FIRST"; exit 1 ;; esac
BENCH=${BENCH:-$PWD/../shared/bench}
[ -d "$BENCH/sseload" ] || { echo "no $BENCH/sseload: set BENCH to the bench directory"; exit 1; }
command -v go >/dev/null || { echo "needs Go: apt-get install golang-go"; exit 1; }
cargo build --release --quiet
cargo build --release --quiet --target x86_64-unknown-linux-musl
declare -A binary=(
  [gnu]=target/release/sse-clock
  [musl]=target/x86_64-unknown-linux-musl/release/sse-clock
)
CACHE=${TMPDIR:-/tmp}/sse-bench
mkdir -p "$CACHE"
(cd "$BENCH/sseload" && go build -o "$CACHE/sseload" .)
ulimit -n "$(ulimit -Hn)"
TMP=$(mktemp -d)
server=""
trap '[ -z "$server" ] || kill "$server" 2>/dev/null; rm -rf "$TMP"' EXIT

# measure NAME: start that build on a free port, hold N streams against it
# with sseload (which reads the server's memory and CPU from /proc/<pid>),
# stop it, and let the machine settle before the next.
measure() {
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${binary[$1]}" --addr "127.0.0.1:$port" --max-connections $((N + 2000)) --quiet >/dev/null &
  server=$!
  sleep 0.7
  "$CACHE/sseload" -addr "127.0.0.1:$port" -n "$N" -pid "$server" -rate 3000 -d "$WINDOW" >"$TMP/$1.txt" 2>&1
  kill "$server"
  wait "$server" 2>/dev/null || true
  server=""
  sleep 3
}
if [ "$FIRST" = musl ]; then order=(musl gnu); else order=(gnu musl); fi
echo "load before: $(uptime)"
for name in "${order[@]}"; do measure "$name"; done
echo "load after:  $(uptime)"

# fig FILE KEY: the first KEY=value in sseload's report.
fig() { grep -o "$2=[-0-9.]*" "$1" | head -n 1 | cut -d= -f2; }
p99() { grep "$2" "$1" | grep -o 'p99=[-0-9.]*' | cut -d= -f2; }
printf '%-40s %10s %10s  (%s ran first, %s window)\n' "$N streams" gnu musl "$FIRST" "$WINDOW"
printf '%-40s %10s %10s\n' "binary bytes" "$(stat -c %s "${binary[gnu]}")" "$(stat -c %s "${binary[musl]}")"
for key in connected failed starved events; do
  printf '%-40s %10s %10s\n' "$key" "$(fig "$TMP/gnu.txt" $key)" "$(fig "$TMP/musl.txt" $key)"
done
for key in gap_dev first_event boundary_lag; do
  printf '%-40s %10s %10s\n' "$key p99 ms" "$(p99 "$TMP/gnu.txt" $key)" "$(p99 "$TMP/musl.txt" $key)"
done
for key in rss_per_client_kb kernel_stack+pagetables_per_client_kb total_per_client_kb cpu_ms_per_1000_events; do
  printf '%-40s %10s %10s\n' "$key" "$(fig "$TMP/gnu.txt" "$key")" "$(fig "$TMP/musl.txt" "$key")"
done
