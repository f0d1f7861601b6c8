#!/usr/bin/env bash
# Starts a throwaway local PostgreSQL 15 for trying Collab against it, and prints the connection string.
#   scripts/local-postgres.sh start [dir] [port]   # default dir ./data/postgres, port 5433
#   scripts/local-postgres.sh stop  [dir]
# Then: dotnet run -c Release --project src/Server -- --postgres "Host=127.0.0.1;Port=5433;Username=postgres;Database=collab"
# PostgreSQL refuses to run as root, so as root the cluster runs as the 'postgres' user.
set -euo pipefail

cmd=${1:-start}
dir=$(realpath -m "${2:-./data/postgres}")
port=${3:-5433}
bin=$(dirname "$(command -v initdb || echo /usr/lib/postgresql/15/bin/initdb)")

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$cmd" in
  start)
    if [ ! -f "$dir/PG_VERSION" ]; then
      mkdir -p "$dir"
      [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
      as_pg "$bin/initdb" -D "$dir" -U postgres -A trust --no-instructions >/dev/null
      cat >> "$dir/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = on
synchronous_commit = on
CONF
    fi
    as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w start >/dev/null
    as_pg psql -h 127.0.0.1 -p "$port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='collab'" | grep -q 1 \
      || as_pg psql -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE collab"
    echo "Host=127.0.0.1;Port=$port;Username=postgres;Database=collab"
    ;;
  stop)
    as_pg "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null && echo "stopped"
    ;;
  *)
    echo "usage: $0 start|stop [dir] [port]" >&2; exit 2 ;;
esac
