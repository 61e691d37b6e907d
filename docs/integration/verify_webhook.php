<?php
// Check a webhook's X-Signature (PHP 7.4+, standard library only).
//
//   WEBHOOK_SECRET=… php verify_webhook.php "$X_SIGNATURE" < body.json   # exit 0 valid, 1 not
//
// The header is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`; during a secret
// rotation it carries two `v1=`, so accept any that matches. In a web handler the raw body is
// file_get_contents('php://input') and the header $_SERVER['HTTP_X_SIGNATURE']. Compare in
// constant time (hash_equals), refuse timestamps over 5 minutes off.

const TOLERANCE = 300; // seconds

function webhook_valid(string $secret, string $body, string $header, ?int $now = null): bool
{
    $stamps = [];
    $signatures = [];
    foreach (explode(',', $header) as $part) {
        $pair = explode('=', trim($part), 2);
        if (count($pair) !== 2) {
            continue;
        }
        if ($pair[0] === 't') {
            $stamps[] = $pair[1];
        } elseif ($pair[0] === 'v1') {
            $signatures[] = $pair[1];
        }
    }
    if (count($stamps) !== 1 || !ctype_digit($stamps[0])) {
        return false;
    }
    if (abs(($now ?? time()) - (int) $stamps[0]) > TOLERANCE) {
        return false;
    }
    $expected = hash_hmac('sha256', $stamps[0] . '.' . $body, $secret);
    $ok = false;
    foreach ($signatures as $signature) {
        if (hash_equals($expected, $signature)) {
            $ok = true;
        }
    }
    return $ok;
}

if (PHP_SAPI === 'cli' && realpath($_SERVER['SCRIPT_FILENAME']) === __FILE__) {
    $secret = getenv('WEBHOOK_SECRET');
    if ($argc !== 2 || $secret === false || $secret === '') {
        fwrite(STDERR, "usage: WEBHOOK_SECRET=… php verify_webhook.php '<X-Signature>' < body\n");
        exit(2);
    }
    $ok = webhook_valid($secret, stream_get_contents(STDIN), $argv[1]);
    echo $ok ? "valid\n" : "invalid\n";
    exit($ok ? 0 : 1);
}
