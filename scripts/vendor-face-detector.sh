#!/usr/bin/env bash
# Vendor the face detector the capture page loads once the camera is live (webapp/static/coach.js):
# @vladmandic/face-api's ES module (TensorFlow.js bundled in), its tiny face detector weights, the
# tiny 68-point landmark model's weights (webapp/static/performance.js reads eyes and mouth from
# them while recording), and the WebAssembly files of TensorFlow.js's wasm backend of the same version. The package is installed from
# npm into a temporary folder with the machine's npm; exactly the files served are copied to
# webapp/static/vendor/face-api/, with the licences and a SHA256SUMS file. The copied files are
# committed, so serving needs no npm; run this again only to change a version.
#
#   bash scripts/vendor-face-detector.sh
set -euo pipefail
cd "$(dirname "$0")/.."

FACE_API_VERSION=1.7.15
TFJS_VERSION=4.22.0   # the TensorFlow.js that face-api $FACE_API_VERSION bundles (dist/tfjs.version.js)
out=webapp/static/vendor/face-api

command -v npm >/dev/null || { echo "npm is needed (Debian: apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npm install --prefix "$tmp" --no-audit --no-fund --ignore-scripts --no-package-lock \
  "@vladmandic/face-api@$FACE_API_VERSION" "@tensorflow/tfjs-backend-wasm@$TFJS_VERSION" >/dev/null
face=$tmp/node_modules/@vladmandic/face-api
wasm=$tmp/node_modules/@tensorflow/tfjs-backend-wasm

bundled=$(grep -o 'var e="[0-9.]*"' "$face/dist/tfjs.version.js" | grep -o '[0-9.]*')
[ "$bundled" = "$TFJS_VERSION" ] || {
  echo "face-api $FACE_API_VERSION bundles TensorFlow.js $bundled, not $TFJS_VERSION: set TFJS_VERSION" >&2
  exit 1
}

rm -rf "$out"
mkdir -p "$out"
cp "$face/dist/face-api.esm.js" "$out/"
cp "$face/model/tiny_face_detector_model-weights_manifest.json" "$face/model/tiny_face_detector_model.bin" "$out/"
cp "$face/model/face_landmark_68_tiny_model-weights_manifest.json" "$face/model/face_landmark_68_tiny_model.bin" "$out/"
# SIMD where the browser has it, plain otherwise; the threaded build needs cross-origin isolation,
# which the page does not have, so it is never asked for.
cp "$wasm/dist/tfjs-backend-wasm-simd.wasm" "$wasm/dist/tfjs-backend-wasm.wasm" "$out/"
cp "$face/LICENSE" "$out/LICENSE.face-api.txt"
# TensorFlow.js ships its licence only as file headers; Debian's base-files holds the full text.
cp /usr/share/common-licenses/Apache-2.0 "$out/LICENSE.tensorflow-js.txt"
cat > "$out/README.md" <<EOF
# Vendored face detector (served as static files; do not edit)

Written by \`scripts/vendor-face-detector.sh\` from the npm registry:

| file | from | licence |
| --- | --- | --- |
| face-api.esm.js | @vladmandic/face-api $FACE_API_VERSION, dist/ (bundles TensorFlow.js $TFJS_VERSION) | MIT (LICENSE.face-api.txt); TensorFlow.js: Apache-2.0 (LICENSE.tensorflow-js.txt) |
| tiny_face_detector_model-weights_manifest.json, tiny_face_detector_model.bin | @vladmandic/face-api $FACE_API_VERSION, model/ | MIT |
| face_landmark_68_tiny_model-weights_manifest.json, face_landmark_68_tiny_model.bin | @vladmandic/face-api $FACE_API_VERSION, model/ | MIT |
| tfjs-backend-wasm-simd.wasm, tfjs-backend-wasm.wasm | @tensorflow/tfjs-backend-wasm $TFJS_VERSION, dist/ | Apache-2.0 |

webapp/static/coach.js imports it after the camera preview is live, and loads the landmark model after the
detector; SHA256SUMS lists every file.
EOF
(cd "$out" && sha256sum -- * | grep -v ' SHA256SUMS$' > SHA256SUMS)
du -b "$out"/* | sort -n
