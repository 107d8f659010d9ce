#!/usr/bin/env bash
# A small Redis Cluster on loopback for tests and figures: 3 masters, each with one replica.
#
#   scripts/redis-cluster.sh start [BASE_PORT] [DIR]   start it, wait until it serves, print
#                                                      its address (redis://127.0.0.1:PORT,...)
#   scripts/redis-cluster.sh stop  [BASE_PORT] [DIR]   stop its nodes, delete DIR
#
# Nodes listen on 127.0.0.1:BASE_PORT .. BASE_PORT+5 (default 17100; cluster bus: +10000).
# DIR (default ${TMPDIR:-/tmp}/aifm-redis-BASE_PORT) holds configs, logs and pid files
# (redis-PORT.pid). NODE_TIMEOUT_MS (default 1000) is cluster-node-timeout: a killed master's
# replica is promoted a little after it. Needs redis-server and redis-cli (Debian:
# `apt-get install redis-server`). Nothing is persisted: no RDB, no AOF.
set -euo pipefail

cmd=${1:-}
base=${2:-17100}
dir=${3:-${TMPDIR:-/tmp}/aifm-redis-$base}
node_timeout=${NODE_TIMEOUT_MS:-1000}
ports=$(seq "$base" $((base + 5)))

die() { echo "redis-cluster.sh: $*" >&2; exit 1; }

stop() {
    for p in $ports; do
        pidf="$dir/redis-$p.pid"
        [ -f "$pidf" ] || continue
        pid=$(cat "$pidf")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$dir"
}

start() {
    command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
    command -v redis-cli >/dev/null || die "redis-cli not found (apt-get install redis-server)"
    stop
    mkdir -p "$dir"
    for p in $ports; do
        cat >"$dir/redis-$p.conf" <<CONF
port $p
bind 127.0.0.1
protected-mode yes
daemonize yes
pidfile $dir/redis-$p.pid
logfile $dir/redis-$p.log
dir $dir
dbfilename dump-$p.rdb
save ""
appendonly no
cluster-enabled yes
cluster-config-file nodes-$p.conf
cluster-node-timeout $node_timeout
cluster-replica-validity-factor 0
cluster-require-full-coverage no
CONF
        redis-server "$dir/redis-$p.conf"
    done
    for p in $ports; do
        for _ in $(seq 100); do
            redis-cli -p "$p" ping >/dev/null 2>&1 && break
            sleep 0.1
        done
        redis-cli -p "$p" ping >/dev/null 2>&1 || die "node $p did not start (see $dir/redis-$p.log)"
    done
    # shellcheck disable=SC2046
    redis-cli --cluster create $(for p in $ports; do printf '127.0.0.1:%s ' "$p"; done) \
        --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
        || die "cluster create failed (see $dir/create.log)"
    # Ready: every node sees a full, healthy cluster and every replica's link is up.
    for _ in $(seq 300); do
        ok=1
        for p in $ports; do
            info=$(redis-cli -p "$p" cluster info 2>/dev/null || true)
            grep -q '^cluster_state:ok' <<<"$info" || ok=0
            grep -q '^cluster_known_nodes:6' <<<"$info" || ok=0
            repl=$(redis-cli -p "$p" info replication 2>/dev/null || true)
            if grep -q '^role:slave' <<<"$repl"; then
                grep -q '^master_link_status:up' <<<"$repl" || ok=0
            else
                grep -q '^connected_slaves:1' <<<"$repl" || ok=0
            fi
        done
        [ "$ok" = 1 ] && break
        sleep 0.1
    done
    [ "$ok" = 1 ] || die "cluster did not become ready (see $dir)"
    echo "redis://$(for p in $ports; do printf '127.0.0.1:%s,' "$p"; done | sed 's/,$//')"
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    *) die "usage: $0 start|stop [BASE_PORT] [DIR]" ;;
esac
