// dancu-gateway from C# with HttpClient, System.Text.Json and System.Security.Cryptography; no NuGet package.
// Ví dụ gọi dancu-gateway từ C# (HttpClient, System.Text.Json, System.Security.Cryptography; không cần gói NuGet).
//
//   .NET 10 or newer runs the file as it is:   dotnet run Example.cs
//   .NET 8: `dotnet new console`, replace Program.cs with this file, then `dotnet run`.
//   Environment: DANCU_GATEWAY, DANCU_CLIENT_ID, DANCU_CLIENT_SECRET, DANCU_PRIVATE_KEY_FILE, DANCU_KEY_ID.
//
// What it shows (examples/README.md): a token with the client secret and one with private_key_jwt, each cached
// until shortly before it expires; verify, lookup and household; the verification's attestation checked offline
// against the gateway's JWKS; problem+json answers, retrying only what may be retried and honouring Retry-After.
// It prints no personal data: counts, outcomes and request ids only. In an ASP.NET Core portal, register one
// HttpClient (IHttpClientFactory) and one TokenSource per credential as singletons.

using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading;
using System.Threading.Tasks;

var gatewayUrl = Env("DANCU_GATEWAY", "http://127.0.0.1:8000").TrimEnd('/');
var clientId = Env("DANCU_CLIENT_ID", "");
var clientSecret = Env("DANCU_CLIENT_SECRET", "");
var privateKeyFile = Env("DANCU_PRIVATE_KEY_FILE", ""); // PKCS#8 PEM, EC P-256 (ES256) or RSA (RS256)
var keyId = Env("DANCU_KEY_ID", ""); // the kid registered with the gateway (optional)
var purpose = Env("DANCU_PURPOSE", "DEMO-1.000001");
var sandboxFault = Env("DANCU_SANDBOX_FAULT", ""); // e.g. "status=503" against a DANCU_SANDBOX=true gateway

// The demo resident (a persona of the mock national database, docs/personas.md).
var resident = new JsonObject
{
    ["personal_id"] = "052068000108",
    ["full_name"] = "Nguyễn Văn Thành",
    ["date_of_birth"] = "1968-04-15",
};
const string CancelledId = "052081000125"; // a cancelled ID: answered 404 not_found

if (clientId == "")
{
    Console.Error.WriteLine("set DANCU_CLIENT_ID (and DANCU_CLIENT_SECRET and/or DANCU_PRIVATE_KEY_FILE)");
    return 2;
}

using var http = new HttpClient { BaseAddress = new Uri(gatewayUrl + "/"), Timeout = TimeSpan.FromSeconds(30) };
try
{
    var metadata = (await Retry.Send(http, () => new HttpRequestMessage(HttpMethod.Get, ".well-known/oauth-authorization-server"))).Body;
    var jwks = (await Retry.Send(http, () => new HttpRequestMessage(HttpMethod.Get, ".well-known/jwks.json"))).Body;
    var issuer = (string)metadata["issuer"]!;
    var tokenEndpoint = (string)metadata["token_endpoint"]!;
    Console.WriteLine($"gateway: {gatewayUrl} issuer={issuer}");

    // 1. Client secret: one token serves every call until shortly before it expires.
    var bySecret = new TokenSource(http, "client_secret_basic", tokenEndpoint, clientId, clientSecret, null, keyId);
    var gateway = new Gateway(http, bySecret, purpose);

    var verified = await gateway.Post("v1/citizens/verify", resident, ("X-Dossier-Id", "HS-DEMO-0001"));
    var answer = verified.Body;
    Console.WriteLine($"verify: match={Word(answer["match"])} reason={Word(answer["reason"])} request_id={verified.RequestId}");

    var (kid, claims) = await Attestation.Check(http, (string)answer["attestation"]!, jwks, issuer, new()
    {
        ["verification_id"] = (string)answer["verification_id"]!,
        ["personal_id"] = (string)resident["personal_id"]!,
        ["match"] = (bool)answer["match"]!,
    }, resident);
    Console.WriteLine($"attestation: valid kid={kid} verification_id={claims["verification_id"]} match={Word(claims["match"])} input_hash=checked");

    var record = await gateway.Post("v1/citizens/lookup", new JsonObject { ["personal_id"] = (string)resident["personal_id"]! });
    var released = record.Body.Count(pair => pair.Key != "_meta");
    Console.WriteLine($"lookup: fields={released} source={record.Body["_meta"]!["source"]} request_id={record.RequestId}");

    var household = await gateway.Post("v1/citizens/household", new JsonObject { ["personal_id"] = (string)resident["personal_id"]! });
    Console.WriteLine($"household: members={household.Body["members"]!.AsArray().Count} request_id={household.RequestId}");

    // 2. Problems: final answers are reported at once, never retried.
    await ExpectProblem(() => gateway.Post("v1/citizens/lookup", new JsonObject { ["personal_id"] = CancelledId }));
    await ExpectProblem(() => gateway.Post("v1/citizens/verify", new JsonObject { ["personal_id"] = "000000000000", ["gender"] = "male" }));
    Console.WriteLine($"token: method={bySecret.Method} fetched={bySecret.Fetched} used={bySecret.Used}");

    // 3. private_key_jwt: no shared secret on the wire; the assertion is signed with the portal's own key.
    if (privateKeyFile != "")
    {
        var byKey = new TokenSource(http, "private_key_jwt", tokenEndpoint, clientId, null, File.ReadAllText(privateKeyFile), keyId);
        var keyed = new Gateway(http, byKey, purpose);
        var again = await keyed.Post("v1/citizens/verify", new JsonObject { ["personal_id"] = (string)resident["personal_id"]!, ["gender"] = "male" });
        Console.WriteLine($"verify: match={Word(again.Body["match"])} reason={Word(again.Body["reason"])} request_id={again.RequestId}");
        await keyed.Post("v1/citizens/household", new JsonObject { ["personal_id"] = (string)resident["personal_id"]! });
        Console.WriteLine($"token: method={byKey.Method} fetched={byKey.Fetched} used={byKey.Used}");
    }
    else
    {
        Console.WriteLine("token: method=private_key_jwt skipped (DANCU_PRIVATE_KEY_FILE is not set)");
    }

    // 4. Rehearse an upstream failure against a sandbox gateway (DANCU_SANDBOX=true there).
    if (sandboxFault != "")
    {
        await ExpectProblem(() => gateway.Post("v1/citizens/verify", resident, ("X-Sandbox-Fault", sandboxFault)));
    }
    Console.WriteLine("done");
    return 0;
}
catch (Problem problem)
{
    Report(problem);
    return 1;
}

static string Env(string name, string fallback) =>
    Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : fallback;

static string Word(JsonNode? value) => value is null ? "null" : value.ToJsonString().Trim('"');

static void Report(Problem problem)
{
    var line = new StringBuilder($"problem: status={problem.Status} code={problem.Code} retried={problem.Retried} request_id={problem.RequestId}");
    if (problem.Fields.Count > 0) line.Append(" fields=").Append(string.Join(",", problem.Fields));
    if (problem.Errors.Count > 0)
    {
        line.Append(" errors=").Append(string.Join(",", problem.Errors.Select(
            error => string.Join(".", error!["loc"]!.AsArray().Select(part => Word(part))))));
    }
    Console.WriteLine(line);
}

static async Task ExpectProblem(Func<Task<Answer>> call)
{
    try
    {
        await call();
        Console.WriteLine("problem: none");
    }
    catch (Problem problem)
    {
        Report(problem);
    }
}

record Answer(JsonObject Body, string? RequestId);

/** An application/problem+json answer (or a token endpoint's OAuth error) with what the caller needs. */
sealed class Problem : Exception
{
    // Codes that say "the same request may succeed later"; everything else is final (docs/integration.md).
    static readonly HashSet<string> Retryable = new()
    {
        "rate_limited", "upstream_unavailable", "upstream_timeout", "upstream_bad_response",
        "limits_unavailable", "audit_unavailable",
        "temporarily_unavailable", // the token endpoint's OAuth form of the same
    };

    public int Status { get; }
    public string Code { get; }
    public string? RequestId { get; } // quote it to support
    public double? RetryAfter { get; }
    public JsonArray Errors { get; } // validation failures: [{loc, code, message}]
    public List<string> Fields { get; } // field_not_allowed: the refused field names
    public int Retried { get; set; }

    public Problem(HttpResponseMessage response, JsonObject? body) : base($"{(int)response.StatusCode}")
    {
        Status = (int)response.StatusCode;
        Code = (string?)body?["code"] ?? (string?)body?["error"] ?? $"http_{Status}";
        RequestId = (string?)body?["request_id"]
            ?? (response.Headers.TryGetValues("X-Request-Id", out var ids) ? ids.First() : null);
        var retryAfter = response.Headers.RetryAfter;
        if (retryAfter?.Delta is { } delta) RetryAfter = delta.TotalSeconds;
        else if (retryAfter?.Date is { } date) RetryAfter = Math.Max(0, (date - DateTimeOffset.UtcNow).TotalSeconds);
        Errors = body?["errors"]?.AsArray() ?? new JsonArray();
        Fields = body?["fields"]?.AsArray().Select(field => (string)field!).ToList() ?? new List<string>();
    }

    public bool IsRetryable => Retryable.Contains(Code) || (Code.StartsWith("http_") && Status is 502 or 503 or 504);
}

static class Retry
{
    const int MaxAttempts = 3; // one call and at most two retries
    const double MaxWaitS = 10; // a Retry-After longer than this is not waited for: the problem goes to the caller

    /** The request again while it fails with a retryable problem, waiting Retry-After (or a short back-off). */
    public static async Task<Answer> Send(HttpClient http, Func<HttpRequestMessage> request)
    {
        for (var n = 1; ; n++)
        {
            using var response = await http.SendAsync(request());
            var text = await response.Content.ReadAsStringAsync();
            var isJson = response.Content.Headers.ContentType?.MediaType?.Contains("json") == true;
            var body = isJson ? JsonNode.Parse(text)?.AsObject() : null;
            var requestId = response.Headers.TryGetValues("X-Request-Id", out var ids) ? ids.First() : null;
            if (response.IsSuccessStatusCode) return new Answer(body ?? new JsonObject(), requestId);
            var problem = new Problem(response, body) { Retried = n - 1 };
            var wait = problem.RetryAfter ?? 0.5 * Math.Pow(2, n - 1);
            if (!problem.IsRetryable || n >= MaxAttempts || wait > MaxWaitS) throw problem;
            Console.WriteLine(FormattableString.Invariant($"retry: status={problem.Status} code={problem.Code} wait_s={wait} attempt={n}"));
            await Task.Delay(TimeSpan.FromSeconds(wait));
        }
    }
}

/** Access tokens for one way of authenticating, cached until shortly before they expire. */
sealed class TokenSource
{
    static readonly TimeSpan RefreshMargin = TimeSpan.FromSeconds(30); // fetch a new token this long before expiry

    readonly HttpClient http;
    readonly string audience; // a client assertion's aud: the token endpoint URL from the metadata
    readonly string clientId;
    readonly string? clientSecret;
    readonly string keyId;
    readonly AsymmetricAlgorithm? key;
    readonly SemaphoreSlim gate = new(1, 1); // one refresh at a time, however many requests wait for it
    string? token;
    DateTimeOffset expiresAt;

    public string Method { get; } // "client_secret_basic" or "private_key_jwt"
    public string Alg { get; } = "";
    public int Fetched { get; private set; }
    public int Used { get; private set; }

    public TokenSource(HttpClient http, string method, string tokenEndpoint, string clientId, string? clientSecret,
        string? privateKeyPem, string keyId)
    {
        this.http = http;
        Method = method;
        audience = tokenEndpoint;
        this.clientId = clientId;
        this.clientSecret = clientSecret;
        this.keyId = keyId;
        if (privateKeyPem is not null)
        {
            try
            {
                var ec = ECDsa.Create();
                ec.ImportFromPem(privateKeyPem);
                key = ec;
                Alg = "ES256";
            }
            catch (CryptographicException)
            {
                var rsa = RSA.Create();
                rsa.ImportFromPem(privateKeyPem);
                key = rsa;
                Alg = "RS256";
            }
        }
    }

    public async Task<string> Get()
    {
        await gate.WaitAsync();
        try
        {
            Used++;
            if (token is not null && DateTimeOffset.UtcNow < expiresAt - RefreshMargin) return token;
            var body = (await Retry.Send(http, Request)).Body;
            var expiresIn = (int)body["expires_in"]!;
            token = (string)body["access_token"]!;
            expiresAt = DateTimeOffset.UtcNow.AddSeconds(expiresIn);
            Fetched++;
            Console.WriteLine($"token: method={Method}{(Alg == "" ? "" : " alg=" + Alg)} fetched expires_in={expiresIn}");
            return token;
        }
        finally
        {
            gate.Release();
        }
    }

    public void Invalidate() => token = null;

    HttpRequestMessage Request()
    {
        var form = new Dictionary<string, string> { ["grant_type"] = "client_credentials" };
        var request = new HttpRequestMessage(HttpMethod.Post, "oauth2/token");
        if (Method == "client_secret_basic")
        {
            // RFC 6749 2.3.1: each part form-encoded before Basic encoding.
            var user = $"{WebUtility.UrlEncode(clientId)}:{WebUtility.UrlEncode(clientSecret)}";
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(user)));
        }
        else
        {
            form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
            form["client_assertion"] = Assertion(); // a new one per attempt: each jti is single-use
        }
        request.Content = new FormUrlEncodedContent(form);
        return request;
    }

    string Assertion()
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var header = new JsonObject { ["alg"] = Alg, ["typ"] = "JWT" };
        if (keyId != "") header["kid"] = keyId;
        var claims = new JsonObject
        {
            ["iss"] = clientId, ["sub"] = clientId, ["aud"] = audience,
            ["iat"] = now, ["exp"] = now + 120, ["jti"] = Guid.NewGuid().ToString(),
        };
        var input = $"{Base64Url(header.ToJsonString())}.{Base64Url(claims.ToJsonString())}";
        var data = Encoding.ASCII.GetBytes(input);
        // .NET's ECDsa signs in the IEEE P1363 form (r || s) that JWS wants.
        var signature = key is ECDsa ec
            ? ec.SignData(data, HashAlgorithmName.SHA256)
            : ((RSA)key!).SignData(data, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        return $"{input}.{Base64Url(signature)}";
    }

    public static string Base64Url(string text) => Base64Url(Encoding.UTF8.GetBytes(text));

    public static string Base64Url(byte[] data) => Convert.ToBase64String(data).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

/** Citizen calls: the token, the purpose, problem handling and retries in one place. */
sealed class Gateway(HttpClient http, TokenSource tokens, string purpose)
{
    public async Task<Answer> Post(string path, JsonObject body, params (string Name, string Value)[] extraHeaders)
    {
        async Task<Answer> Attempt()
        {
            var token = await tokens.Get();
            return await Retry.Send(http, () =>
            {
                var request = new HttpRequestMessage(HttpMethod.Post, path)
                {
                    Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
                };
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                request.Headers.AcceptLanguage.ParseAdd("vi"); // problem titles in Vietnamese; "en" for English
                request.Headers.Add("X-Purpose", purpose);
                request.Headers.Add("X-Request-Id", $"portal-{Guid.NewGuid()}"); // echoed back, kept in the audit log
                foreach (var (name, value) in extraHeaders) request.Headers.Add(name, value);
                return request;
            });
        }

        try
        {
            return await Attempt();
        }
        catch (Problem problem) when (problem.Status == 401)
        {
            tokens.Invalidate(); // an expired or revoked token: fetch a new one once, then give up
            return await Attempt();
        }
    }
}

static class Attestation
{
    /** Checks a verification attestation (compact JWS, ES256) against the JWKS: signature, type, issuer, content,
        and that its input_hash is the hash of the values we sent (what a dossier keeps to prove what was checked). */
    public static async Task<(string Kid, JsonObject Claims)> Check(HttpClient http, string jws, JsonObject jwks,
        string issuer, Dictionary<string, JsonNode?> expected, JsonObject sent)
    {
        var parts = jws.Split('.');
        var header = JsonNode.Parse(Decode(parts[0]))!.AsObject();
        if ((string?)header["alg"] != "ES256" || (string?)header["typ"] != "verification+jwt")
            throw new InvalidOperationException("not an attestation");
        var kid = (string)header["kid"]!;
        var jwk = Find(jwks, kid);
        if (jwk is null) // a key rotated in after we fetched the set: fetch it once more
        {
            jwks = (await Retry.Send(http, () => new HttpRequestMessage(HttpMethod.Get, ".well-known/jwks.json"))).Body;
            jwk = Find(jwks, kid);
        }
        if (jwk is null || (string?)jwk["kty"] != "EC" || (string?)jwk["crv"] != "P-256")
            throw new InvalidOperationException("no ES256 key with this kid");
        using var ec = ECDsa.Create(new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint { X = Decode((string)jwk["x"]!), Y = Decode((string)jwk["y"]!) },
        });
        var signed = Encoding.ASCII.GetBytes($"{parts[0]}.{parts[1]}");
        if (!ec.VerifyData(signed, Decode(parts[2]), HashAlgorithmName.SHA256))
            throw new InvalidOperationException("bad signature");
        var claims = JsonNode.Parse(Decode(parts[1]))!.AsObject();
        if ((string?)claims["iss"] != issuer) throw new InvalidOperationException("wrong issuer");
        if (claims["exp"] is { } exp && (long)exp < DateTimeOffset.UtcNow.ToUnixTimeSeconds())
            throw new InvalidOperationException("expired");
        foreach (var (name, value) in expected)
        {
            if (claims[name]?.ToJsonString() != value?.ToJsonString()) throw new InvalidOperationException($"{name} differs");
        }
        // SHA-256 of the salt, then "name=value" lines: personal_id, then each checked field in order (text in NFC).
        var text = new StringBuilder($"{claims["input_salt"]}\n");
        foreach (var name in new[] { "personal_id" }.Concat(claims["checked_fields"]!.AsArray().Select(n => (string)n!)))
        {
            text.Append($"{name}={((string)sent[name]!).Normalize(NormalizationForm.FormC)}\n");
        }
        var digest = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString()))).ToLowerInvariant();
        if (digest != (string?)claims["input_hash"])
            throw new InvalidOperationException("input_hash is not the hash of what was sent");
        return (kid, claims);
    }

    static JsonObject? Find(JsonObject jwks, string kid) =>
        jwks["keys"]!.AsArray().Select(key => key!.AsObject()).FirstOrDefault(key => (string?)key["kid"] == kid);

    static byte[] Decode(string part)
    {
        var text = part.Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(text.PadRight(text.Length + (4 - text.Length % 4) % 4, '='));
    }
}
