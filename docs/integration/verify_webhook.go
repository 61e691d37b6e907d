// Check a webhook's X-Signature (Go, standard library only).
//
//	WEBHOOK_SECRET=… go run verify_webhook.go "$X_SIGNATURE" < body.json   # exit 0 valid, 1 not
//
// The header is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`; during a secret
// rotation it carries two `v1=`, so accept any that matches. In a handler read the raw body with
// io.ReadAll(r.Body) before decoding it. Compare in constant time (hmac.Equal), refuse
// timestamps over 5 minutes off.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

const tolerance = 300 // seconds

// Valid reports whether header signs body with secret, at most tolerance seconds from now.
func Valid(secret string, body []byte, header string, now time.Time) bool {
	var stamps []string
	var signatures [][]byte
	for _, part := range strings.Split(header, ",") {
		key, value, found := strings.Cut(strings.TrimSpace(part), "=")
		if !found {
			continue
		}
		switch key {
		case "t":
			stamps = append(stamps, value)
		case "v1":
			if mac, err := hex.DecodeString(value); err == nil {
				signatures = append(signatures, mac)
			}
		}
	}
	if len(stamps) != 1 {
		return false
	}
	stamp, err := strconv.ParseInt(stamps[0], 10, 64)
	if err != nil || stamp < 0 {
		return false
	}
	if age := now.Unix() - stamp; age > tolerance || age < -tolerance {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(stamps[0] + "."))
	mac.Write(body)
	expected := mac.Sum(nil)
	ok := false
	for _, signature := range signatures {
		if hmac.Equal(expected, signature) {
			ok = true
		}
	}
	return ok
}

func main() {
	secret := os.Getenv("WEBHOOK_SECRET")
	if len(os.Args) != 2 || secret == "" {
		fmt.Fprintln(os.Stderr, "usage: WEBHOOK_SECRET=… go run verify_webhook.go '<X-Signature>' < body")
		os.Exit(2)
	}
	body, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if Valid(secret, body, os.Args[1], time.Now()) {
		fmt.Println("valid")
		os.Exit(0)
	}
	fmt.Println("invalid")
	os.Exit(1)
}
