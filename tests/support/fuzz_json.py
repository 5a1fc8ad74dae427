"""Structure-aware mutations of JSON bodies for the fuzzer (tests/support/fuzz.py).

A body is mutated as a parsed value (a value of the wrong type at any key, keys dropped, renamed
and added, values wrapped, multiplied, made huge), then serialised. JSON text that no Python
value serialises to (NaN, 1e999, lone surrogate escapes, duplicate keys, a 5,000-digit number,
nesting deeper than the parser's recursion limit) goes in as a marker string replaced by the raw
text after serialisation, so it can sit at any depth of an otherwise valid body.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

Json = Any

# Python values osquery never sends where the server expects something else.
HOSTILE_VALUES: list[Json] = [
    None, True, False, 0, -1, 1.5, 2**31, 2**63, 2**70, -(2**70), "", " ", "\x00", "0", "null",
    "x" * 5000, "é€😀", "\ud800", "a\udfffb", "\u202e\u200b", [], {}, [None], [[[]]], ["x", 1],
    {"a": {"b": [1]}}, {"": ""}, [{"a": "1"}], {"winmdm_live_1": []},
]  # fmt: skip
HOSTILE_KEYS = ["", " ", "\x00", "\ud800", "x" * 300, "node_key", "queries", "data", "__proto__", "1"]
# JSON text spliced in as is (see the module doc).
RAW_VALUES: list[bytes] = [
    b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1e-999", b"-0", b"1" * 5000, b"9" * 4000,
    b'"\\ud800"', b'"\\udfff\\ud800"', b'"a\\ud800\\u0000"', b'"\\u0000"', b'{"a":1,"a":2}',
    b'{"node_key":1,"node_key":"x"}', b"[1,]", b'"\\x"', b"01", b"tru", b"\xff",
]  # fmt: skip
_MARK = "\x01raw:{}\x01"


class JsonMutator:
    """Mutates parsed bodies with one random generator, and serialises them."""

    def __init__(self, rng: random.Random) -> None:
        self.random = rng
        self._raw: list[bytes] = []

    # -- values -----------------------------------------------------------------------------------
    def raw(self, text: bytes) -> str:
        """A marker that `encode` replaces with `text`, unquoted."""
        self._raw.append(text)
        return _MARK.format(len(self._raw) - 1)

    def hostile(self) -> Json:
        """A value of some other type, a huge or deep one, or raw JSON text."""
        pick = self.random.random()
        if pick < 0.6:
            return copy.deepcopy(self.random.choice(HOSTILE_VALUES))
        if pick < 0.8:
            return self.raw(self.random.choice(RAW_VALUES))
        if pick < 0.9:
            depth = self.random.choice([20, 200, 900, 5000])
            if self.random.random() < 0.5:
                return self.raw(b"[" * depth + b"]" * depth)
            return self.raw(b'{"a":' * depth + b"1" + b"}" * depth)
        return "A" * self.random.choice([1000, 70_000, 300_000])

    # -- structure --------------------------------------------------------------------------------
    def mutate(self, body: Json, times: int | None = None) -> Json:
        """`body` (not changed) with 1-3 structural mutations at random places."""
        body = copy.deepcopy(body)
        for _ in range(times or self.random.randint(1, 3)):
            body = self._once(body)
        return body

    def _once(self, body: Json) -> Json:
        places = list(_places(body))
        if not places or self.random.random() < 0.05:
            return self.hostile()  # the whole body of another type
        container, key = self.random.choice(places)
        value = container[key]
        op = self.random.randrange(8)
        if op == 0:
            container[key] = self.hostile()
        elif op == 1:
            del container[key]
        elif op == 2 and isinstance(container, dict):
            container[self.random.choice(HOSTILE_KEYS)] = container.pop(key)
        elif op == 3:
            target = value if isinstance(value, dict | list) else container
            if isinstance(target, dict):
                target[self.random.choice([*HOSTILE_KEYS, f"k{self.random.randrange(99)}"])] = self.hostile()
            else:
                target.append(self.hostile())
        elif op == 4:
            container[key] = [value] if self.random.random() < 0.5 else {"value": value}
        elif op == 5 and isinstance(value, list) and value:
            value.extend(
                copy.deepcopy(self.random.choice(value)) for _ in range(self.random.randint(1, 2000))
            )
        elif op == 5 and isinstance(value, dict):
            value.update({f"k{n}": self.hostile() for n in range(self.random.randint(1, 300))})
        elif op == 6 and isinstance(value, str):
            container[key] = value * self.random.randint(2, 20) + self.random.choice(["\x00", "\ud800", ""])
        else:
            container[key] = self.raw(self.random.choice(RAW_VALUES))
        return body

    # -- text -------------------------------------------------------------------------------------
    def encode(self, body: Json) -> bytes:
        """Compact UTF-8 as osquery writes it, or ASCII escapes, or indented; lone surrogates in
        UTF-8 text are written as their (invalid) three bytes."""
        pick = self.random.random()
        if pick < 0.75:
            text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        elif pick < 0.92:
            text = json.dumps(body, separators=(",", ":"))
        else:
            text = json.dumps(body, indent=2, ensure_ascii=False)
        data = text.encode("utf-8", "surrogatepass")
        if self._raw:
            for n, raw in enumerate(self._raw):
                data = data.replace(json.dumps(_MARK.format(n)).encode(), raw)
            self._raw.clear()
        return data


def _places(body: Json) -> list[tuple[dict | list, Any]]:
    """(container, key) of every value under `body`, at most 5,000 of them."""
    found: list[tuple[dict | list, Any]] = []
    stack = [body]
    while stack and len(found) < 5000:
        node = stack.pop()
        keys = list(node) if isinstance(node, dict) else range(len(node)) if isinstance(node, list) else []
        for key in keys:
            found.append((node, key))
            if isinstance(node[key], dict | list):
                stack.append(node[key])
    return found
