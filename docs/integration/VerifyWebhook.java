// Check a webhook's X-Signature (Java 11+, standard library only).
//
//   WEBHOOK_SECRET=… java VerifyWebhook.java "$X_SIGNATURE" < body.json   # exit 0 valid, 1 not
//
// The header is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`; during a secret
// rotation it carries two `v1=`, so accept any that matches. Use the raw body bytes as received
// (in Spring: a @RequestBody byte[] parameter), compare in constant time (MessageDigest.isEqual),
// refuse timestamps over 5 minutes off.
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.List;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

public class VerifyWebhook {
    static final long TOLERANCE = 300; // seconds

    public static boolean valid(String secret, byte[] body, String header, long nowSeconds) throws Exception {
        List<String> stamps = new ArrayList<>();
        List<byte[]> signatures = new ArrayList<>();
        for (String part : header.split(",")) {
            String[] pair = part.trim().split("=", 2);
            if (pair.length != 2) continue;
            if (pair[0].equals("t")) stamps.add(pair[1]);
            else if (pair[0].equals("v1")) signatures.add(pair[1].getBytes(StandardCharsets.US_ASCII));
        }
        if (stamps.size() != 1 || !stamps.get(0).matches("[0-9]{1,18}")) return false;
        if (Math.abs(nowSeconds - Long.parseLong(stamps.get(0))) > TOLERANCE) return false;
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(secret.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
        mac.update((stamps.get(0) + ".").getBytes(StandardCharsets.US_ASCII));
        byte[] digest = mac.doFinal(body);
        StringBuilder hex = new StringBuilder();
        for (byte b : digest) hex.append(String.format("%02x", b));
        byte[] expected = hex.toString().getBytes(StandardCharsets.US_ASCII);
        boolean ok = false;
        for (byte[] signature : signatures) {
            if (MessageDigest.isEqual(expected, signature)) ok = true;
        }
        return ok;
    }

    public static void main(String[] args) throws Exception {
        String secret = System.getenv("WEBHOOK_SECRET");
        if (args.length != 1 || secret == null || secret.isEmpty()) {
            System.err.println("usage: WEBHOOK_SECRET=… java VerifyWebhook.java '<X-Signature>' < body");
            System.exit(2);
        }
        byte[] body = System.in.readAllBytes();
        boolean ok = valid(secret, body, args[0], System.currentTimeMillis() / 1000);
        System.out.println(ok ? "valid" : "invalid");
        System.exit(ok ? 0 : 1);
    }
}
