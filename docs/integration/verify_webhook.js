// Check a webhook's X-Signature (Node.js 18+, standard library only).
//
//   WEBHOOK_SECRET=… node verify_webhook.js "$X_SIGNATURE" < body.json   # exit 0 valid, 1 not
//
// The header is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`; during a secret
// rotation it carries two `v1=`, so accept any that matches. Use the raw body bytes as received
// (in Express: express.raw({type: 'application/json'})), compare in constant time, refuse
// timestamps over 5 minutes off.
'use strict';
const crypto = require('crypto');

const TOLERANCE = 300; // seconds

function valid(secret, body, header, now = Date.now() / 1000) {
  const pairs = header.split(',').map((part) => {
    const at = part.trim().indexOf('=');
    return at < 0 ? [part.trim(), ''] : [part.trim().slice(0, at), part.trim().slice(at + 1)];
  });
  const stamps = pairs.filter(([key]) => key === 't').map(([, value]) => value);
  if (stamps.length !== 1 || !/^\d+$/.test(stamps[0])) return false;
  if (Math.abs(now - Number(stamps[0])) > TOLERANCE) return false;
  const expected = crypto.createHmac('sha256', secret)
    .update(Buffer.concat([Buffer.from(stamps[0] + '.'), body])).digest();
  let ok = false;
  for (const [key, value] of pairs) {
    if (key !== 'v1' || !/^[0-9a-f]{64}$/.test(value)) continue;
    if (crypto.timingSafeEqual(expected, Buffer.from(value, 'hex'))) ok = true;
  }
  return ok;
}

module.exports = { valid };

if (require.main === module) {
  const secret = process.env.WEBHOOK_SECRET;
  if (process.argv.length !== 3 || !secret) {
    console.error("usage: WEBHOOK_SECRET=… node verify_webhook.js '<X-Signature>' < body");
    process.exit(2);
  }
  const chunks = [];
  process.stdin.on('data', (chunk) => chunks.push(chunk));
  process.stdin.on('end', () => {
    const ok = valid(secret, Buffer.concat(chunks), process.argv[2]);
    console.log(ok ? 'valid' : 'invalid');
    process.exit(ok ? 0 : 1);
  });
}
