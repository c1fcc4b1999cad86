#!/usr/bin/env bash
# A sorted set used as a queue (issue 19): one client pops a 30,000-member
# zset with ZPOPMIN in 10 rounds of 2,000 (redis-benchmark -c 1), then pops
# 2,000 from a fresh 30,000-member key, on a fresh `rampart dev` cluster of
# the given binary. A rate that falls round after round (while the fresh
# key is fast) means each pop pays for the pops before it.
#
#   loadtest/scripts/zpopmin-queue.sh BIN PROXY_PORT BASE_PORT LABEL
set -u
BIN=$1; PORT=$2; BASE=$3; LABEL=$4
OUT=${OUT:-/tmp/zbench}
mkdir -p "$OUT"
DIR=$OUT/data-$LABEL
setsid $BIN dev --proxy-port $PORT --base-port $BASE --data-dir $DIR --fresh --insecure > "$OUT/$LABEL.log" 2>&1 &
PID=$!
trap 'kill -- -$PID 2>/dev/null; sleep 2; kill -9 -- -$PID 2>/dev/null' EXIT
for i in $(seq 1 120); do redis-cli -p $PORT ping 2>/dev/null | grep -q PONG && break; sleep 1; done
fill() { python3 -c "
for i in range(30000): print(f'ZADD $1 {i} m{i}')
" | redis-cli -p $PORT --pipe > /dev/null; }
fill q
echo "$LABEL ZCARD q = $(redis-cli -p $PORT zcard q)"
for r in $(seq 1 10); do
  echo "$LABEL round $r: $(redis-benchmark -p $PORT -c 1 -n 2000 -q ZPOPMIN q 2>&1 | tr '\r' '\n' | grep 'requests per second' | tail -1)"
done
fill fresh
echo "$LABEL fresh key: $(redis-benchmark -p $PORT -c 1 -n 2000 -q ZPOPMIN fresh 2>&1 | tr '\r' '\n' | grep 'requests per second' | tail -1)"
echo "$LABEL ZCARD q = $(redis-cli -p $PORT zcard q), fresh = $(redis-cli -p $PORT zcard fresh)"
