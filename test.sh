#!/usr/bin/env bash
# Runs every test of tracelake: Rust unit + integration tests (including the sqllogictest
# files under sql/), then the Python end-to-end tests with real third-party clients.
# Needs only Rust and Python 3; installs the pinned Python packages into a venv.
set -euo pipefail
cd "$(dirname "$0")"

TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
VENV="${TRACELAKE_VENV:-$PWD/.venv-test}"

# One cargo invocation: `cargo test` also builds the `tracelake` binary (its integration tests
# need it), and a separate `cargo build` would resolve features without dev-dependencies and
# compile DataFusion a second time.
echo "== cargo test (also builds target/debug/tracelake)"
cargo test --workspace

echo "== python venv ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha"
want="$(sha256sum tests/clients/requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
  echo "$want" > "$stamp"
fi

echo "== python end-to-end tests"
TRACELAKE_BIN="$TARGET_DIR/debug/tracelake" "$VENV/bin/python" -m pytest -q tests/clients
