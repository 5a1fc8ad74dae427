"""A small lexer for PowerShell source: code, comments and strings, for structure checks on Linux.

Not PowerShell's parser (none installs from the registries here: see
docs/solutions/windows/README.md). It knows what the checks need: `#` line and `<# #>` block
comments, '...' strings ('' inside), "..." strings (backtick escapes, "" inside) and @'...'@ /
@"..."@ here-strings, so that brackets and operators are only looked for in code.
"""

from __future__ import annotations

from dataclasses import dataclass

PAIRS = {")": "(", "}": "{", "]": "["}


class SourceError(ValueError):
    """The source is not well formed: an unclosed string or comment, or unbalanced brackets."""


@dataclass(frozen=True)
class Token:
    kind: str  # "code", "comment", "string"
    text: str  # for strings, the value (quotes removed, escapes of '' / "" undone)
    start: int  # offset in the source
    end: int


def _line(source: str, offset: int) -> int:
    return source.count("\n", 0, offset) + 1


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    code_start = 0
    i = 0
    n = len(source)

    def flush(upto: int) -> None:
        if upto > code_start:
            tokens.append(Token("code", source[code_start:upto], code_start, upto))

    while i < n:
        ch = source[i]
        if source.startswith("<#", i):
            end = source.find("#>", i + 2)
            if end < 0:
                raise SourceError(f"line {_line(source, i)}: block comment never closed")
            flush(i)
            tokens.append(Token("comment", source[i + 2 : end], i, end + 2))
            i = code_start = end + 2
        elif ch == "#":
            end = source.find("\n", i)
            end = n if end < 0 else end
            flush(i)
            tokens.append(Token("comment", source[i + 1 : end], i, end))
            i = code_start = end
        elif source.startswith(("@'", '@"'), i) and source[i + 2 : i + 3] in ("\n", "\r"):
            closer = "\n" + source[i + 1] + "@"
            end = source.find(closer, i + 2)
            if end < 0:
                raise SourceError(f"line {_line(source, i)}: here-string never closed")
            flush(i)
            tokens.append(Token("string", source[i + 3 : end], i, end + len(closer)))
            i = code_start = end + len(closer)
        elif ch in ("'", '"'):
            value, end = _quoted(source, i)
            flush(i)
            tokens.append(Token("string", value, i, end))
            i = code_start = end
        else:
            i += 1
    flush(n)
    return tokens


def _quoted(source: str, start: int) -> tuple[str, int]:
    """A '...' or "..." string from `start`: (value, offset after the closing quote)."""
    quote = source[start]
    out: list[str] = []
    i = start + 1
    while i < len(source):
        ch = source[i]
        if quote == '"' and ch == "`" and i + 1 < len(source):
            out.append(source[i : i + 2])
            i += 2
        elif ch == quote:
            if source[i + 1 : i + 2] == quote:  # '' or "" stands for one quote
                out.append(quote)
                i += 2
            else:
                return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise SourceError(f"line {_line(source, start)}: string never closed")


def code_of(tokens: list[Token]) -> str:
    """The code with every string replaced by '' and every comment by a space."""
    parts = []
    for token in tokens:
        if token.kind == "code":
            parts.append(token.text)
        elif token.kind == "string":
            parts.append("''")
        else:
            parts.append(" ")
    return "".join(parts)


def check_brackets(source: str, tokens: list[Token]) -> None:
    """Raise SourceError unless (), {} and [] pair up in the code."""
    stack: list[tuple[str, int]] = []
    for token in tokens:
        if token.kind != "code":
            continue
        for offset, ch in enumerate(token.text, start=token.start):
            if ch in "({[":
                stack.append((ch, offset))
            elif ch in PAIRS:
                if not stack or stack[-1][0] != PAIRS[ch]:
                    raise SourceError(f"line {_line(source, offset)}: unmatched {ch!r}")
                stack.pop()
    if stack:
        ch, offset = stack[-1]
        raise SourceError(f"line {_line(source, offset)}: {ch!r} never closed")


def block_after(source: str, tokens: list[Token], marker: str) -> str:
    """The source of the {...} block that follows `marker` (found in code), braces excluded."""
    position = source.find(marker)
    if position < 0:
        raise SourceError(f"{marker!r} not found")
    depth = 0
    opened = -1
    for token in tokens:
        if token.kind != "code" or token.end <= position:
            continue
        for offset, ch in enumerate(token.text, start=token.start):
            if offset < position:
                continue
            if ch == "{":
                depth += 1
                if opened < 0:
                    opened = offset
            elif ch == "}":
                depth -= 1
                if depth == 0 and opened >= 0:
                    return source[opened + 1 : offset]
    raise SourceError(f"no block after {marker!r}")
