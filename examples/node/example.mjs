// dancu-gateway from Node.js 20+ with the built-in fetch and node:crypto; no package to install.
// Ví dụ gọi dancu-gateway từ Node.js 20+ (fetch và node:crypto có sẵn, không cần cài gói nào).
//
//   DANCU_GATEWAY=http://127.0.0.1:8000 DANCU_CLIENT_ID=... DANCU_CLIENT_SECRET=... \
//   DANCU_PRIVATE_KEY_FILE=portal-key.pem DANCU_KEY_ID=portal-key-1 node example.mjs
//
// What it shows (examples/README.md): a token with the client secret and one with private_key_jwt, each cached
// until shortly before it expires; verify, lookup and household; the verification's attestation checked offline
// against the gateway's JWKS; problem+json answers, retrying only what may be retried and honouring Retry-After.
// It prints no personal data: counts, outcomes and request ids only.

import { createHash, createPrivateKey, createPublicKey, randomUUID, sign, verify } from "node:crypto";
import { readFileSync } from "node:fs";

const GATEWAY = (process.env.DANCU_GATEWAY ?? "http://127.0.0.1:8000").replace(/\/+$/, "");
const CLIENT_ID = process.env.DANCU_CLIENT_ID;
const CLIENT_SECRET = process.env.DANCU_CLIENT_SECRET;
const PRIVATE_KEY_FILE = process.env.DANCU_PRIVATE_KEY_FILE; // PKCS#8 PEM, EC P-256 (ES256) or RSA (RS256)
const KEY_ID = process.env.DANCU_KEY_ID; // the kid registered with the gateway (optional)
const PURPOSE = process.env.DANCU_PURPOSE ?? "DEMO-1.000001";
const SANDBOX_FAULT = process.env.DANCU_SANDBOX_FAULT; // e.g. "status=503" against a DANCU_SANDBOX=true gateway

// The demo resident (a persona of the mock national database, docs/personas.md).
const RESIDENT = { personal_id: "052068000108", full_name: "Nguyễn Văn Thành", date_of_birth: "1968-04-15" };
const CANCELLED_ID = "052081000125"; // a cancelled ID: answered 404 not_found

const REFRESH_MARGIN_S = 30; // fetch a new token this long before the cached one expires
const MAX_ATTEMPTS = 3; // one call and at most two retries
const MAX_WAIT_S = 10; // a Retry-After longer than this is not waited for: the problem goes to the caller
// Codes that say "the same request may succeed later"; everything else is final (docs/integration.md).
const RETRYABLE = new Set([
  "rate_limited",
  "upstream_unavailable",
  "upstream_timeout",
  "upstream_bad_response",
  "limits_unavailable",
  "audit_unavailable",
  "temporarily_unavailable", // the token endpoint's OAuth form of the same
]);

/** An application/problem+json answer (or a token endpoint's OAuth error) with what the caller needs. */
class Problem extends Error {
  constructor(status, body, headers) {
    const code = body?.code ?? body?.error ?? `http_${status}`;
    super(`${status} ${code}`);
    this.status = status;
    this.code = code;
    this.title = body?.title ?? body?.error_description ?? "";
    this.errors = body?.errors ?? []; // validation failures: [{loc, code, message}]
    this.fields = body?.fields ?? []; // field_not_allowed: the refused field names
    this.requestId = body?.request_id ?? headers.get("x-request-id"); // quote it to support
    this.retryAfter = parseRetryAfter(headers.get("retry-after"));
    this.retried = 0;
  }

  get retryable() {
    return RETRYABLE.has(this.code) || (this.code.startsWith("http_") && [502, 503, 504].includes(this.status));
  }
}

function parseRetryAfter(value) {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value); // an HTTP date
  return Number.isNaN(at) ? null : Math.max(0, (at - Date.now()) / 1000);
}

const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

/** `attempt()` again while it fails with a retryable problem, waiting Retry-After (or a short back-off). */
async function withRetries(attempt) {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      if (!(error instanceof Problem)) throw error;
      error.retried = n - 1;
      const wait = error.retryAfter ?? 0.5 * 2 ** (n - 1);
      if (!error.retryable || n >= MAX_ATTEMPTS || wait > MAX_WAIT_S) throw error;
      console.log(`retry: status=${error.status} code=${error.code} wait_s=${wait} attempt=${n}`);
      await sleep(wait);
    }
  }
}

async function readAnswer(response) {
  const type = response.headers.get("content-type") ?? "";
  const body = type.includes("json") ? await response.json() : null;
  if (!response.ok) throw new Problem(response.status, body, response.headers);
  return { body, requestId: response.headers.get("x-request-id") };
}

const b64url = (data) => Buffer.from(data).toString("base64url");

/** Access tokens for one way of authenticating, cached until shortly before they expire. */
class TokenSource {
  constructor(method, tokenEndpoint) {
    this.method = method; // "client_secret_basic" or "private_key_jwt"
    this.audience = tokenEndpoint; // a client assertion's aud: the token endpoint URL from the metadata
    this.token = null;
    this.expiresAt = 0;
    this.fetched = 0;
    this.used = 0;
    if (method === "private_key_jwt") {
      this.key = createPrivateKey(readFileSync(PRIVATE_KEY_FILE));
      this.alg = this.key.asymmetricKeyType === "ec" ? "ES256" : "RS256";
    }
  }

  async get() {
    this.used++;
    if (this.token && Date.now() / 1000 < this.expiresAt - REFRESH_MARGIN_S) return this.token;
    const { body } = await withRetries(() => this.#request());
    this.token = body.access_token;
    this.expiresAt = Date.now() / 1000 + body.expires_in;
    this.fetched++;
    const alg = this.alg ? ` alg=${this.alg}` : "";
    console.log(`token: method=${this.method}${alg} fetched expires_in=${body.expires_in}`);
    return this.token;
  }

  invalidate() {
    this.token = null;
  }

  #request() {
    const form = new URLSearchParams({ grant_type: "client_credentials" });
    const headers = { "Content-Type": "application/x-www-form-urlencoded" };
    if (this.method === "client_secret_basic") {
      // RFC 6749 2.3.1: each part form-encoded before Basic encoding.
      const user = `${encodeURIComponent(CLIENT_ID)}:${encodeURIComponent(CLIENT_SECRET)}`;
      headers.Authorization = `Basic ${Buffer.from(user).toString("base64")}`;
    } else {
      form.set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
      form.set("client_assertion", this.#assertion()); // a new one per attempt: each jti is single-use
    }
    return fetch(`${GATEWAY}/oauth2/token`, { method: "POST", headers, body: form }).then(readAnswer);
  }

  #assertion() {
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: this.alg, typ: "JWT", ...(KEY_ID ? { kid: KEY_ID } : {}) };
    const claims = { iss: CLIENT_ID, sub: CLIENT_ID, aud: this.audience, iat: now, exp: now + 120, jti: randomUUID() };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const options = this.alg === "ES256" ? { key: this.key, dsaEncoding: "ieee-p1363" } : this.key;
    return `${input}.${b64url(sign("sha256", Buffer.from(input), options))}`;
  }
}

/** Citizen calls: the token, the purpose, problem handling and retries in one place. */
class Gateway {
  constructor(tokens) {
    this.tokens = tokens;
  }

  async post(path, body, extraHeaders = {}) {
    let renewed = false;
    for (;;) {
      try {
        return await withRetries(async () => {
          const response = await fetch(`${GATEWAY}${path}`, {
            method: "POST",
            headers: {
              Authorization: `Bearer ${await this.tokens.get()}`,
              "Content-Type": "application/json",
              "Accept-Language": "vi", // problem titles in Vietnamese; "en" for English
              "X-Purpose": PURPOSE,
              "X-Request-Id": `portal-${randomUUID()}`, // your own id, echoed back and kept in the audit log
              ...extraHeaders,
            },
            body: JSON.stringify(body),
          });
          return await readAnswer(response);
        });
      } catch (error) {
        // An expired or revoked token: fetch a new one once, then give up.
        if (error instanceof Problem && error.status === 401 && !renewed) {
          renewed = true;
          this.tokens.invalidate();
          continue;
        }
        throw error;
      }
    }
  }
}

/** Checks a verification attestation (compact JWS, ES256) against the JWKS: signature, type, issuer, content,
 * and that its input_hash is the hash of the values we sent (what a dossier keeps to prove what was checked). */
async function checkAttestation(jws, jwks, issuer, expected, sent) {
  const [headerPart, payloadPart, signaturePart] = jws.split(".");
  const header = JSON.parse(Buffer.from(headerPart, "base64url"));
  if (header.alg !== "ES256" || header.typ !== "verification+jwt") throw new Error("not an attestation");
  let jwk = jwks.keys.find((key) => key.kid === header.kid);
  if (!jwk) {
    // A key rotated in after we fetched the set: fetch it once more.
    jwks.keys = (await (await fetch(`${GATEWAY}/.well-known/jwks.json`)).json()).keys;
    jwk = jwks.keys.find((key) => key.kid === header.kid);
  }
  if (!jwk || jwk.kty !== "EC" || jwk.crv !== "P-256") throw new Error("no ES256 key with this kid");
  const key = createPublicKey({ key: jwk, format: "jwk" });
  const signed = Buffer.from(`${headerPart}.${payloadPart}`);
  const signature = Buffer.from(signaturePart, "base64url");
  if (!verify("sha256", signed, { key, dsaEncoding: "ieee-p1363" }, signature)) throw new Error("bad signature");
  const claims = JSON.parse(Buffer.from(payloadPart, "base64url"));
  if (claims.iss !== issuer) throw new Error("wrong issuer");
  if (claims.exp !== undefined && claims.exp < Date.now() / 1000) throw new Error("expired");
  for (const [name, value] of Object.entries(expected)) {
    if (claims[name] !== value) throw new Error(`${name} differs`);
  }
  // SHA-256 of the salt, then "name=value" lines: personal_id, then each checked field in order (text in NFC).
  const lines = ["personal_id", ...claims.checked_fields].map((name) => `${name}=${sent[name].normalize("NFC")}\n`);
  const digest = createHash("sha256").update(`${claims.input_salt}\n${lines.join("")}`, "utf8").digest("hex");
  if (digest !== claims.input_hash) throw new Error("input_hash is not the hash of what was sent");
  return { kid: header.kid, claims };
}

function report(problem) {
  const extra = problem.fields.length ? ` fields=${problem.fields.join(",")}` : "";
  const locs = problem.errors.length ? ` errors=${problem.errors.map((e) => e.loc.join(".")).join(",")}` : "";
  console.log(
    `problem: status=${problem.status} code=${problem.code} retried=${problem.retried}` +
      ` request_id=${problem.requestId}${extra}${locs}`,
  );
}

async function expectProblem(call) {
  try {
    await call();
    console.log("problem: none");
  } catch (error) {
    if (!(error instanceof Problem)) throw error;
    report(error);
  }
}

async function main() {
  if (!CLIENT_ID) throw new Error("set DANCU_CLIENT_ID (and DANCU_CLIENT_SECRET and/or DANCU_PRIVATE_KEY_FILE)");
  const metadata = await (await fetch(`${GATEWAY}/.well-known/oauth-authorization-server`)).json();
  const jwks = await (await fetch(`${GATEWAY}/.well-known/jwks.json`)).json();
  console.log(`gateway: ${GATEWAY} issuer=${metadata.issuer}`);

  // 1. Client secret: one token serves every call until shortly before it expires.
  const bySecret = new TokenSource("client_secret_basic", metadata.token_endpoint);
  const gateway = new Gateway(bySecret);

  const verified = await gateway.post("/v1/citizens/verify", RESIDENT, { "X-Dossier-Id": "HS-DEMO-0001" });
  const answer = verified.body;
  console.log(`verify: match=${answer.match} reason=${answer.reason} request_id=${verified.requestId}`);

  const { kid, claims } = await checkAttestation(answer.attestation, jwks, metadata.issuer, {
    verification_id: answer.verification_id,
    personal_id: RESIDENT.personal_id,
    match: answer.match,
  }, RESIDENT);
  console.log(
    `attestation: valid kid=${kid} verification_id=${claims.verification_id} match=${claims.match} input_hash=checked`,
  );

  const record = await gateway.post("/v1/citizens/lookup", { personal_id: RESIDENT.personal_id });
  const released = Object.keys(record.body).filter((name) => name !== "_meta");
  console.log(`lookup: fields=${released.length} source=${record.body._meta.source} request_id=${record.requestId}`);

  const household = await gateway.post("/v1/citizens/household", { personal_id: RESIDENT.personal_id });
  console.log(`household: members=${household.body.members.length} request_id=${household.requestId}`);

  // 2. Problems: final answers are reported at once, never retried.
  await expectProblem(() => gateway.post("/v1/citizens/lookup", { personal_id: CANCELLED_ID }));
  await expectProblem(() => gateway.post("/v1/citizens/verify", { personal_id: "000000000000", gender: "male" }));
  console.log(`token: method=${bySecret.method} fetched=${bySecret.fetched} used=${bySecret.used}`);

  // 3. private_key_jwt: no shared secret on the wire; the assertion is signed with the portal's own key.
  if (PRIVATE_KEY_FILE) {
    const byKey = new TokenSource("private_key_jwt", metadata.token_endpoint);
    const keyed = new Gateway(byKey);
    const again = await keyed.post("/v1/citizens/verify", { personal_id: RESIDENT.personal_id, gender: "male" });
    console.log(`verify: match=${again.body.match} reason=${again.body.reason} request_id=${again.requestId}`);
    await keyed.post("/v1/citizens/household", { personal_id: RESIDENT.personal_id });
    console.log(`token: method=${byKey.method} fetched=${byKey.fetched} used=${byKey.used}`);
  } else {
    console.log("token: method=private_key_jwt skipped (DANCU_PRIVATE_KEY_FILE is not set)");
  }

  // 4. Rehearse an upstream failure against a sandbox gateway (DANCU_SANDBOX=true there).
  if (SANDBOX_FAULT) {
    await expectProblem(() => gateway.post("/v1/citizens/verify", RESIDENT, { "X-Sandbox-Fault": SANDBOX_FAULT }));
  }
  console.log("done");
}

main().catch((error) => {
  if (error instanceof Problem) report(error);
  else console.error(`error: ${error.message}`);
  process.exit(1);
});
