#!/usr/bin/env bash
# The load-test figures of docs/PERFORMANCE.md ("Load tests"), one run after another, each with its own freshly
# spawned server (CPU 0) and the generator on CPU 1. Results (JSON + PNG + server logs) go to loadtest/results/.
# Run it on an otherwise idle machine: T and W are short (20 s + 5 s warm-up), like the peer benchmarks.
#
#   scripts/loadtest-suite.sh [all|light|ramp|rich|big|idle|storm|durable]
set -uo pipefail
cd "$(dirname "$0")/.."

WHICH="${1:-all}"
T="${T:-20}"; W="${W:-5}"
RAMP="${RAMP:-5,10,20,40,60,80}"
BIG_RATES="${BIG_RATES:-2,5,10,15}"
IDLE_NS="${IDLE_NS:-1000 5000 19000}"

{ dotnet build -c Release loadtest -nologo -v q && dotnet build -c Release src/Server -nologo -v q; } >/dev/null || exit 1
lt() { dotnet run -c Release --no-build --project loadtest -- "$@" --spawn-server --duration "$T" --warmup "$W" --quiet || echo "run failed: $*" >&2; }

case "$WHICH" in all|light)
  lt small --rate 1 --label light
  lt small --rate 1 --submit one-in-flight --label light-one-in-flight ;; esac
case "$WHICH" in all|ramp)
  lt small --rate "$RAMP" --label ramp
  lt small --rate "$RAMP" --submit one-in-flight --label ramp-one-in-flight ;; esac
case "$WHICH" in all|rich)
  # rich-text beside text in one sitting: light load and small rooms at 10 and 20 ops/s per writer
  for type in text rich-text; do
    lt small --rate 1 --type "$type" --label "light-$type"
    lt small --rate 10,20 --no-ramp-stop --type "$type" --label "small-$type"
  done ;; esac
case "$WHICH" in all|big)
  lt big --rate "$BIG_RATES" --no-ramp-stop --label big
  lt big --rate "$BIG_RATES" --no-ramp-stop --submit one-in-flight --label big-one-in-flight ;; esac
case "$WHICH" in all|idle)
  for n in $IDLE_NS; do
    dotnet run -c Release --no-build --project loadtest -- idle --connections "$n" --spawn-server --quiet --label "idle-$n" || echo "run failed: idle $n" >&2
  done ;; esac
case "$WHICH" in all|storm)
  lt storm --rate 1 --label storm
  lt storm --rate 1 --reconnect-delay 0 --label storm-at-once ;; esac
case "$WHICH" in all|durable)
  scripts/loadtest-durable.sh --rate "$RAMP" --duration "$T" --warmup "$W" --quiet --label durable || echo "run failed: durable" >&2 ;; esac
