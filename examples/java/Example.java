// dancu-gateway from Java 17+ with java.net.http and java.security only; run as a single source file:
//
//   DANCU_GATEWAY=http://127.0.0.1:8000 DANCU_CLIENT_ID=... DANCU_CLIENT_SECRET=... \
//   DANCU_PRIVATE_KEY_FILE=portal-key.pem DANCU_KEY_ID=portal-key-1 java Example.java
//
// What it shows (examples/README.md): a token with the client secret and one with private_key_jwt, each cached
// until shortly before it expires; verify, lookup and household; the verification's attestation checked offline
// against the gateway's JWKS; problem+json answers, retrying only what may be retried and honouring Retry-After.
// It prints no personal data: counts, outcomes and request ids only.
//
// The HttpClient keeps the JDK's defaults: on plain http it offers an HTTP/2 upgrade (h2c) with every request;
// the gateway keeps the body and answers in HTTP/1.1. A real application would use its JSON library (Jackson,
// Gson); this file carries a small parser so that it needs nothing but the JDK. The file is plain ASCII (text
// in Vietnamese is written with Unicode escapes) because Java 17 reads a source file in the platform's encoding.

import java.math.BigDecimal;
import java.math.BigInteger;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.AlgorithmParameters;
import java.security.KeyFactory;
import java.security.MessageDigest;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.Signature;
import java.security.interfaces.ECPrivateKey;
import java.security.spec.ECGenParameterSpec;
import java.security.spec.ECParameterSpec;
import java.security.spec.ECPoint;
import java.security.spec.ECPublicKeySpec;
import java.security.spec.PKCS8EncodedKeySpec;
import java.text.Normalizer;
import java.time.Duration;
import java.time.Instant;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.stream.Collectors;

public class Example {
    static final String GATEWAY = env("DANCU_GATEWAY", "http://127.0.0.1:8000").replaceAll("/+$", "");
    static final String CLIENT_ID = env("DANCU_CLIENT_ID", "");
    static final String CLIENT_SECRET = env("DANCU_CLIENT_SECRET", "");
    static final String PRIVATE_KEY_FILE = env("DANCU_PRIVATE_KEY_FILE", ""); // PKCS#8 PEM, EC P-256 or RSA
    static final String KEY_ID = env("DANCU_KEY_ID", ""); // the kid registered with the gateway (optional)
    static final String PURPOSE = env("DANCU_PURPOSE", "DEMO-1.000001");
    static final String SANDBOX_FAULT = env("DANCU_SANDBOX_FAULT", ""); // e.g. "status=503" (DANCU_SANDBOX=true)

    // The demo resident (a persona of the mock national database, docs/personas.md).
    static final String PERSONAL_ID = "052068000108";
    static final String FULL_NAME = "Nguy\u1ec5n V\u0103n Th\u00e0nh";
    static final String DATE_OF_BIRTH = "1968-04-15";
    static final String CANCELLED_ID = "052081000125"; // a cancelled ID: answered 404 not_found

    static final long REFRESH_MARGIN_S = 30; // fetch a new token this long before the cached one expires
    static final int MAX_ATTEMPTS = 3; // one call and at most two retries
    static final double MAX_WAIT_S = 10; // a longer Retry-After is not waited for: the problem goes to the caller
    // Codes that say "the same request may succeed later"; everything else is final (docs/integration.md).
    static final Set<String> RETRYABLE = Set.of("rate_limited", "upstream_unavailable", "upstream_timeout",
            "upstream_bad_response", "limits_unavailable", "audit_unavailable", "temporarily_unavailable");

    static final HttpClient HTTP = HttpClient.newHttpClient(); // the JDK's defaults, HTTP/2 preferred

    static String env(String name, String fallback) {
        String value = System.getenv(name);
        return value == null || value.isEmpty() ? fallback : value;
    }

    /** An application/problem+json answer (or a token endpoint's OAuth error) with what the caller needs. */
    static class Problem extends Exception {
        final int status;
        final String code;
        final String requestId; // quote it to support
        final Double retryAfter;
        final List<Object> errors; // validation failures: [{loc, code, message}]
        final List<Object> fields; // field_not_allowed: the refused field names
        int retried = 0;

        Problem(HttpResponse<String> response) {
            this(response, parseBody(response));
        }

        private Problem(HttpResponse<String> response, Map<String, Object> body) {
            super(response.statusCode() + " " + codeOf(response.statusCode(), body));
            status = response.statusCode();
            code = codeOf(status, body);
            Object id = body.get("request_id");
            requestId = id != null ? (String) id : response.headers().firstValue("x-request-id").orElse(null);
            retryAfter = parseRetryAfter(response.headers().firstValue("retry-after").orElse(null));
            errors = listOf(body.get("errors"));
            fields = listOf(body.get("fields"));
        }

        static Map<String, Object> parseBody(HttpResponse<String> response) {
            String type = response.headers().firstValue("content-type").orElse("");
            return type.contains("json") ? Json.object(Json.parse(response.body())) : Map.of();
        }

        static String codeOf(int status, Map<String, Object> body) {
            Object code = body.containsKey("code") ? body.get("code") : body.get("error");
            return code != null ? (String) code : "http_" + status;
        }

        boolean retryable() {
            return RETRYABLE.contains(code) || (code.startsWith("http_") && Set.of(502, 503, 504).contains(status));
        }
    }

    static List<Object> listOf(Object value) {
        return value instanceof List<?> list ? new ArrayList<>(list) : List.of();
    }

    static Double parseRetryAfter(String value) {
        if (value == null || value.isBlank()) return null;
        String text = value.trim();
        if (text.matches("[0-9]+")) return Double.valueOf(text);
        try { // an HTTP date
            ZonedDateTime at = ZonedDateTime.parse(text, DateTimeFormatter.RFC_1123_DATE_TIME);
            return Math.max(0, Duration.between(Instant.now(), at.toInstant()).toMillis() / 1000.0);
        } catch (RuntimeException e) {
            return null;
        }
    }

    interface Attempt {
        HttpRequest build() throws Exception;
    }

    /** The request again while it fails with a retryable problem, waiting Retry-After (or a short back-off). */
    static HttpResponse<String> withRetries(Attempt attempt) throws Exception {
        for (int n = 1; ; n++) {
            HttpResponse<String> response = HTTP.send(attempt.build(), HttpResponse.BodyHandlers.ofString());
            if (response.statusCode() < 400) return response;
            Problem problem = new Problem(response);
            problem.retried = n - 1;
            double wait = problem.retryAfter != null ? problem.retryAfter : 0.5 * Math.pow(2, n - 1);
            if (!problem.retryable() || n >= MAX_ATTEMPTS || wait > MAX_WAIT_S) throw problem;
            System.out.printf("retry: status=%d code=%s wait_s=%s attempt=%d%n", problem.status, problem.code,
                    BigDecimal.valueOf(wait).stripTrailingZeros().toPlainString(), n);
            Thread.sleep((long) (wait * 1000));
        }
    }

    static String b64url(byte[] data) {
        return Base64.getUrlEncoder().withoutPadding().encodeToString(data);
    }

    static String form(Map<String, String> values) {
        return values.entrySet().stream()
                .map(e -> URLEncoder.encode(e.getKey(), StandardCharsets.UTF_8) + "="
                        + URLEncoder.encode(e.getValue(), StandardCharsets.UTF_8))
                .collect(Collectors.joining("&"));
    }

    /** Access tokens for one way of authenticating, cached until shortly before they expire. */
    static class TokenSource {
        final String method; // "client_secret_basic" or "private_key_jwt"
        final String audience; // a client assertion's aud: the token endpoint URL from the metadata
        PrivateKey key;
        String alg = "";
        String token;
        long expiresAt;
        int fetched = 0;
        int used = 0;

        TokenSource(String method, String tokenEndpoint) throws Exception {
            this.method = method;
            this.audience = tokenEndpoint;
            if (method.equals("private_key_jwt")) {
                key = readPrivateKey(Path.of(PRIVATE_KEY_FILE));
                alg = key instanceof ECPrivateKey ? "ES256" : "RS256";
            }
        }

        synchronized String get() throws Exception {
            used++;
            if (token != null && Instant.now().getEpochSecond() < expiresAt - REFRESH_MARGIN_S) return token;
            Map<String, Object> body = Json.object(Json.parse(withRetries(this::request).body()));
            long expiresIn = ((Number) body.get("expires_in")).longValue();
            token = (String) body.get("access_token");
            expiresAt = Instant.now().getEpochSecond() + expiresIn;
            fetched++;
            System.out.printf("token: method=%s%s fetched expires_in=%d%n", method,
                    alg.isEmpty() ? "" : " alg=" + alg, expiresIn);
            return token;
        }

        synchronized void invalidate() {
            token = null;
        }

        HttpRequest request() throws Exception {
            Map<String, String> values = new LinkedHashMap<>();
            values.put("grant_type", "client_credentials");
            HttpRequest.Builder builder = HttpRequest.newBuilder(URI.create(GATEWAY + "/oauth2/token"))
                    .header("Content-Type", "application/x-www-form-urlencoded");
            if (method.equals("client_secret_basic")) {
                // RFC 6749 2.3.1: each part form-encoded before Basic encoding.
                String user = URLEncoder.encode(CLIENT_ID, StandardCharsets.UTF_8) + ":"
                        + URLEncoder.encode(CLIENT_SECRET, StandardCharsets.UTF_8);
                builder.header("Authorization",
                        "Basic " + Base64.getEncoder().encodeToString(user.getBytes(StandardCharsets.UTF_8)));
            } else {
                values.put("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
                values.put("client_assertion", assertion()); // a new one per attempt: each jti is single-use
            }
            return builder.POST(HttpRequest.BodyPublishers.ofString(form(values))).build();
        }

        String assertion() throws Exception {
            long now = Instant.now().getEpochSecond();
            Map<String, Object> header = new LinkedHashMap<>();
            header.put("alg", alg);
            header.put("typ", "JWT");
            if (!KEY_ID.isEmpty()) header.put("kid", KEY_ID);
            Map<String, Object> claims = new LinkedHashMap<>();
            claims.put("iss", CLIENT_ID);
            claims.put("sub", CLIENT_ID);
            claims.put("aud", audience);
            claims.put("iat", now);
            claims.put("exp", now + 120);
            claims.put("jti", UUID.randomUUID().toString());
            String input = b64url(Json.write(header).getBytes(StandardCharsets.UTF_8)) + "."
                    + b64url(Json.write(claims).getBytes(StandardCharsets.UTF_8));
            // JWS wants ECDSA signatures as r || s (IEEE P1363), not the DER that "SHA256withECDSA" gives.
            Signature signer = Signature.getInstance(alg.equals("ES256") ? "SHA256withECDSAinP1363Format" : "SHA256withRSA");
            signer.initSign(key);
            signer.update(input.getBytes(StandardCharsets.US_ASCII));
            return input + "." + b64url(signer.sign());
        }
    }

    static PrivateKey readPrivateKey(Path file) throws Exception {
        String pem = Files.readString(file).replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
        PKCS8EncodedKeySpec spec = new PKCS8EncodedKeySpec(Base64.getDecoder().decode(pem));
        try {
            return KeyFactory.getInstance("EC").generatePrivate(spec);
        } catch (java.security.spec.InvalidKeySpecException notEc) {
            return KeyFactory.getInstance("RSA").generatePrivate(spec);
        }
    }

    record Answer(Map<String, Object> body, String requestId) {}

    /** Citizen calls: the token, the purpose, problem handling and retries in one place. */
    static class Gateway {
        final TokenSource tokens;

        Gateway(TokenSource tokens) {
            this.tokens = tokens;
        }

        Answer post(String path, Map<String, Object> body, String... extraHeaders) throws Exception {
            Attempt attempt = () -> {
                HttpRequest.Builder builder = HttpRequest.newBuilder(URI.create(GATEWAY + path))
                        .header("Authorization", "Bearer " + tokens.get())
                        .header("Content-Type", "application/json")
                        .header("Accept-Language", "vi") // problem titles in Vietnamese; "en" for English
                        .header("X-Purpose", PURPOSE)
                        // your own id, echoed back and kept in the audit log
                        .header("X-Request-Id", "portal-" + UUID.randomUUID());
                for (int i = 0; i < extraHeaders.length; i += 2) builder.header(extraHeaders[i], extraHeaders[i + 1]);
                return builder.POST(HttpRequest.BodyPublishers.ofString(Json.write(body))).build();
            };
            HttpResponse<String> response;
            try {
                response = withRetries(attempt);
            } catch (Problem problem) {
                if (problem.status != 401) throw problem;
                tokens.invalidate(); // an expired or revoked token: fetch a new one once, then give up
                response = withRetries(attempt);
            }
            return new Answer(Json.object(Json.parse(response.body())),
                    response.headers().firstValue("x-request-id").orElse(null));
        }
    }

    /**
     * Checks a verification attestation (compact JWS, ES256) against the JWKS: signature, type, issuer, content,
     * and that its input_hash is the hash of the values we sent (what a dossier keeps to prove what was checked).
     */
    static Map<String, Object> checkAttestation(String jws, Map<String, Object> jwks, String issuer,
            Map<String, Object> expected, Map<String, Object> sent) throws Exception {
        String[] parts = jws.split("\\.");
        Base64.Decoder decoder = Base64.getUrlDecoder();
        Map<String, Object> header = Json.object(Json.parse(new String(decoder.decode(parts[0]), StandardCharsets.UTF_8)));
        if (!"ES256".equals(header.get("alg")) || !"verification+jwt".equals(header.get("typ"))) {
            throw new IllegalStateException("not an attestation");
        }
        Map<String, Object> jwk = findKey(jwks, header.get("kid"));
        if (jwk == null) { // a key rotated in after we fetched the set: fetch it once more
            jwks.put("keys", Json.object(Json.parse(get("/.well-known/jwks.json"))).get("keys"));
            jwk = findKey(jwks, header.get("kid"));
        }
        if (jwk == null || !"EC".equals(jwk.get("kty")) || !"P-256".equals(jwk.get("crv"))) {
            throw new IllegalStateException("no ES256 key with this kid");
        }
        Signature verifier = Signature.getInstance("SHA256withECDSAinP1363Format");
        verifier.initVerify(ecPublicKey(jwk));
        verifier.update((parts[0] + "." + parts[1]).getBytes(StandardCharsets.US_ASCII));
        if (!verifier.verify(decoder.decode(parts[2]))) throw new IllegalStateException("bad signature");
        Map<String, Object> claims = Json.object(Json.parse(new String(decoder.decode(parts[1]), StandardCharsets.UTF_8)));
        if (!issuer.equals(claims.get("iss"))) throw new IllegalStateException("wrong issuer");
        if (claims.get("exp") instanceof Number exp && exp.longValue() < Instant.now().getEpochSecond()) {
            throw new IllegalStateException("expired");
        }
        for (Map.Entry<String, Object> entry : expected.entrySet()) {
            if (!entry.getValue().equals(claims.get(entry.getKey()))) {
                throw new IllegalStateException(entry.getKey() + " differs");
            }
        }
        // SHA-256 of the salt, then "name=value" lines: personal_id, then each checked field in order (text in NFC).
        StringBuilder text = new StringBuilder(claims.get("input_salt") + "\n");
        List<Object> names = new ArrayList<>(List.of("personal_id"));
        names.addAll(listOf(claims.get("checked_fields")));
        for (Object name : names) {
            String value = Normalizer.normalize(String.valueOf(sent.get(name)), Normalizer.Form.NFC);
            text.append(name).append('=').append(value).append('\n');
        }
        byte[] digest = MessageDigest.getInstance("SHA-256").digest(text.toString().getBytes(StandardCharsets.UTF_8));
        if (!HexFormat.of().formatHex(digest).equals(claims.get("input_hash"))) {
            throw new IllegalStateException("input_hash is not the hash of what was sent");
        }
        claims.put("_kid", header.get("kid"));
        return claims;
    }

    static Map<String, Object> findKey(Map<String, Object> jwks, Object kid) {
        for (Object key : listOf(jwks.get("keys"))) {
            Map<String, Object> jwk = Json.object(key);
            if (kid != null && kid.equals(jwk.get("kid"))) return jwk;
        }
        return null;
    }

    static PublicKey ecPublicKey(Map<String, Object> jwk) throws Exception {
        AlgorithmParameters parameters = AlgorithmParameters.getInstance("EC");
        parameters.init(new ECGenParameterSpec("secp256r1"));
        ECPoint point = new ECPoint(
                new BigInteger(1, Base64.getUrlDecoder().decode((String) jwk.get("x"))),
                new BigInteger(1, Base64.getUrlDecoder().decode((String) jwk.get("y"))));
        ECPublicKeySpec spec = new ECPublicKeySpec(point, parameters.getParameterSpec(ECParameterSpec.class));
        return KeyFactory.getInstance("EC").generatePublic(spec);
    }

    static String get(String path) throws Exception {
        HttpRequest request = HttpRequest.newBuilder(URI.create(GATEWAY + path)).GET().build();
        return withRetries(() -> request).body();
    }

    static void report(Problem problem) {
        StringBuilder line = new StringBuilder(String.format("problem: status=%d code=%s retried=%d request_id=%s",
                problem.status, problem.code, problem.retried, problem.requestId));
        if (!problem.fields.isEmpty()) {
            line.append(" fields=").append(problem.fields.stream().map(String::valueOf).collect(Collectors.joining(",")));
        }
        if (!problem.errors.isEmpty()) {
            line.append(" errors=").append(problem.errors.stream()
                    .map(error -> listOf(Json.object(error).get("loc")).stream().map(String::valueOf)
                            .collect(Collectors.joining(".")))
                    .collect(Collectors.joining(",")));
        }
        System.out.println(line);
    }

    interface Call {
        void run() throws Exception;
    }

    static void expectProblem(Call call) throws Exception {
        try {
            call.run();
            System.out.println("problem: none");
        } catch (Problem problem) {
            report(problem);
        }
    }

    static Map<String, Object> body(Object... pairs) {
        Map<String, Object> map = new LinkedHashMap<>();
        for (int i = 0; i < pairs.length; i += 2) map.put((String) pairs[i], pairs[i + 1]);
        return map;
    }

    public static void main(String[] args) throws Exception {
        if (CLIENT_ID.isEmpty()) {
            System.err.println("set DANCU_CLIENT_ID (and DANCU_CLIENT_SECRET and/or DANCU_PRIVATE_KEY_FILE)");
            System.exit(2);
        }
        try {
            run();
        } catch (Problem problem) {
            report(problem);
            System.exit(1);
        }
    }

    static void run() throws Exception {
        Map<String, Object> metadata = Json.object(Json.parse(get("/.well-known/oauth-authorization-server")));
        Map<String, Object> jwks = Json.object(Json.parse(get("/.well-known/jwks.json")));
        String issuer = (String) metadata.get("issuer");
        String tokenEndpoint = (String) metadata.get("token_endpoint");
        System.out.println("gateway: " + GATEWAY + " issuer=" + issuer);

        // 1. Client secret: one token serves every call until shortly before it expires.
        TokenSource bySecret = new TokenSource("client_secret_basic", tokenEndpoint);
        Gateway gateway = new Gateway(bySecret);

        Map<String, Object> resident = body("personal_id", PERSONAL_ID, "full_name", FULL_NAME,
                "date_of_birth", DATE_OF_BIRTH);
        Answer verified = gateway.post("/v1/citizens/verify", resident, "X-Dossier-Id", "HS-DEMO-0001");
        Map<String, Object> answer = verified.body();
        System.out.printf("verify: match=%s reason=%s request_id=%s%n", answer.get("match"), answer.get("reason"),
                verified.requestId());

        Map<String, Object> claims = checkAttestation((String) answer.get("attestation"), jwks, issuer,
                body("verification_id", answer.get("verification_id"), "personal_id", PERSONAL_ID,
                        "match", answer.get("match")), resident);
        System.out.printf("attestation: valid kid=%s verification_id=%s match=%s input_hash=checked%n", claims.get("_kid"),
                claims.get("verification_id"), claims.get("match"));

        Answer record = gateway.post("/v1/citizens/lookup", body("personal_id", PERSONAL_ID));
        long released = record.body().keySet().stream().filter(name -> !name.equals("_meta")).count();
        System.out.printf("lookup: fields=%d source=%s request_id=%s%n", released,
                Json.object(record.body().get("_meta")).get("source"), record.requestId());

        Answer household = gateway.post("/v1/citizens/household", body("personal_id", PERSONAL_ID));
        System.out.printf("household: members=%d request_id=%s%n", listOf(household.body().get("members")).size(),
                household.requestId());

        // 2. Problems: final answers are reported at once, never retried.
        expectProblem(() -> gateway.post("/v1/citizens/lookup", body("personal_id", CANCELLED_ID)));
        expectProblem(() -> gateway.post("/v1/citizens/verify", body("personal_id", "000000000000", "gender", "male")));
        System.out.printf("token: method=%s fetched=%d used=%d%n", bySecret.method, bySecret.fetched, bySecret.used);

        // 3. private_key_jwt: no shared secret on the wire; the assertion is signed with the portal's own key.
        if (!PRIVATE_KEY_FILE.isEmpty()) {
            TokenSource byKey = new TokenSource("private_key_jwt", tokenEndpoint);
            Gateway keyed = new Gateway(byKey);
            Answer again = keyed.post("/v1/citizens/verify", body("personal_id", PERSONAL_ID, "gender", "male"));
            System.out.printf("verify: match=%s reason=%s request_id=%s%n", again.body().get("match"),
                    again.body().get("reason"), again.requestId());
            keyed.post("/v1/citizens/household", body("personal_id", PERSONAL_ID));
            System.out.printf("token: method=%s fetched=%d used=%d%n", byKey.method, byKey.fetched, byKey.used);
        } else {
            System.out.println("token: method=private_key_jwt skipped (DANCU_PRIVATE_KEY_FILE is not set)");
        }

        // 4. Rehearse an upstream failure against a sandbox gateway (DANCU_SANDBOX=true there).
        if (!SANDBOX_FAULT.isEmpty()) {
            expectProblem(() -> gateway.post("/v1/citizens/verify", resident, "X-Sandbox-Fault", SANDBOX_FAULT));
        }
        System.out.println("done");
    }

    /** Just enough JSON for this example: objects, arrays, strings, numbers, true, false, null. */
    static final class Json {
        private final String text;
        private int at;

        private Json(String text) {
            this.text = text;
        }

        @SuppressWarnings("unchecked")
        static Map<String, Object> object(Object value) {
            if (!(value instanceof Map)) throw new IllegalArgumentException("a JSON object was expected");
            return (Map<String, Object>) value;
        }

        static Object parse(String text) {
            Json parser = new Json(text);
            Object value = parser.value();
            parser.space();
            if (parser.at != text.length()) throw parser.error();
            return value;
        }

        static String write(Object value) {
            if (value == null) return "null";
            if (value instanceof String s) return quote(s);
            if (value instanceof Number || value instanceof Boolean) return value.toString();
            if (value instanceof Map<?, ?> map) {
                return map.entrySet().stream().map(e -> quote((String) e.getKey()) + ":" + write(e.getValue()))
                        .collect(Collectors.joining(",", "{", "}"));
            }
            if (value instanceof List<?> list) {
                return list.stream().map(Json::write).collect(Collectors.joining(",", "[", "]"));
            }
            throw new IllegalArgumentException("cannot write " + value.getClass());
        }

        private static String quote(String s) {
            StringBuilder out = new StringBuilder("\"");
            for (char c : s.toCharArray()) {
                switch (c) {
                    case '"' -> out.append("\\\"");
                    case '\\' -> out.append("\\\\");
                    default -> {
                        if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
                        else out.append(c);
                    }
                }
            }
            return out.append('"').toString();
        }

        private IllegalArgumentException error() {
            return new IllegalArgumentException("bad JSON at offset " + at);
        }

        private void space() {
            while (at < text.length() && Character.isWhitespace(text.charAt(at))) at++;
        }

        private Object value() {
            space();
            if (at >= text.length()) throw error();
            char c = text.charAt(at);
            if (c == '{') return objectValue();
            if (c == '[') return arrayValue();
            if (c == '"') return stringValue();
            for (String word : new String[] {"true", "false", "null"}) {
                if (text.startsWith(word, at)) {
                    at += word.length();
                    return word.equals("null") ? null : Boolean.valueOf(word);
                }
            }
            int start = at;
            while (at < text.length() && "+-0123456789.eE".indexOf(text.charAt(at)) >= 0) at++;
            if (start == at) throw error();
            String number = text.substring(start, at);
            return number.matches("-?[0-9]+") ? (Object) Long.valueOf(number) : (Object) Double.valueOf(number);
        }

        private Map<String, Object> objectValue() {
            Map<String, Object> map = new LinkedHashMap<>();
            at++;
            space();
            if (text.charAt(at) == '}') {
                at++;
                return map;
            }
            while (true) {
                space();
                String key = stringValue();
                space();
                if (text.charAt(at++) != ':') throw error();
                map.put(key, value());
                space();
                char c = text.charAt(at++);
                if (c == '}') return map;
                if (c != ',') throw error();
            }
        }

        private List<Object> arrayValue() {
            List<Object> list = new ArrayList<>();
            at++;
            space();
            if (text.charAt(at) == ']') {
                at++;
                return list;
            }
            while (true) {
                list.add(value());
                space();
                char c = text.charAt(at++);
                if (c == ']') return list;
                if (c != ',') throw error();
            }
        }

        private String stringValue() {
            if (text.charAt(at) != '"') throw error();
            StringBuilder out = new StringBuilder();
            at++;
            while (true) {
                char c = text.charAt(at++);
                if (c == '"') return out.toString();
                if (c != '\\') {
                    out.append(c);
                    continue;
                }
                char escape = text.charAt(at++);
                switch (escape) {
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'n' -> out.append('\n');
                    case 'r' -> out.append('\r');
                    case 't' -> out.append('\t');
                    case 'u' -> {
                        out.append((char) Integer.parseInt(text.substring(at, at + 4), 16));
                        at += 4;
                    }
                    default -> out.append(escape);
                }
            }
        }
    }
}
