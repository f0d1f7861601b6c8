#!/usr/bin/env bash
# The "durable" load-test scenario: small rooms against a server whose op log is PostgreSQL with fsync on.
# Creates a throwaway PostgreSQL cluster (initdb in a temp dir, trust auth, 127.0.0.1 on a free port), pins it to
# the server's CPU (PG_CPUS, default 0: storage is part of the server's budget), runs the generator with
# --spawn-server (server on CPU 0, generator on CPU 1), then stops and deletes the cluster.
#
#   scripts/loadtest-durable.sh [loadtest options...]     e.g. --rate 5,10,20,40 --duration 20 --warmup 5
set -euo pipefail
cd "$(dirname "$0")/.."

PG_CPUS="${PG_CPUS:-0}"
ROOT="$(mktemp -d /tmp/collab-lt-pg-XXXXXX)"
PORT="${PG_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"

# PostgreSQL refuses to run as root: run its tools as the postgres user then.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$(id -u)" -eq 0 ]; then chown postgres "$ROOT"; fi

as_pg initdb -D "$ROOT/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
cat >>"$ROOT/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$ROOT'
fsync = on
synchronous_commit = on
max_connections = 100
shared_buffers = 256MB
logging_collector = off
CONF

cleanup() {
  as_pg pg_ctl -D "$ROOT/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$ROOT"
}
trap cleanup EXIT

as_pg taskset -c "$PG_CPUS" pg_ctl -D "$ROOT/data" -l "$ROOT/postgres.log" -w start >/dev/null
echo "postgres: 127.0.0.1:$PORT (CPUs $PG_CPUS, fsync on, data $ROOT/data)"

dotnet run -c Release --project loadtest -- durable --spawn-server \
  --postgres "Host=127.0.0.1;Port=$PORT;Username=postgres;Database=postgres" "$@"
