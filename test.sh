#!/usr/bin/env bash
# Runs the whole test suite, installing what it needs first (PostgreSQL, nats-server, Node and the SDK's npm packages).
# Usage: ./test.sh [extra dotnet test arguments, e.g. --filter FullyQualifiedName~Engine]
#        ./test.sh --fast   the in-process subset (Engine, Server, SDK and load-tool tests without [Trait("Category", "Slow")]: no
#                           PostgreSQL, NATS, Node or browser; a couple of minutes), for the edit-build-test loop.
set -euo pipefail
cd "$(dirname "$0")"

fast=false
case "${1:-}" in
  --fast) fast=true; shift ;;
esac

# Each connection test holds thousands of sockets: raise the soft limit up to the hard cap.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
if $fast; then
  status=0
  for project in tests/Engine/Collab.Engine.Tests.csproj tests/Server/Collab.Server.Tests.csproj \
      tests/Client/Collab.Client.Tests.csproj tests/LoadTest/Collab.LoadTest.Tests.csproj; do
    dotnet test "$project" -c Release -nologo --filter "Category!=Slow" "$@" || status=$?
  done
  exit $status
fi

./scripts/install-test-deps.sh

dotnet build Collab.sln -c Release -nologo -clp:ErrorsOnly

results=artifacts/test-results
rm -rf "$results"
status=0
dotnet test Collab.sln -c Release --no-build --logger "trx" --results-directory "$results" \
  --logger "console;verbosity=normal" "$@" || status=$?

# The browser SDK (web/client): builds it (wire code generated from the .proto, TypeScript) and runs its unit,
# property, bundle-size and integration tests (the last against the Release server built above). Its results are
# written as TRX next to the .NET ones, so the summary below names and counts them the same way.
(cd web && COLLAB_TEST_RESULTS="$PWD/../$results" npm test --silent) || status=$?

# The failed tests by name (the console log of a long run scrolls them out of reach), then
# one plain closing line for CI, summed over every test project's TRX report.
cat "$results"/*.trx 2>/dev/null | grep -o '<UnitTestResult [^>]*outcome="\(Failed\|Error\|Timeout\)"' \
  | grep -o 'testName="[^"]*"' | sed 's/^testName="\(.*\)"$/FAILED: \1/' || true
cat "$results"/*.trx 2>/dev/null | grep -o '<Counters [^>]*' | awk '
  function attr(name,   m) { return match($0, name "=\"[0-9]+\"") ? substr($0, RSTART + length(name) + 2, RLENGTH - length(name) - 3) + 0 : 0 }
  { p += attr("passed"); f += attr("failed") + attr("error") + attr("timeout"); s += attr("notExecuted") }
  END { printf "%d passed, %d failed%s\n", p, f, (s ? ", " s " skipped" : "") }'
exit $status
