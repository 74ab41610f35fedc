"""The subset of CEL our workload-identity attribute condition uses, evaluated as Google STS does.

Supported: `assertion.<claim>`, single-quoted string literals, `==`, `&&`, `||` and parentheses
(CEL spec, "Syntax"; IAM docs, "Attribute conditions"); for IAM role-binding conditions also
`resource.type`, `resource.name` and `resource.name.startsWith('...')` (IAM docs, "Resource
attributes for IAM Conditions"). Anything else is a SyntaxError, so a
condition that grows beyond this subset fails the tests instead of being half understood. A claim
the token lacks is an evaluation error, which STS treats as a refusal.
"""

from __future__ import annotations

import re
from typing import Mapping

_TOKEN = re.compile(r"\s*(?:(\(|\)|&&|\|\||==|\.startsWith\()|assertion\.([a-z_]+)|(resource\.(?:type|name))|'([^'\\]*)')")


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if not match:
            raise SyntaxError(f"unsupported CEL at {pos}: {text[pos:pos + 30]!r}")
        op, claim, attribute, literal = match.groups()
        out.append(("op", op) if op else ("claim", claim) if claim else ("attr", attribute) if attribute else ("str", literal))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], claims: Mapping[str, str]):
        self.tokens, self.claims, self.pos = tokens, claims, 0

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise SyntaxError("unexpected end of condition")
        self.pos += 1
        return token

    def either(self) -> bool:
        value = self.both()
        while self._peek() == ("op", "||"):
            self._take()
            right = self.both()  # parse both sides whatever the left: a syntax error is never hidden
            value = value or right
        return value

    def both(self) -> bool:
        value = self.atom()
        while self._peek() == ("op", "&&"):
            self._take()
            right = self.atom()
            value = value and right
        return value

    def atom(self) -> bool:
        if self._peek() == ("op", "("):
            self._take()
            value = self.either()
            if self._take() != ("op", ")"):
                raise SyntaxError("missing )")
            return value
        left = self._operand()
        operator = self._take()
        if operator == ("op", ".startsWith("):
            prefix = self._operand()
            if self._take() != ("op", ")"):
                raise SyntaxError("missing ) after startsWith")
            return left.startswith(prefix)
        if operator != ("op", "=="):
            raise SyntaxError("expected ==")
        return left == self._operand()

    def _operand(self) -> str:
        kind, text = self._take()
        if kind == "claim":
            if text not in self.claims:
                raise LookupError(f"no such key: {text}")
            return self.claims[text]
        if kind == "attr":
            if text not in self.claims:
                raise LookupError(f"no such attribute: {text}")
            return self.claims[text]
        if kind == "str":
            return text
        raise SyntaxError(f"unexpected {text}")


def evaluate_condition(condition: str, claims: Mapping[str, str]) -> bool:
    """`claims`: token claims by name, and `resource.type` / `resource.name` for IAM conditions."""
    parser = _Parser(_tokens(condition), claims)
    try:
        value = parser.either()
    except LookupError:
        return False
    if parser.pos != len(parser.tokens):
        raise SyntaxError(f"trailing tokens in {condition!r}")
    return value
