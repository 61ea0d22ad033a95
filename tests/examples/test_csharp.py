"""The C# example (examples/csharp/Example.cs) is checked for syntax only: no .NET SDK is installed here (nor
available from the package registries this project uses), so it is parsed with tree-sitter's C# grammar, which
finds syntax errors but not type errors. docs/integration.md and examples/README.md say so.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tree_sitter
import tree_sitter_c_sharp

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "csharp" / "Example.cs"


def syntax_errors(source: bytes) -> list[str]:
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_c_sharp.language()))
    found: list[str] = []
    pending = [parser.parse(source).root_node]
    while pending:
        node = pending.pop()
        if node.is_error or node.is_missing:
            line, column = node.start_point
            found.append(f"line {line + 1}, column {column + 1}: {'missing' if node.is_missing else 'error'}")
        pending.extend(node.children)
    return found


def test_the_csharp_example_parses() -> None:
    assert syntax_errors(EXAMPLE.read_bytes()) == []


@pytest.mark.parametrize(
    ("original", "broken"),
    [("return 0;", "return 0"), ("sealed class Problem : Exception", "sealed class Problem : Exception {")],
)
def test_the_check_finds_a_syntax_error(original: str, broken: str) -> None:
    source = EXAMPLE.read_text(encoding="utf-8")
    assert original in source
    assert syntax_errors(source.replace(original, broken, 1).encode()) != []


def test_the_csharp_example_does_what_the_others_do() -> None:
    """Syntax alone proves little: the same steps, names and output lines as the examples that run."""
    source = EXAMPLE.read_text(encoding="utf-8")
    for needle in (
        "client_secret_basic",
        "private_key_jwt",
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "v1/citizens/verify",
        "v1/citizens/lookup",
        "v1/citizens/household",
        ".well-known/jwks.json",
        "verification+jwt",
        "RetryAfter",
        "X-Request-Id",
        "X-Purpose",
        "problem: status=",
        "retry: status=",
        "token: method=",
    ):
        assert needle in source, needle
