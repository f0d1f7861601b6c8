#!/usr/bin/env bash
# One comparison sitting: Collab and ShareDB 7 driven by the same C# generator (loadtest --target collab,sharedb),
# each server spawned on its own pinned to CPU 0, the generator on CPU 1, every run repeated and the servers
# interleaved (a, b, a, b: drift in a shared machine's load falls on both alike); then one table with medians.
#
#   scripts/loadtest-compare.sh [OUT_DIR]          (default loadtest/results/compare-<UTC time>)
#   env: PARTS="light small big idle"  REPEAT=3  WARMUP=30  DURATION=20  NICE=-20 (0: default priority)
#        SMALL_RATES=2,4,6,8,10,15,20  SMALL_REPEAT=2  BIG_RATES=0.5,1,2,5,10,20  BIG_REPEAT=2  IDLE_CONNECTIONS=19000
#        SMALL_EXTRA / BIG_EXTRA: more loadtest options for those parts (e.g. --no-ramp-stop on a noisy machine)
#        GENERATOR_SLICE=100: the generator's scheduler slice in µs (--generator-slice; 0: the kernel's default), so its
#        own wake-ups are not what is measured (docs/PERFORMANCE.md "How it measures")
#
# light: 200 x 5 at 1 op/s (1,000 ops/s), Collab with SqliteSynchronous=Normal beside ShareDB, then Collab with the
#        default Full (an fsync per commit). small: 200 x 5 ramp, each run stops after its first step over ack p99
#        50 ms, so each server's limit is its last step within the SLO. big: 1 x 200 ramp. idle: N subscribed idle
#        connections held 70 s. All one-in-flight (ShareDB's client discipline). ShareDB keeps everything in memory.
# Servers and generator run at nice -20 by default: on a machine shared with other work, a single-threaded server
# (ShareDB) pinned to a core that others' builds also use gets a time slice in N and measures the machine instead.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-loadtest/results/compare-$(date -u +%Y%m%d-%H%M%S)}
PARTS=${PARTS:-light small big idle}
REPEAT=${REPEAT:-3}
WARMUP=${WARMUP:-30}
DURATION=${DURATION:-20}
mkdir -p "$out"

[ -d loadtest/peers/node_modules/sharedb ] || (cd loadtest/peers && npm ci --no-audit --no-fund --loglevel=error)
dotnet build src/Server -c Release -nologo -clp:ErrorsOnly
dotnet build loadtest -c Release -nologo -clp:ErrorsOnly
# The generator runs from a copy: a rebuild of the tree during the sitting cannot change it under the runs.
bin=$(mktemp -d "${TMPDIR:-/tmp}/collab-loadtest-bin.XXXXXX")
trap 'rm -rf "$bin"' EXIT
cp -r loadtest/bin/Release/net10.0/. "$bin/"

lt() {
  echo "### $(date -u +%H:%M:%S) load average $(cut -d' ' -f1-3 /proc/loadavg): loadtest $*" | tee -a "$out/sitting.log"
  dotnet "$bin/Collab.LoadTest.dll" "$@" --spawn-server --nice "${NICE:--20}" --generator-slice "${GENERATOR_SLICE:-100}" --out-dir "$out" --no-chart --quiet 2>&1 | tee -a "$out/sitting.log"
}

for part in $PARTS; do
  case $part in
    light)
      lt small --rate 1 --target collab,sharedb --repeat "$REPEAT" --warmup "$WARMUP" --duration "$DURATION" \
        --server-arg --Storage:SqliteSynchronous=Normal --label light-normal
      lt small --rate 1 --target collab --submit one-in-flight --repeat "$REPEAT" --warmup "$WARMUP" --duration "$DURATION" --label light-full
      ;;
    small)
      lt small --rate "${SMALL_RATES:-2,4,6,8,10,15,20}" --target collab,sharedb --repeat "${SMALL_REPEAT:-2}" \
        --warmup "${SMALL_WARMUP:-15}" --duration "${SMALL_DURATION:-15}" --label small ${SMALL_EXTRA:-}
      ;;
    big)
      lt big --rate "${BIG_RATES:-0.5,1,2,5,10,20}" --target collab,sharedb --repeat "${BIG_REPEAT:-2}" \
        --warmup "${BIG_WARMUP:-15}" --duration "${BIG_DURATION:-15}" --label big ${BIG_EXTRA:-}
      ;;
    idle)
      lt idle --connections "${IDLE_CONNECTIONS:-19000}" --target collab,sharedb --repeat "${IDLE_REPEAT:-2}" --label idle
      ;;
    *) echo "unknown part '$part' (light small big idle)" >&2; exit 2 ;;
  esac
done

dotnet "$bin/Collab.LoadTest.dll" compare "$out"/*.json --markdown | tee "$out/summary.md"
echo "sitting: $out (sitting.log, summary.md, one JSON report per run)"
