#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian 12 machine that has the .NET 10 SDK:
# PostgreSQL 15 (initdb/pg_ctl/postgres on PATH), nats-server, Chromium (the page's browser tests), Node.js 20+ and npm (for the `ws`
# conformance client, the PromQL parser of the deploy/ tests and the browser SDK in web/), Prometheus and promtool
# (the deploy/ tests check the rules with promtool and scrape a running server with a real Prometheus). Idempotent: a
# machine that already has everything is left alone.
set -euo pipefail

need=()
command -v initdb >/dev/null 2>&1 || [ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || need+=(prometheus)
# Debian's Chromium for the page's browser tests (web/app/test, driven by playwright-core: Playwright's own browser
# download is not used), and a font with emoji so that their screenshots show the text as users see it.
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || need+=(chromium)
[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need+=(fonts-noto-color-emoji)

if [ ${#need[@]} -gt 0 ]; then
  echo "install-test-deps: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Debian installs the PostgreSQL binaries outside PATH; the test harness looks on PATH first.
if ! command -v initdb >/dev/null 2>&1 && [ -x /usr/lib/postgresql/15/bin/initdb ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  for b in initdb pg_ctl postgres; do $SUDO ln -sf "/usr/lib/postgresql/15/bin/$b" "/usr/local/bin/$b"; done
fi

# Node packages for the independent WebSocket client used by the transport conformance tests.
if [ -f tests/Server/node/package-lock.json ]; then
  (cd tests/Server/node && npm ci --no-audit --no-fund --loglevel=error)
fi

# The npm oracle (ShareDB's rich-text type on quill-delta) for the rich-text differential test.
if [ -f tests/Engine/oracle/package-lock.json ]; then
  (cd tests/Engine/oracle && npm ci --no-audit --no-fund --loglevel=error)
fi

# Prometheus's own PromQL grammar (@prometheus-io/lezer-promql), for the deploy/ tests that check every expression of
# the rules and the dashboard.
if [ -f tests/Integration/Deploy/node/package-lock.json ]; then
  (cd tests/Integration/Deploy/node && npm ci --no-audit --no-fund --loglevel=error)
fi

# ShareDB 7, the server the load tool compares Collab with (loadtest --target sharedb; its end-to-end tests).
if [ -f loadtest/peers/package-lock.json ]; then
  (cd loadtest/peers && npm ci --no-audit --no-fund --loglevel=error)
fi

# The browser workspace (web/): the SDK's TypeScript, buf and protoc-gen-es (wire code generation), esbuild, fast-check,
# ws; the page's CodeMirror 6 and playwright-core (which drives the Chromium installed above).
if [ -f web/package-lock.json ]; then
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
fi
