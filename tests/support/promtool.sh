#!/bin/sh
# promtool with these arguments, for the tests that need it (ctest label
# promtool). When it is missing they fail, saying how to install it, rather
# than being skipped: CI must run them.
if ! command -v promtool >/dev/null 2>&1; then
  echo "promtool not found: install it with \`apt-get install prometheus\` (scripts/setup does)" >&2
  exit 1
fi
exec promtool "$@"
