#!/usr/bin/env bash
# Installs what the local stack needs, only what is missing: PostgreSQL 15 with wal2json, Java, and the
# gcloud Pub/Sub emulator; then the npm packages. Safe to run again. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

missing=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
[ -f /usr/lib/postgresql/15/lib/wal2json.so ] || missing+=(postgresql-15-wal2json)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
command -v gcloud >/dev/null 2>&1 || missing+=(google-cloud-cli)
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

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
