#!/usr/bin/env bash
# Starts a local 3-node Collab cluster for trying it out: nats-server, a throwaway PostgreSQL, and three nodes on
# ws://127.0.0.1:8081/ws, :8082 and :8083 (any client may use any node; each document is sequenced by one of them).
# Everything lives in a temporary directory and is stopped and removed on Ctrl-C.
#   scripts/cluster.sh                 # ports 8081-8083, NATS 4222, PostgreSQL 5434
#   BASE_PORT=9001 NATS_PORT=4333 PG_PORT=5544 scripts/cluster.sh
# Needs the .NET 10 SDK, nats-server and PostgreSQL 15 (scripts/install-test-deps.sh installs them on Debian).
set -euo pipefail
cd "$(dirname "$0")/.."

base_port=${BASE_PORT:-8081}
nats_port=${NATS_PORT:-4222}
pg_port=${PG_PORT:-5434}
nodes=${NODES:-3}
work=$(mktemp -d -t collab-cluster-XXXXXX)
pids=()

cleanup() {
  trap - INT TERM EXIT
  echo
  echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  scripts/local-postgres.sh stop "$work/postgres" >/dev/null 2>&1 || true
  rm -rf "$work"
  echo "stopped; removed $work"
}
trap cleanup INT TERM EXIT

command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || { echo "nats-server is not installed (scripts/install-test-deps.sh)" >&2; exit 1; }
nats_bin=$(command -v nats-server || echo /usr/sbin/nats-server)

echo "building the server (Release)..."
dotnet build src/Server -c Release -nologo -v quiet -clp:ErrorsOnly >/dev/null
server_dll=src/Server/bin/Release/net10.0/Collab.Server.dll

echo "starting PostgreSQL on 127.0.0.1:$pg_port..."
[ "$(id -u)" -eq 0 ] && chmod 755 "$work"
postgres=$(scripts/local-postgres.sh start "$work/postgres" "$pg_port")

echo "starting nats-server on 127.0.0.1:$nats_port..."
"$nats_bin" -a 127.0.0.1 -p "$nats_port" -l "$work/nats.log" &
pids+=($!)

for i in $(seq 1 "$nodes"); do
  port=$((base_port + i - 1))
  mkdir -p "$work/node$i"
  dotnet "$server_dll" --port "$port" --node-id "node$i" \
    --Transport:ListenAddress=127.0.0.1 \
    --postgres "$postgres" \
    --nats "nats://127.0.0.1:$nats_port" \
    --Storage:DataDirectory="$work/node$i" >"$work/node$i.log" 2>&1 &
  pids+=($!)
done

for i in $(seq 1 "$nodes"); do
  port=$((base_port + i - 1))
  for _ in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 || { echo "node$i did not become ready; see $work/node$i.log" >&2; tail -20 "$work/node$i.log" >&2; exit 1; }
  echo "node$i ready: ws://127.0.0.1:$port/ws   (log: $work/node$i.log, metrics: http://127.0.0.1:$port/metrics)"
done

echo
echo "PostgreSQL: $postgres"
echo "NATS:       nats://127.0.0.1:$nats_port (log: $work/nats.log)"
echo "Try: kill -9 one node's process and watch the others take its documents over (collab_cluster_owned_documents)."
echo "Ctrl-C stops everything."
wait
