"""The national population database over HTTP (the mock's wire contract), defended against its failures.

Every call runs under one overall deadline (httpx timeouts are per operation, so they sit under it) that
covers the attempts, the back-off sleeps and reading the body. Reads are retried (all three upstream calls
are reads, the ``POST`` ones included) at most twice, with jittered exponential back-off, on connection
errors, 429 and 5xx, honouring ``Retry-After`` when it fits the deadline and only while the retry budget
allows; never on another 4xx. A circuit breaker counts timeouts, connection errors, 429 and 5xx per attempt
(not 404s, refusals or bad bodies: the upstream answered) and, while open, answers at once.

Answers are checked before anything is released: no redirect is followed, the body is capped while it
streams (``Content-Length`` first, then the bytes as they come), the media type and JSON are checked, and a
record for another ID than the one asked for is refused. Status mapping (docs/contract.md, Error codes):

=========================================================  ==================================
upstream                                                   gateway
=========================================================  ==================================
error status, connection failure, breaker open              503 ``upstream_unavailable``
the call's deadline passed (or every attempt timed out)     504 ``upstream_timeout``
redirect, oversized, malformed or off-contract body         502 ``upstream_bad_response``
a record for another ID                                     502 ``upstream_identity_mismatch``
=========================================================  ==================================

In a sandbox (``DANCU_SANDBOX``, ``sandbox=True``) a request's rehearsed fault (``app.sandbox``, from the
portal's ``X-Sandbox-Fault``) goes to the upstream as ``X-Mock-Fault`` on every attempt of the call; the
answers it provokes take the paths above like any other. A rehearsed call is kept out of the shared guards
(its failures do not count towards the circuit breaker, its retries take nothing from the retry budget), so
one portal's rehearsal does not fail the other portals' calls.

Logs name the operation, exception types and statuses only: never an ID, a URL or a body.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import httpx
import orjson
from pydantic import SecretStr

from app.backends.base import (
    CodeSent,
    Household,
    PopulationQuery,
    RawAggregate,
    ResidentRecord,
    chunks,
    ids_to_ask,
    may_be_a_household,
    may_be_on_record,
)
from app.backends.breaker import BreakerState, CircuitBreaker, CircuitOpen, RetryBudget
from app.backends.errors import (
    BreakerOpen,
    NoRegisteredContact,
    UpstreamBadResponse,
    UpstreamIdentityMismatch,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.backends.wire import (
    aggregate_from_wire,
    aggregate_to_wire,
    code_check_to_wire,
    code_checked_from_wire,
    code_request_to_wire,
    code_sent_from_wire,
    household_from_wire,
    record_from_wire,
)
from app.errors import GatewayError
from app.sandbox import ATTEMPT_TIMEOUT_SECONDS, UPSTREAM_FAULT_HEADER, Fault, current_fault

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

LOOKUP_PATH = "/api/v1/residents/lookup"
BATCH_PATH = "/api/v1/residents/batch-get"
HOUSEHOLD_PATH = "/api/v1/households/"
HEALTH_PATH = "/api/v1/health"
STATS_PATH = "/api/v1/statistics/population"
CODE_SEND_PATH = "/api/v1/residents/otp/send"
CODE_CHECK_PATH = "/api/v1/residents/otp/verify"

SOURCE = "csdlqg"
MAX_RETRIES = 2
"""docs/security.md, The upstream: reads are retried at most twice within the call's deadline."""
UPSTREAM_BATCH_LIMIT = 1000
"""The most IDs the upstream's batch-get takes in one request."""
MAX_RETRY_AFTER = 300
_DRAIN_BYTES = 64 * 1024
"""An error answer up to this size is read to the end so its connection goes back to the pool."""
_JSON_BODY = {"Content-Type": "application/json"}


class _Transient(Exception):
    """A failed attempt worth retrying (and a failure for the breaker)."""

    def __init__(self, kind: str, *, retry_after: float | None = None, timeout: bool = False) -> None:
        super().__init__(kind)
        self.kind = kind
        self.retry_after = retry_after
        self.timeout = timeout

    def final(self) -> GatewayError:
        """The error the caller gets when this was the last attempt."""
        if self.timeout:
            return UpstreamTimeout()
        hint = None if self.retry_after is None else min(MAX_RETRY_AFTER, max(1, math.ceil(self.retry_after)))
        return UpstreamUnavailable(retry_after=hint)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delay-seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _bad(reason: str) -> UpstreamBadResponse:
    return UpstreamBadResponse(reason=reason)


class HttpBackend:
    """The upstream at ``base_url`` (from settings only). Build, ``await open()``, use, ``await close()``.

    ``deadline`` bounds each call (attempts, back-off and body); ``timeouts`` are httpx's per-operation
    limits under it; ``check_deadline`` bounds ``check()``. ``max_response_bytes`` caps an answer, and a
    batch answer may add ``max_record_bytes`` per ID asked. ``headers`` are sent with every request (tests
    use it for ``X-Mock-Fault``); nothing from an incoming request reaches the upstream, except with
    ``sandbox`` the request's rehearsed fault (``app.sandbox``), re-written in its canonical form. There is
    no way to turn TLS verification off: ``ssl_context`` only adds trust (a private CA).

    Counters for tests and metrics: ``calls`` (logical calls), ``attempts`` (HTTP exchanges), ``retries``,
    ``retries_refused`` (by the budget), ``timeouts`` (deadlines passed), ``identity_mismatches``,
    ``bad_responses``; ``breaker`` and ``breaker_state`` for the circuit breaker.
    """

    name: str = "http"

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr | str | None,
        *,
        deadline: float = 5.0,
        check_deadline: float = 1.5,
        timeouts: httpx.Timeout | None = None,
        max_retries: int = MAX_RETRIES,
        backoff_base: float = 0.1,
        backoff_max: float = 1.0,
        min_attempt_seconds: float = 0.05,
        max_response_bytes: int = 2 * 1024 * 1024,
        max_record_bytes: int = 16 * 1024,
        max_stats_bytes: int = 32 * 1024 * 1024,
        batch_size: int = UPSTREAM_BATCH_LIMIT,
        limits: httpx.Limits | None = None,
        breaker: CircuitBreaker | None = None,
        retry_budget: RetryBudget | None = None,
        ssl_context: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        sandbox: bool = False,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host or url.query or url.fragment or url.userinfo:
            raise ValueError("the upstream URL must be http(s)://host[:port][/path] with nothing else")
        if not 0 <= max_retries <= MAX_RETRIES:
            raise ValueError(f"max_retries must be between 0 and {MAX_RETRIES}")
        if not 1 <= batch_size <= UPSTREAM_BATCH_LIMIT:
            raise ValueError(f"batch_size must be between 1 and {UPSTREAM_BATCH_LIMIT}")
        if deadline <= 0 or check_deadline <= 0:
            raise ValueError("deadlines must be positive")
        self.base_url = str(url).rstrip("/")
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self._headers = {
            "Accept": "application/json",
            "Accept-Encoding": "identity",  # the size cap counts the bytes we hold: no decompression bombs
            "User-Agent": "dancu-gateway",
            **(headers or {}),
        }
        if key:
            self._headers["X-Api-Key"] = key
        self.deadline = deadline
        self.check_deadline = check_deadline
        self._timeouts = timeouts or httpx.Timeout(
            connect=1.0, read=min(ATTEMPT_TIMEOUT_SECONDS, deadline), write=1.0, pool=1.0
        )
        self.sandbox = sandbox
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.min_attempt_seconds = min_attempt_seconds
        self.max_response_bytes = max_response_bytes
        self.max_record_bytes = max_record_bytes
        self.max_stats_bytes = max_stats_bytes
        """Raw aggregates of three dimensions over 200 wards can run to a few hundred thousand cells."""
        self.batch_size = batch_size
        self._limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self.breaker = breaker or CircuitBreaker(name="csdlqg")
        self._budget = retry_budget or RetryBudget()
        self._ssl_context = ssl_context
        self._transport = transport
        self._rng = rng or random.Random()  # noqa: S311 - back-off jitter, not a secret
        self._sleep = sleep
        """How the back-off waits (tests record the delays instead of spending them)."""
        self._client: httpx.AsyncClient | None = None
        self.calls = 0
        self.attempts = 0
        self.retries = 0
        self.retries_refused = 0
        self.timeouts = 0
        self.identity_mismatches = 0
        self.bad_responses = 0

    # ------------------------------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Build the pooled client (connects lazily: a down upstream does not stop the gateway starting)."""
        # httpx logs every request URL at INFO; household codes travel in URLs: keep them out of the logs.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=self._headers,
                timeout=self._timeouts,
                limits=self._limits,
                verify=self._ssl_context or True,  # TLS verification is never turned off
                transport=self._transport,
                follow_redirects=False,
                trust_env=False,  # no proxy or .netrc from the environment: the URL comes from settings only
            )

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def __aenter__(self) -> HttpBackend:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def breaker_state(self) -> str:
        return self.breaker.state.value

    # ------------------------------------------------------------------------------------------ the calls

    async def get(self, personal_id: str, fields: Collection[str] | None = None) -> ResidentRecord | None:
        # ``fields`` is not used: what the upstream sent is checked whole (a malformed answer is 502 whatever
        # the caller reads).
        if not may_be_on_record(personal_id):
            return None  # cannot be on record; no upstream call
        doc = await self._call(
            "lookup",
            "POST",
            LOOKUP_PATH,
            {"soDinhDanh": personal_id},
            self.max_response_bytes,
            not_found=True,
        )
        if doc is None:
            return None
        if type(doc) is dict and "soDinhDanh" in doc and doc["soDinhDanh"] != personal_id:
            raise self._mismatch("lookup")  # checked before mapping: someone else's record is not even read
        record = self._map(partial(record_from_wire, source=SOURCE), doc)
        if record.personal_id != personal_id:
            raise self._mismatch("lookup")
        return record

    async def get_many(
        self, personal_ids: Sequence[str], fields: Collection[str] | None = None
    ) -> dict[str, ResidentRecord]:
        found: dict[str, ResidentRecord] = {}
        for chunk in chunks(ids_to_ask(personal_ids), self.batch_size):
            limit = self.max_response_bytes + len(chunk) * self.max_record_bytes
            doc = await self._call("batch_get", "POST", BATCH_PATH, {"ids": chunk}, limit, not_found=False)
            found.update(self._batch_records(doc, chunk))
        return found

    async def household(self, household_id: str) -> Household | None:
        if not may_be_a_household(household_id):
            return None  # not a code the upstream could hold; never put it in a URL
        doc = await self._call(
            "household", "GET", HOUSEHOLD_PATH + household_id, None, self.max_response_bytes, not_found=True
        )
        if doc is None:
            return None
        if type(doc) is dict and "maHo" in doc and doc["maHo"] != household_id:
            raise self._mismatch("household")
        household = self._map(household_from_wire, doc)
        if household.household_id != household_id:
            raise self._mismatch("household")
        return household

    async def population_aggregate(self, query: PopulationQuery) -> RawAggregate:
        doc = await self._call(
            "statistics", "POST", STATS_PATH, aggregate_to_wire(query), self.max_stats_bytes, not_found=False
        )
        return self._map(partial(aggregate_from_wire, query=query), doc)

    async def send_code(self, personal_id: str, about: str) -> CodeSent | None:
        """Never retried (a retry could send a second SMS); 404 is an unknown resident."""
        if not may_be_on_record(personal_id):
            return None
        payload = code_request_to_wire(personal_id, about)
        doc = await self._call(
            "otp_send", "POST", CODE_SEND_PATH, payload, self.max_record_bytes, not_found=True, retry=False
        )
        if doc is None:
            return None
        sent = self._map(partial(code_sent_from_wire, personal_id=personal_id), doc)
        if sent is None:
            raise NoRegisteredContact()
        return sent

    async def check_code(self, challenge_id: str, code: str) -> bool:
        """Never retried: a check counts against the challenge at the database."""
        payload = code_check_to_wire(challenge_id, code)
        doc = await self._call(
            "otp_verify",
            "POST",
            CODE_CHECK_PATH,
            payload,
            self.max_record_bytes,
            not_found=False,
            retry=False,
        )
        return self._map(code_checked_from_wire, doc)

    async def check(self) -> None:
        """One health request under ``check_deadline``; no retry, and outside the breaker's accounting.

        While the breaker is open every read fails at once, so the gateway is not ready whatever the health
        route says: UpstreamUnavailable with the seconds until the breaker's next probe, and no request.
        """
        client = self._require_client()
        if (wait := self.breaker.open_for()) is not None:
            raise BreakerOpen(wait)
        try:
            async with asyncio.timeout(self.check_deadline):
                doc = await self._exchange(client, "GET", HEALTH_PATH, None, _DRAIN_BYTES, not_found=False)
        except TimeoutError:
            raise UpstreamTimeout() from None
        except _Transient as err:
            raise err.final() from None
        if type(doc) is not dict or doc.get("status") != "ok":
            raise _bad("shape:health")

    # ------------------------------------------------------------------------------------- the machinery

    def _require_client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("HttpBackend is not open (await open() first)")
        return self._client

    def _mismatch(self, operation: str) -> UpstreamIdentityMismatch:
        self.identity_mismatches += 1
        logger.error("upstream %s answered for another identity than the one asked", operation)
        return UpstreamIdentityMismatch(reason="identity")

    def _map(self, mapper: Callable[[Any], _T], doc: Any) -> _T:
        try:
            return mapper(doc)
        except UpstreamBadResponse as err:
            self.bad_responses += 1
            logger.warning("upstream answer off-contract (%s)", err.reason)
            raise

    def _batch_records(self, doc: Any, asked: list[str]) -> dict[str, ResidentRecord]:
        if (
            type(doc) is not dict
            or type(doc.get("records")) is not list
            or type(doc.get("missing")) is not list
        ):
            self.bad_responses += 1
            raise _bad("shape:BatchGetResponse")
        asked_set = set(asked)
        out: dict[str, ResidentRecord] = {}
        for item in doc["records"]:
            pid = item.get("soDinhDanh") if type(item) is dict else None
            if type(pid) is str and pid not in asked_set:
                raise self._mismatch("batch_get")
            record = self._map(partial(record_from_wire, source=SOURCE), item)
            if record.personal_id not in asked_set:
                raise self._mismatch("batch_get")
            if record.personal_id in out:
                self.bad_responses += 1
                raise _bad("shape:records")
            out[record.personal_id] = record
        missing = doc["missing"]
        if not all(type(pid) is str for pid in missing) or len(set(missing)) != len(missing):
            self.bad_responses += 1
            raise _bad("shape:missing")
        if set(missing) & out.keys() or set(missing) | out.keys() != asked_set:
            self.bad_responses += 1
            raise _bad("shape:missing")
        return out

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        payload: Any,
        limit: int,
        *,
        not_found: bool,
        retry: bool = True,
    ) -> Any:
        """One logical read: attempts under the deadline, the breaker and the budget. None means 404.
        ``retry=False``: one attempt only (a call that is not a read: sending or checking a code)."""
        client = self._require_client()
        self.calls += 1
        fault = current_fault() if self.sandbox else None  # a rehearsal: kept out of the breaker and budget
        if fault is None:
            self._budget.record_call()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline
        scope = asyncio.timeout_at(deadline)
        retries = 0
        probe: bool | None = None  # not None while an attempt is in flight (True: the half-open probe)
        try:
            async with scope:
                while True:
                    try:
                        probe = self.breaker.admit()
                    except CircuitOpen as err:
                        raise UpstreamUnavailable(retry_after=err.retry_after) from None
                    self.attempts += 1
                    try:
                        result = await self._exchange(
                            client, method, path, payload, limit, not_found=not_found, fault=fault
                        )
                    except _Transient as err:
                        if fault is None:
                            self.breaker.failure()
                        else:
                            self.breaker.release(probe)
                        probe = None
                        remaining = deadline - loop.time()
                        delay = self._retry_delay(err, retries, remaining, fault is None) if retry else None
                        if delay is None:
                            logger.warning(
                                "upstream %s failed after %d attempt(s): %s", operation, retries + 1, err.kind
                            )
                            raise err.final() from None
                        logger.info(
                            "upstream %s attempt %d failed (%s); retrying", operation, retries + 1, err.kind
                        )
                        retries += 1
                        self.retries += 1
                        await self._sleep(delay)
                        continue
                    except UpstreamBadResponse as err:
                        probe = None
                        self.breaker.success()  # it answered: the breaker is about reachability
                        self.bad_responses += 1
                        logger.warning("upstream %s: unusable answer (%s)", operation, err.reason)
                        raise
                    except GatewayError:
                        probe = None
                        self.breaker.success()
                        raise
                    probe = None
                    self.breaker.success()
                    return result
        except TimeoutError:
            if not scope.expired():
                raise
            if probe is not None:
                if fault is None:
                    self.breaker.failure()
                else:
                    self.breaker.release(probe)
                probe = None
            self.timeouts += 1
            logger.warning("upstream %s: deadline of %.2fs passed", operation, self.deadline)
            raise UpstreamTimeout() from None
        finally:
            if probe is not None:  # cancelled from outside, or a bug: neither success nor failure
                self.breaker.release(probe)

    def _retry_delay(
        self, err: _Transient, retries: int, remaining: float, spend: bool = True
    ) -> float | None:
        """Seconds to sleep before the next attempt, or None when this failure is final; ``spend=False``: a
        rehearsal's retry, not taken from the budget."""
        if retries >= self.max_retries or self.breaker.state is not BreakerState.CLOSED:
            return None
        step = min(self.backoff_max, self.backoff_base * 2.0**retries)
        delay = step / 2 + self._rng.uniform(0, step / 2)
        if err.retry_after is not None:
            delay = max(delay, err.retry_after)
        if delay + self.min_attempt_seconds > remaining:
            return None
        if spend and not self._budget.try_spend():
            self.retries_refused += 1
            return None
        return delay

    async def _exchange(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        payload: Any,
        limit: int,
        *,
        not_found: bool,
        fault: Fault | None = None,
    ) -> Any:
        """One HTTP exchange: the parsed JSON of a 200, None for an accepted 404, else an error."""
        content = None if payload is None else orjson.dumps(payload)
        headers = dict(_JSON_BODY) if content is not None else {}
        if fault is not None:
            headers[UPSTREAM_FAULT_HEADER] = fault.header()
        try:
            request = client.build_request(method, path, content=content, headers=headers or None)
            response = await client.send(request, stream=True)
            try:
                status = response.status_code
                if status == 200:
                    body = await _read_capped(response, limit)
                    try:
                        return orjson.loads(body)
                    except orjson.JSONDecodeError:
                        raise _bad("malformed_json") from None
                await _drain(response)
                if status == 404 and not_found:
                    return None
                if 300 <= status < 400:
                    raise _bad("redirect")
                if status == 429 or status >= 500:
                    raise _Transient(
                        f"status {status}", retry_after=parse_retry_after(response.headers.get("retry-after"))
                    )
                if 200 <= status < 300:
                    raise _bad(f"status:{status}")
                logger.warning("upstream refused the request: status %d", status)
                raise UpstreamUnavailable()
            finally:
                await response.aclose()
        except httpx.TimeoutException as err:
            raise _Transient(type(err).__name__, timeout=True) from None
        except httpx.TransportError as err:
            raise _Transient(type(err).__name__) from None
        except httpx.HTTPError as err:
            raise _bad(type(err).__name__) from None


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    """The body of a 200, refused before it grows past ``limit`` (declared length first, then as it streams)."""
    media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise _bad("content_type")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise _bad("content_encoding")
    declared = response.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise _bad("content_length")
        if int(declared) > limit:
            raise _bad("oversized")
    body = bytearray()
    async for piece in response.aiter_bytes():  # identity encoding checked above: these are the bytes sent
        body += piece
        if len(body) > limit:
            raise _bad("oversized")
    return bytes(body)


async def _drain(response: httpx.Response) -> None:
    """Read a small error body to its end so the connection can be reused; give up quietly otherwise."""
    declared = response.headers.get("content-length")
    if declared is not None and not (
        declared.isascii() and declared.isdigit() and int(declared) <= _DRAIN_BYTES
    ):
        return
    size = 0
    try:
        async for piece in response.aiter_raw():
            size += len(piece)
            if size > _DRAIN_BYTES:
                return
    except (httpx.HTTPError, httpx.StreamError):
        return
