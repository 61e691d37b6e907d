#!/usr/bin/env bash
# Vendor axe-core, the accessibility engine the browser tests inject into each page they check
# (tests/browser/test_accessibility.py). The package is fetched from npm with the machine's npm
# into a temporary folder; exactly axe.min.js and its licence (MPL-2.0) are copied to
# tests/browser/vendor/. The copies are committed (the tests need no npm, nothing is served to
# people); run this again only to change the version.
#
#   bash scripts/vendor-axe.sh
set -euo pipefail
cd "$(dirname "$0")/.."

AXE_VERSION=4.14.1
out=tests/browser/vendor

command -v npm >/dev/null || { echo "npm is needed (Debian: apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npm install --prefix "$tmp" --no-audit --no-fund --ignore-scripts --no-package-lock \
  "axe-core@$AXE_VERSION" >/dev/null
axe=$tmp/node_modules/axe-core
installed=$(node -p "require('$axe/package.json').version")
[ "$installed" = "$AXE_VERSION" ] || { echo "npm installed axe-core $installed, not $AXE_VERSION" >&2; exit 1; }

mkdir -p "$out"
rm -f "$out/axe.min.js" "$out/LICENSE.axe-core.txt"
cp "$axe/axe.min.js" "$out/"
cp "$axe/LICENSE" "$out/LICENSE.axe-core.txt"   # MPL-2.0
sha256sum "$out/axe.min.js" "$out/LICENSE.axe-core.txt"
