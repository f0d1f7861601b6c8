#!/usr/bin/env bash
# The "durable" load-test scenario: small rooms against a server whose op log is PostgreSQL with fsync on.
# Creates a throwaway PostgreSQL cluster (initdb in a temp dir, trust auth, 127.0.0.1 on a free port), pins it to
# the server's CPU (PG_CPUS, default 0: storage is part of the server's budget), runs the generator with
# --spawn-server (server on CPU 0, generator on CPU 1), then prints PostgreSQL's own view of the run (WAL written and
# flushed, checkpoints, autovacuum of the op log), keeps its log in loadtest/results and deletes the cluster.
#
#   scripts/loadtest-durable.sh [loadtest options...]     e.g. --rate 5,10,20,40 --duration 20 --warmup 5
#
# PG_SCHED puts PostgreSQL in the same scheduling class as the server when the load tool runs the server in one:
# e.g. PG_SCHED="chrt -f 1" with the tool itself under `chrt -f 1` (docs/PERFORMANCE.md, "Durable PostgreSQL: where
# the commit time goes"). Without it a server at nice -20 or in SCHED_FIFO takes the core from its own database.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_CPUS="${PG_CPUS:-0}"
read -r -a PG_SCHED_CMD <<<"${PG_SCHED:-}"
ROOT="$(mktemp -d /tmp/collab-lt-pg-XXXXXX)"
PORT="${PG_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"

# PostgreSQL refuses to run as root: run its tools as the postgres user then.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$(id -u)" -eq 0 ]; then chown postgres "$ROOT"; fi

as_pg initdb -D "$ROOT/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
# max_connections: the server's Npgsql pool grows to its default Maximum Pool Size (100) when the 200 documents load
# at once; the default of 100 would leave no slot for psql to look at the run (pg_stat_activity).
cat >>"$ROOT/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$ROOT'
fsync = on
synchronous_commit = on
max_connections = 150
shared_buffers = 256MB
logging_collector = off
log_checkpoints = on
log_autovacuum_min_duration = 0
track_wal_io_timing = on
CONF

psql_pg() { psql -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -X -q "$@"; }
cleanup() {
  if psql_pg -c 'SELECT 1' >/dev/null 2>&1; then
    echo "postgres: WAL (records, full-page images, bytes, writes, syncs, write ms, sync ms) and checkpoints:"
    psql_pg -At -c "SELECT wal_records, wal_fpi, wal_bytes, wal_write, wal_sync, round(wal_write_time), round(wal_sync_time) FROM pg_stat_wal" || true
    psql_pg -At -c "SELECT 'checkpoints timed ' || checkpoints_timed || ', requested ' || checkpoints_req || ', buffers ' || buffers_checkpoint FROM pg_stat_bgwriter" || true
    psql_pg -At -c "SELECT 'op log: ' || coalesce(sum(n_tup_ins), 0) || ' rows, ' || coalesce(sum(autovacuum_count), 0) || ' autovacuums, ' || pg_size_pretty(coalesce(sum(pg_total_relation_size(relid)), 0)) FROM pg_stat_user_tables WHERE relname LIKE 'ops%'" || true
  fi
  as_pg pg_ctl -D "$ROOT/data" -m fast -w stop >/dev/null 2>&1 || true
  mkdir -p loadtest/results && cp "$ROOT/postgres.log" "loadtest/results/postgres-$(date -u +%Y%m%d-%H%M%S).log" 2>/dev/null || true
  rm -rf "$ROOT"
}
trap cleanup EXIT

if [ "$(id -u)" -eq 0 ]; then
  "${PG_SCHED_CMD[@]}" runuser -u postgres -- taskset -c "$PG_CPUS" pg_ctl -D "$ROOT/data" -l "$ROOT/postgres.log" -w start >/dev/null
else
  "${PG_SCHED_CMD[@]}" taskset -c "$PG_CPUS" pg_ctl -D "$ROOT/data" -l "$ROOT/postgres.log" -w start >/dev/null
fi
echo "postgres: 127.0.0.1:$PORT (CPUs $PG_CPUS${PG_SCHED:+, $PG_SCHED}, fsync on, data $ROOT/data)"

dotnet run -c Release --project loadtest -- durable --spawn-server \
  --postgres "Host=127.0.0.1;Port=$PORT;Username=postgres;Database=postgres" "$@"
