#!/usr/bin/env bash
# System packages the test suite uses, installed when missing (needs root; otherwise the tests that
# need them skip with a reason): Debian's chromium + CJK fonts for the browser tests, espeak-ng and sox
# for generated test speech, libsndfile for audio decoding. Starts the local PostgreSQL if it is down.
set -euo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need+=(fonts-noto-cjk)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v sox >/dev/null || need+=(sox)
dpkg -s libsndfile1 >/dev/null 2>&1 || need+=(libsndfile1)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "not root: skipping apt-get install ${need[*]} (tests needing them will skip)" >&2
  fi
fi
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if [ -d /etc/postgresql ] && [ "$(id -u)" = "0" ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  # a cluster just started takes a few seconds to accept connections: wait (up to 60 s), so the tests find it
  for _ in $(seq 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
