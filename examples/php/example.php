<?php
// dancu-gateway from PHP 8.1+ with the curl and openssl extensions (Debian: apt-get install php-cli php-curl).
// Ví dụ gọi dancu-gateway từ PHP 8.1+ với các phần mở rộng curl và openssl.
//
//   DANCU_GATEWAY=http://127.0.0.1:8000 DANCU_CLIENT_ID=... DANCU_CLIENT_SECRET=... \
//   DANCU_PRIVATE_KEY_FILE=portal-key.pem DANCU_KEY_ID=portal-key-1 php example.php
//
// What it shows (examples/README.md): a token with the client secret and one with private_key_jwt, each cached
// until shortly before it expires; verify, lookup and household; the verification's attestation checked offline
// against the gateway's JWKS; problem+json answers, retrying only what may be retried and honouring Retry-After.
// It prints no personal data: counts, outcomes and request ids only. A PHP application serving many requests
// would keep the token in APCu or Redis rather than in a variable.

declare(strict_types=1);

function env(string $name, string $default = ''): string
{
    $value = getenv($name);
    return $value === false || $value === '' ? $default : $value;
}

define('GATEWAY', rtrim(env('DANCU_GATEWAY', 'http://127.0.0.1:8000'), '/'));
define('CLIENT_ID', env('DANCU_CLIENT_ID'));
define('CLIENT_SECRET', env('DANCU_CLIENT_SECRET'));
define('PRIVATE_KEY_FILE', env('DANCU_PRIVATE_KEY_FILE')); // PKCS#8 PEM, EC P-256 (ES256) or RSA (RS256)
define('KEY_ID', env('DANCU_KEY_ID')); // the kid registered with the gateway (optional)
define('PURPOSE', env('DANCU_PURPOSE', 'DEMO-1.000001'));
define('SANDBOX_FAULT', env('DANCU_SANDBOX_FAULT')); // e.g. "status=503" against a DANCU_SANDBOX=true gateway

// The demo resident (a persona of the mock national database, docs/personas.md).
const RESIDENT = ['personal_id' => '052068000108', 'full_name' => 'Nguyễn Văn Thành', 'date_of_birth' => '1968-04-15'];
const CANCELLED_ID = '052081000125'; // a cancelled ID: answered 404 not_found

const REFRESH_MARGIN_S = 30; // fetch a new token this long before the cached one expires
const MAX_ATTEMPTS = 3; // one call and at most two retries
const MAX_WAIT_S = 10; // a Retry-After longer than this is not waited for: the problem goes to the caller
// Codes that say "the same request may succeed later"; everything else is final (docs/integration.md).
const RETRYABLE = [
    'rate_limited', 'upstream_unavailable', 'upstream_timeout', 'upstream_bad_response',
    'limits_unavailable', 'audit_unavailable',
    'temporarily_unavailable', // the token endpoint's OAuth form of the same
];

/** An application/problem+json answer (or a token endpoint's OAuth error) with what the caller needs. */
final class Problem extends Exception
{
    public readonly string $problemCode;
    public readonly ?string $requestId; // quote it to support
    public readonly ?float $retryAfter;
    public readonly array $errors; // validation failures: [{loc, code, message}]
    public readonly array $fields; // field_not_allowed: the refused field names
    public int $retried = 0;

    public function __construct(public readonly int $status, ?array $body, array $headers)
    {
        $this->problemCode = $body['code'] ?? $body['error'] ?? "http_$status";
        parent::__construct("$status {$this->problemCode}");
        $this->requestId = $body['request_id'] ?? $headers['x-request-id'] ?? null;
        $this->retryAfter = parse_retry_after($headers['retry-after'] ?? null);
        $this->errors = $body['errors'] ?? [];
        $this->fields = $body['fields'] ?? [];
    }

    public function retryable(): bool
    {
        return in_array($this->problemCode, RETRYABLE, true)
            || (str_starts_with($this->problemCode, 'http_') && in_array($this->status, [502, 503, 504], true));
    }
}

function parse_retry_after(?string $value): ?float
{
    if ($value === null || trim($value) === '') {
        return null;
    }
    if (ctype_digit(trim($value))) {
        return (float) trim($value);
    }
    $at = strtotime($value); // an HTTP date
    return $at === false ? null : (float) max(0, $at - time());
}

/** One HTTP request with curl: [status, decoded JSON body or null, lower-case headers]. */
function http(string $method, string $url, array $headers = [], ?string $body = null): array
{
    $received = [];
    $curl = curl_init($url);
    curl_setopt_array($curl, [
        CURLOPT_CUSTOMREQUEST => $method,
        CURLOPT_RETURNTRANSFER => true,
        CURLOPT_HTTPHEADER => $headers,
        CURLOPT_TIMEOUT => 30,
        CURLOPT_HEADERFUNCTION => function ($curl, string $line) use (&$received): int {
            $parts = explode(':', $line, 2);
            if (count($parts) === 2) {
                $received[strtolower(trim($parts[0]))] = trim($parts[1]);
            }
            return strlen($line);
        },
    ]);
    if ($body !== null) {
        curl_setopt($curl, CURLOPT_POSTFIELDS, $body);
    }
    $text = curl_exec($curl);
    if ($text === false) {
        throw new RuntimeException('connection failed: ' . curl_error($curl));
    }
    $status = curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
    curl_close($curl);
    $json = str_contains($received['content-type'] ?? '', 'json') ? json_decode($text, true) : null;
    return [$status, $json, $received];
}

/** `$attempt()` again while it fails with a retryable problem, waiting Retry-After (or a short back-off). */
function with_retries(callable $attempt): array
{
    for ($n = 1; ; $n++) {
        [$status, $body, $headers] = $attempt();
        if ($status < 400) {
            return [$body, $headers];
        }
        $problem = new Problem($status, $body, $headers);
        $problem->retried = $n - 1;
        $wait = $problem->retryAfter ?? 0.5 * 2 ** ($n - 1);
        if (!$problem->retryable() || $n >= MAX_ATTEMPTS || $wait > MAX_WAIT_S) {
            throw $problem;
        }
        printf("retry: status=%d code=%s wait_s=%s attempt=%d\n", $status, $problem->problemCode, $wait + 0, $n);
        usleep((int) ($wait * 1_000_000));
    }
}

function b64url(string $data): string
{
    return rtrim(strtr(base64_encode($data), '+/', '-_'), '=');
}

function b64url_decode(string $data): string
{
    return base64_decode(strtr($data, '-_', '+/'), true) ?: throw new RuntimeException('bad base64url');
}

/** A DER-encoded ECDSA signature (what openssl_sign gives) as JWS wants it: r || s, 32 bytes each. */
function der_to_raw(string $der): string
{
    $offset = 2 + (ord($der[1]) & 0x80 ? ord($der[1]) & 0x7f : 0); // SEQUENCE header
    $raw = '';
    for ($i = 0; $i < 2; $i++) {
        $length = ord($der[$offset + 1]);
        $integer = ltrim(substr($der, $offset + 2, $length), "\0");
        $raw .= str_pad($integer, 32, "\0", STR_PAD_LEFT);
        $offset += 2 + $length;
    }
    return $raw;
}

/** The reverse: r || s to DER, for openssl_verify. */
function raw_to_der(string $raw): string
{
    $integers = '';
    foreach (str_split($raw, 32) as $half) {
        $half = ltrim($half, "\0");
        if ($half === '' || ord($half[0]) & 0x80) {
            $half = "\0" . $half;
        }
        $integers .= "\x02" . chr(strlen($half)) . $half;
    }
    return "\x30" . chr(strlen($integers)) . $integers;
}

/** A P-256 public JWK as PEM: the fixed SubjectPublicKeyInfo prefix, then the uncompressed point. */
function ec_jwk_to_pem(array $jwk): string
{
    $prefix = hex2bin('3059301306072a8648ce3d020106082a8648ce3d03010703420004');
    $der = $prefix . b64url_decode($jwk['x']) . b64url_decode($jwk['y']);
    return "-----BEGIN PUBLIC KEY-----\n" . chunk_split(base64_encode($der), 64, "\n") . "-----END PUBLIC KEY-----\n";
}

/** Access tokens for one way of authenticating, cached until shortly before they expire. */
final class TokenSource
{
    private ?string $token = null;
    private float $expiresAt = 0;
    public int $fetched = 0;
    public int $used = 0;
    private $key = null;
    public string $alg = '';

    // $method: "client_secret_basic" or "private_key_jwt"; $audience: a client assertion's aud, the token endpoint
    // URL from the metadata.
    public function __construct(public readonly string $method, private readonly string $audience)
    {
        if ($method === 'private_key_jwt') {
            $this->key = openssl_pkey_get_private(file_get_contents(PRIVATE_KEY_FILE))
                ?: throw new RuntimeException('DANCU_PRIVATE_KEY_FILE: not a private key');
            $this->alg = openssl_pkey_get_details($this->key)['type'] === OPENSSL_KEYTYPE_EC ? 'ES256' : 'RS256';
        }
    }

    public function get(): string
    {
        $this->used++;
        if ($this->token !== null && microtime(true) < $this->expiresAt - REFRESH_MARGIN_S) {
            return $this->token;
        }
        [$body] = with_retries(fn () => $this->request());
        $this->token = $body['access_token'];
        $this->expiresAt = microtime(true) + $body['expires_in'];
        $this->fetched++;
        $alg = $this->alg !== '' ? " alg={$this->alg}" : '';
        printf("token: method=%s%s fetched expires_in=%d\n", $this->method, $alg, $body['expires_in']);
        return $this->token;
    }

    public function invalidate(): void
    {
        $this->token = null;
    }

    private function request(): array
    {
        $form = ['grant_type' => 'client_credentials'];
        $headers = ['Content-Type: application/x-www-form-urlencoded'];
        if ($this->method === 'client_secret_basic') {
            // RFC 6749 2.3.1: each part form-encoded before Basic encoding.
            $headers[] = 'Authorization: Basic ' . base64_encode(urlencode(CLIENT_ID) . ':' . urlencode(CLIENT_SECRET));
        } else {
            $form['client_assertion_type'] = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
            $form['client_assertion'] = $this->assertion(); // a new one per attempt: each jti is single-use
        }
        return http('POST', GATEWAY . '/oauth2/token', $headers, http_build_query($form));
    }

    private function assertion(): string
    {
        $now = time();
        $header = ['alg' => $this->alg, 'typ' => 'JWT'] + (KEY_ID !== '' ? ['kid' => KEY_ID] : []);
        $claims = [
            'iss' => CLIENT_ID, 'sub' => CLIENT_ID, 'aud' => $this->audience,
            'iat' => $now, 'exp' => $now + 120, 'jti' => bin2hex(random_bytes(16)),
        ];
        $input = b64url(json_encode($header)) . '.' . b64url(json_encode($claims, JSON_UNESCAPED_SLASHES));
        openssl_sign($input, $signature, $this->key, OPENSSL_ALGO_SHA256) ?: throw new RuntimeException('sign');
        return $input . '.' . b64url($this->alg === 'ES256' ? der_to_raw($signature) : $signature);
    }
}

/** Citizen calls: the token, the purpose, problem handling and retries in one place. */
final class Gateway
{
    public function __construct(private readonly TokenSource $tokens)
    {
    }

    public function post(string $path, array $body, array $extraHeaders = []): array
    {
        $attempt = fn () => http('POST', GATEWAY . $path, [
            'Authorization: Bearer ' . $this->tokens->get(),
            'Content-Type: application/json',
            'Accept-Language: vi', // problem titles in Vietnamese; "en" for English
            'X-Purpose: ' . PURPOSE,
            'X-Request-Id: portal-' . bin2hex(random_bytes(12)), // your own id, echoed back and kept in the audit log
            ...$extraHeaders,
        ], json_encode($body, JSON_UNESCAPED_UNICODE));
        try {
            return with_retries($attempt);
        } catch (Problem $problem) {
            if ($problem->status !== 401) {
                throw $problem;
            }
            $this->tokens->invalidate(); // an expired or revoked token: fetch a new one once, then give up
            return with_retries($attempt);
        }
    }
}

/**
 * Checks a verification attestation (compact JWS, ES256) against the JWKS: signature, type, issuer, content, and
 * that its input_hash is the hash of the values we sent (what a dossier keeps to prove what was checked).
 */
function check_attestation(string $jws, array &$jwks, string $issuer, array $expected, array $sent): array
{
    [$headerPart, $payloadPart, $signaturePart] = explode('.', $jws);
    $header = json_decode(b64url_decode($headerPart), true);
    if (($header['alg'] ?? '') !== 'ES256' || ($header['typ'] ?? '') !== 'verification+jwt') {
        throw new RuntimeException('not an attestation');
    }
    $find = fn (array $set) => array_values(array_filter($set['keys'], fn ($k) => ($k['kid'] ?? null) === $header['kid']))[0] ?? null;
    $jwk = $find($jwks);
    if ($jwk === null) { // a key rotated in after we fetched the set: fetch it once more
        [$jwks] = with_retries(fn () => http('GET', GATEWAY . '/.well-known/jwks.json'));
        $jwk = $find($jwks);
    }
    if ($jwk === null || $jwk['kty'] !== 'EC' || $jwk['crv'] !== 'P-256') {
        throw new RuntimeException('no ES256 key with this kid');
    }
    $signature = raw_to_der(b64url_decode($signaturePart));
    if (openssl_verify("$headerPart.$payloadPart", $signature, ec_jwk_to_pem($jwk), OPENSSL_ALGO_SHA256) !== 1) {
        throw new RuntimeException('bad signature');
    }
    $claims = json_decode(b64url_decode($payloadPart), true);
    if (($claims['iss'] ?? null) !== $issuer) {
        throw new RuntimeException('wrong issuer');
    }
    if (isset($claims['exp']) && $claims['exp'] < time()) {
        throw new RuntimeException('expired');
    }
    foreach ($expected as $name => $value) {
        if (($claims[$name] ?? null) !== $value) {
            throw new RuntimeException("$name differs");
        }
    }
    // SHA-256 of the salt, then "name=value" lines: personal_id, then each checked field in order. Text must be in
    // NFC: this file's literals are (with ext-intl, Normalizer::normalize() makes sure of it).
    $text = $claims['input_salt'] . "\n";
    foreach (['personal_id', ...$claims['checked_fields']] as $name) {
        $text .= "$name={$sent[$name]}\n";
    }
    if (!hash_equals($claims['input_hash'], hash('sha256', $text))) {
        throw new RuntimeException('input_hash is not the hash of what was sent');
    }
    return [$header['kid'], $claims];
}

function report(Problem $problem): void
{
    $extra = $problem->fields ? ' fields=' . implode(',', $problem->fields) : '';
    if ($problem->errors) {
        $extra .= ' errors=' . implode(',', array_map(fn ($e) => implode('.', $e['loc']), $problem->errors));
    }
    printf(
        "problem: status=%d code=%s retried=%d request_id=%s%s\n",
        $problem->status, $problem->problemCode, $problem->retried, $problem->requestId, $extra
    );
}

function expect_problem(callable $call): void
{
    try {
        $call();
        echo "problem: none\n";
    } catch (Problem $problem) {
        report($problem);
    }
}

function json_word(mixed $value): string
{
    return json_encode($value); // true, false, null as JSON writes them
}

function main(): void
{
    if (CLIENT_ID === '') {
        fwrite(STDERR, "set DANCU_CLIENT_ID (and DANCU_CLIENT_SECRET and/or DANCU_PRIVATE_KEY_FILE)\n");
        exit(2);
    }
    [$metadata] = with_retries(fn () => http('GET', GATEWAY . '/.well-known/oauth-authorization-server'));
    [$jwks] = with_retries(fn () => http('GET', GATEWAY . '/.well-known/jwks.json'));
    echo 'gateway: ' . GATEWAY . " issuer={$metadata['issuer']}\n";

    // 1. Client secret: one token serves every call until shortly before it expires.
    $bySecret = new TokenSource('client_secret_basic', $metadata['token_endpoint']);
    $gateway = new Gateway($bySecret);

    [$answer, $headers] = $gateway->post('/v1/citizens/verify', RESIDENT, ['X-Dossier-Id: HS-DEMO-0001']);
    printf("verify: match=%s reason=%s request_id=%s\n", json_word($answer['match']), $answer['reason'] ?? 'null', $headers['x-request-id']);

    [$kid, $claims] = check_attestation($answer['attestation'], $jwks, $metadata['issuer'], [
        'verification_id' => $answer['verification_id'],
        'personal_id' => RESIDENT['personal_id'],
        'match' => $answer['match'],
    ], RESIDENT);
    printf("attestation: valid kid=%s verification_id=%s match=%s input_hash=checked\n", $kid, $claims['verification_id'], json_word($claims['match']));

    [$record, $headers] = $gateway->post('/v1/citizens/lookup', ['personal_id' => RESIDENT['personal_id']]);
    $released = count(array_diff(array_keys($record), ['_meta']));
    printf("lookup: fields=%d source=%s request_id=%s\n", $released, $record['_meta']['source'], $headers['x-request-id']);

    [$household, $headers] = $gateway->post('/v1/citizens/household', ['personal_id' => RESIDENT['personal_id']]);
    printf("household: members=%d request_id=%s\n", count($household['members']), $headers['x-request-id']);

    // 2. Problems: final answers are reported at once, never retried.
    expect_problem(fn () => $gateway->post('/v1/citizens/lookup', ['personal_id' => CANCELLED_ID]));
    expect_problem(fn () => $gateway->post('/v1/citizens/verify', ['personal_id' => '000000000000', 'gender' => 'male']));
    printf("token: method=%s fetched=%d used=%d\n", $bySecret->method, $bySecret->fetched, $bySecret->used);

    // 3. private_key_jwt: no shared secret on the wire; the assertion is signed with the portal's own key.
    if (PRIVATE_KEY_FILE !== '') {
        $byKey = new TokenSource('private_key_jwt', $metadata['token_endpoint']);
        $keyed = new Gateway($byKey);
        [$again, $headers] = $keyed->post('/v1/citizens/verify', ['personal_id' => RESIDENT['personal_id'], 'gender' => 'male']);
        printf("verify: match=%s reason=%s request_id=%s\n", json_word($again['match']), $again['reason'] ?? 'null', $headers['x-request-id']);
        $keyed->post('/v1/citizens/household', ['personal_id' => RESIDENT['personal_id']]);
        printf("token: method=%s fetched=%d used=%d\n", $byKey->method, $byKey->fetched, $byKey->used);
    } else {
        echo "token: method=private_key_jwt skipped (DANCU_PRIVATE_KEY_FILE is not set)\n";
    }

    // 4. Rehearse an upstream failure against a sandbox gateway (DANCU_SANDBOX=true there).
    if (SANDBOX_FAULT !== '') {
        expect_problem(fn () => $gateway->post('/v1/citizens/verify', RESIDENT, ['X-Sandbox-Fault: ' . SANDBOX_FAULT]));
    }
    echo "done\n";
}

try {
    main();
} catch (Problem $problem) {
    report($problem);
    exit(1);
}
