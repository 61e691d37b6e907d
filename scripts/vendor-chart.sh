#!/usr/bin/env bash
# Vendor the console's chart library from npm (no CDN at run time, no build step):
#   bash scripts/vendor-chart.sh [version]
# Fetches chart.js with `npm pack`, checks the tarball's integrity against the registry's, and
# copies its UMD build and licence into webapp/static/vendor/ with a note of what was taken.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-4.5.1}
out=webapp/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v npm >/dev/null || { echo "npm is needed (apt-get install npm)" >&2; exit 1; }
(cd "$work" && npm pack --silent "chart.js@$version" >/dev/null)
tarball=$(ls "$work"/chart.js-*.tgz)
expected=$(npm view "chart.js@$version" dist.integrity)
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
[ "$expected" = "$actual" ] || { echo "integrity mismatch: $actual, registry says $expected" >&2; exit 1; }
tar -xzf "$tarball" -C "$work"
mkdir -p "$out"
cp "$work/package/dist/chart.umd.min.js" "$out/chart.umd.min.js"
cp "$work/package/LICENSE.md" "$out/chart.js.LICENSE.md"
cat > "$out/README.md" <<NOTE
# Vendored front-end libraries

| file | package | version | licence | integrity (npm tarball) |
| --- | --- | --- | --- | --- |
| chart.umd.min.js | chart.js | $version | MIT (chart.js.LICENSE.md) | $expected |

Made by \`bash scripts/vendor-chart.sh $version\`; do not edit the files by hand.
NOTE
echo "vendored chart.js $version into $out"
