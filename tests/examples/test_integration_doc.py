"""docs/integration.md stays true: every sample answer on the page (`<!-- sample: name -->` before a json block) is
asked again of a served gateway with the demo client's grant, and must be what the gateway answers, apart from the
values that change with every call (ids, salts, times, keys). The field reference lists exactly the code's
resident fields, in order, with the sensitive ones marked; every section is in English and in Vietnamese.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from app.backends.base import RESIDENT_FIELDS, SENSITIVE_FIELDS
from tests.examples.conftest import PURPOSE, Portal

DOC = Path(__file__).resolve().parents[2] / "docs" / "integration.md"
CONTRACT = DOC.with_name("contract.md")
SAMPLE = re.compile(r"<!-- sample: ([\w-]+) -->\n```json\n(.*?)^```", re.DOTALL | re.MULTILINE)
VOLATILE = frozenset(
    {
        "access_token",
        "attestation",
        "client_id",
        "exp",
        "iat",
        "input_hash",
        "input_salt",
        "iss",
        "kid",
        "record_updated_at",
        "request_id",
        "retrieved_at",
        "verification_id",
    }
)
HEAD = "052068000108"
CLAIMS = {
    "personal_id": HEAD,
    "full_name": "Nguyễn Văn Thành",
    "date_of_birth": "1968-04-15",
    "gender": "male",
}


def samples() -> dict[str, Any]:
    return {name: json.loads(body) for name, body in SAMPLE.findall(DOC.read_text(encoding="utf-8"))}


def masked(value: Any) -> Any:
    """``value`` with every volatile member replaced by one placeholder, and list order made irrelevant."""
    if isinstance(value, dict):
        return {key: "…" if key in VOLATILE else masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return sorted((masked(item) for item in value), key=lambda item: json.dumps(item, sort_keys=True))
    return value


def jws_part(jws: str, index: int) -> Any:
    part = jws.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def ask(portal: Portal, http: httpx.Client) -> dict[str, Callable[[], Any]]:
    """How each sample of the page was made."""
    token = http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(portal.client_id, portal.client_secret),
    )
    headers = {"Authorization": f"Bearer {token.json()['access_token']}", "X-Purpose": PURPOSE}

    def post(path: str, body: dict[str, Any], **extra: str) -> Any:
        return http.post(path, json=body, headers={**headers, **extra}).json()

    def verified() -> Any:
        return post("/v1/citizens/verify", CLAIMS, **{"X-Dossier-Id": "HS-2026-000123"})

    cancelled = {"personal_id": "052081000125"}
    return {
        "token": token.json,
        "verify": verified,
        "verify-mismatch": lambda: post(
            "/v1/citizens/verify",
            {
                "personal_id": HEAD,
                "full_name": "Nguyen Van Thanh",
                "date_of_birth": "1968-05",
                "name_match": "fuzzy",
            },
        ),
        "attestation-header": lambda: jws_part(verified()["attestation"], 0),
        "attestation-claims": lambda: jws_part(verified()["attestation"], 1),
        "lookup": lambda: post("/v1/citizens/lookup", {"personal_id": HEAD}),
        "household": lambda: post("/v1/citizens/household", {"personal_id": HEAD}),
        "problem-not-found": lambda: post(
            "/v1/citizens/lookup", cancelled, **{"X-Request-Id": "portal-req-0042"}
        ),
        "problem-not-found-vi": lambda: post("/v1/citizens/lookup", cancelled, **{"Accept-Language": "vi"}),
        "problem-field-not-allowed": lambda: post(
            "/v1/citizens/lookup", {"personal_id": HEAD, "fields": ["full_name", "ethnicity", "religion"]}
        ),
        "problem-invalid-personal-id": lambda: post(
            "/v1/citizens/verify", {"personal_id": "000000000000", "gender": "male"}
        ),
        "problem-claim-required": lambda: post("/v1/citizens/verify", {"personal_id": HEAD}),
        "problem-purpose-required": lambda: http.post(
            "/v1/citizens/verify",
            json={"personal_id": HEAD, "gender": "male"},
            headers={"Authorization": headers["Authorization"]},
        ).json(),
        "problem-invalid-token": lambda: http.post(
            "/v1/citizens/verify",
            json={"personal_id": HEAD, "gender": "male"},
            headers={"Authorization": "Bearer x.y.z", "X-Purpose": PURPOSE},
        ).json(),
    }


def test_every_sample_is_what_the_gateway_answers(portal: Portal) -> None:
    on_page = samples()
    with httpx.Client(base_url=portal.url, timeout=30) as http:
        questions = ask(portal, http)
        assert set(on_page) == set(questions)
        answers = {name: masked(question()) for name, question in questions.items()}

    differing = {name: answers[name] for name, sample in on_page.items() if answers[name] != masked(sample)}

    assert differing == {}


def test_the_samples_keep_their_own_request_id() -> None:
    """The request id a portal sends comes back (docs/integration.md, section 11)."""
    assert samples()["problem-not-found"]["request_id"] == "portal-req-0042"


def field_table() -> list[tuple[str, bool]]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## 6. Resident fields") : text.index("## 7. ")]
    rows = re.findall(r"^\| `(\w+)`(\\\*)? \|", section, re.MULTILINE)
    return [(name, bool(star)) for name, star in rows]


def test_the_field_reference_is_the_codes_field_list() -> None:
    table = field_table()

    assert [name for name, _ in table] == list(RESIDENT_FIELDS)
    assert {name for name, sensitive in table if sensitive} == SENSITIVE_FIELDS
    # The lookup sample (the demo grant: every non-sensitive field) shows each of the others.
    assert set(samples()["lookup"]) - {"_meta"} == set(RESIDENT_FIELDS) - SENSITIVE_FIELDS


def test_every_section_is_in_english_and_vietnamese() -> None:
    text = DOC.read_text(encoding="utf-8")
    headings = re.findall(r"^## (\d+)\. (.+)$", text, re.MULTILINE)

    assert [int(number) for number, _ in headings] == list(range(len(headings)))
    assert all(" / " in title for _, title in headings)
    for number, _ in headings:
        start = text.index(f"\n## {number}. ")
        following = re.search(r"\n## \d+\. ", text[start + 1 :])
        section = text[start : start + 1 + following.start()] if following else text[start:]
        assert re.search(r"[ạảấầẩẫậắằẳẵặẹẻẽếềểễệịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹđ]", section), number


def test_the_problem_table_names_only_codes_of_the_contract() -> None:
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("| status | code |") : text.index("## 8. ")].split("\n", 2)[2]
    codes = {
        code
        for row in table.splitlines()
        if row.startswith("|")
        for code in re.findall(r"`([a-z_]+)`", row.split("|")[2])
    }
    contract = CONTRACT.read_text(encoding="utf-8")
    catalogue = contract[contract.index("## 2. Error codes") : contract.index("## 3. ")]

    assert len(codes) >= 15
    assert sorted(code for code in codes if f"`{code}`" not in catalogue) == []


def test_the_page_index_points_at_its_headings() -> None:
    text = DOC.read_text(encoding="utf-8")

    def anchor(heading: str) -> str:  # GitHub's rule, as tests/test_docs.py applies it to the contract
        return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")

    anchors = {anchor(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}
    linked = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert len(linked) >= 12
    assert linked - anchors == set()
