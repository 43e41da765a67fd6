"""The part of Go's text/template that Luna's `aws.userData` templates use (`userDataType:
Template`), rendered over plain data.

Supported: text and `{{ }}` actions with trim markers (`{{- ` and ` -}}`), comments
(`{{/* */}}`), `.Field` and `$var.Field` chains, `.`, string (`"..."`, with Go escapes) and
integer literals, `true`/`false`, parenthesised commands, the functions `eq ne lt le gt ge
len not and or`, `if`/`else if`/`else`/`end`, `range X`, `range $v := X`,
`range $k, $v := X` (a map ranges in key order, as Go's does) with `else`. Anything else is a
TemplateError naming the position, raised when the template is parsed, so a bad template
stops Gibbous at start and never fails a launch.

Bounds (docs/decisions.md, "Hostile callers, second pass"): parsing is one pass over at
most `MAX_TEMPLATE_CHARS`; `if`/`range` blocks and parentheses nest at most `MAX_NESTING`
deep; a render stops with a TemplateError past `MAX_OUTPUT_CHARS` of output or
`MAX_RENDER_STEPS` nodes run (nested `range`s multiply).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gibbous.core.errors import GibbousError


class TemplateError(GibbousError):
    pass


# EC2 takes 16 KB of user data; a template four times that is no user data anyone writes.
MAX_TEMPLATE_CHARS = 64 * 1024
MAX_NESTING = 64
# Above EC2's 16 KB, so the user-data check names EC2's limit for anything it could accept.
MAX_OUTPUT_CHARS = 64 * 1024
MAX_RENDER_STEPS = 100_000

_SPACE = re.compile(r"\s*")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>-?[0-9]+)
      | (?P<assign>:=)
      | (?P<punct>[(),])
      | (?P<variable>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


def _truth(value: object) -> bool:
    """Go's truth: false, 0, nil, empty string/slice/map are false."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float | str | Sequence | Mapping):
        return bool(value)
    return True


def _compare(op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def compare(left: object, right: object) -> bool:
        if type(left) is not type(right) and not (
            isinstance(left, int | float) and isinstance(right, int | float)
        ):
            raise TemplateError(f"incompatible types for comparison: {left!r} and {right!r}")
        return op(left, right)

    return compare


def _and(*values: object) -> object:
    for value in values:
        if not _truth(value):
            return value
    return values[-1]


def _or(*values: object) -> object:
    for value in values:
        if _truth(value):
            return value
    return values[-1]


FUNCTIONS: dict[str, Callable[..., object]] = {
    "eq": _compare(lambda a, b: a == b),
    "ne": _compare(lambda a, b: a != b),
    "lt": _compare(lambda a, b: a < b),
    "le": _compare(lambda a, b: a <= b),
    "gt": _compare(lambda a, b: a > b),
    "ge": _compare(lambda a, b: a >= b),
    "len": len,
    "not": lambda value: not _truth(value),
    "and": _and,
    "or": _or,
}


# --- expressions ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Literal:
    value: object


@dataclass(frozen=True)
class _Field:
    variable: str  # "" for the dot
    path: tuple[str, ...]


@dataclass(frozen=True)
class _Call:
    function: str
    arguments: tuple[Any, ...]


Expression = _Literal | _Field | _Call


def _tokens(text: str, where: str) -> list[tuple[str, str]]:
    out = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise TemplateError(f"{where}: cannot read {text[position : position + 20]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return out


class _ExpressionParser:
    def __init__(self, tokens: list[tuple[str, str]], where: str) -> None:
        self.tokens = tokens
        self.index = 0
        self.where = where
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise TemplateError(f"{self.where}: unexpected end of action")
        self.index += 1
        return token

    def command(self) -> Expression:
        """A function call with its arguments, or one operand."""
        token = self.peek()
        if token is not None and token[0] == "word" and token[1] in FUNCTIONS:
            self.take()
            arguments = []
            while (next_token := self.peek()) is not None and next_token != ("punct", ")"):
                arguments.append(self.operand())
            return _Call(token[1], tuple(arguments))
        return self.operand()

    def operand(self) -> Expression:
        kind, text = self.take()
        if kind == "string":
            try:
                return _Literal(json.loads(text))
            except ValueError:
                raise TemplateError(f"{self.where}: bad string {text}") from None
        if kind == "number":
            return _Literal(int(text))
        if kind == "word" and text in ("true", "false"):
            return _Literal(text == "true")
        if kind == "field":
            return _Field("", tuple(p for p in text.split(".") if p))
        if kind == "variable":
            name, *path = text.split(".")
            return _Field(name, tuple(path))
        if (kind, text) == ("punct", "("):
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise TemplateError(f"{self.where}: parentheses nested deeper than {MAX_NESTING}")
            inner = self.command()
            self.depth -= 1
            if self.take() != ("punct", ")"):
                raise TemplateError(f"{self.where}: missing )")
            return inner
        if kind == "word":
            raise TemplateError(f"{self.where}: function {text!r} is not supported")
        raise TemplateError(f"{self.where}: unexpected {text!r}")

    def finish(self) -> None:
        if self.peek() is not None:
            raise TemplateError(f"{self.where}: unexpected {self.peek()[1]!r}")  # type: ignore[index]


def _expression(text: str, where: str) -> Expression:
    if "|" in text:
        raise TemplateError(f"{where}: pipelines (|) are not supported")
    parser = _ExpressionParser(_tokens(text, where), where)
    expression = parser.command()
    parser.finish()
    return expression


# --- the tree ---------------------------------------------------------------------------


@dataclass
class _Text:
    text: str


@dataclass
class _Output:
    expression: Expression


@dataclass
class _If:
    branches: list[tuple[Expression, list[Any]]]
    otherwise: list[Any] = field(default_factory=list)


@dataclass
class _Range:
    variables: tuple[str, ...]
    expression: Expression
    body: list[Any] = field(default_factory=list)
    otherwise: list[Any] = field(default_factory=list)


_RANGE = re.compile(r"range\s+(?:(\$\w+)\s*(?:,\s*(\$\w+)\s*)?:=\s*)?(.+)", re.DOTALL)


@dataclass(frozen=True)
class Template:
    source: str
    nodes: tuple[Any, ...]

    def render(self, data: Mapping[str, Any]) -> str:
        out = _Rendering()
        _run(list(self.nodes), data, {"$": data}, out)
        return "".join(out.parts)


def _pieces(source: str) -> list[Any]:
    """Text and (line, action) in order, trim markers applied: one pass, each character
    looked at a bounded number of times (a `.*?` search per `{{` was quadratic)."""
    pieces: list[Any] = []
    position = 0
    line = 1
    while True:
        start = source.find("{{", position)
        if start < 0:
            break
        end = source.find("}}", start + 2)
        if end < 0:
            line += source.count("\n", position, start)
            raise TemplateError(f"line {line}: unclosed action")
        inner = source[start + 2 : end]
        text = source[position:start]
        trim_left = inner[:1] == "-" and inner[1:2].isspace()
        trim_right = len(inner) >= 2 and inner[-1] == "-" and inner[-2].isspace()
        if trim_left:
            text = text.rstrip()
            inner = inner[2:]
        if trim_right:
            inner = inner[:-2]
        pieces.append(_Text(text))
        line += source.count("\n", position, start)
        pieces.append((line, inner.strip()))
        line += source.count("\n", start, end + 2)
        position = end + 2
        if trim_right:
            skipped = _SPACE.match(source, position)
            if skipped is not None:
                line += source.count("\n", position, skipped.end())
                position = skipped.end()
    pieces.append(_Text(source[position:]))
    return pieces


def _check_nesting(stack: list[Any], where: str) -> None:
    if len(stack) > MAX_NESTING:
        raise TemplateError(f"{where}: if and range nested deeper than {MAX_NESTING}")


def parse_template(source: str) -> Template:
    """Parse `source`; TemplateError names the line of the first problem."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(
            f"the template has {len(source)} characters, more than {MAX_TEMPLATE_CHARS}"
        )
    pieces = _pieces(source)
    root: list[Any] = []
    stack: list[tuple[Any, list[Any]]] = []  # (block node, list being filled)
    current = root
    for piece in pieces:
        if isinstance(piece, _Text):
            if piece.text:
                current.append(piece)
            continue
        line, action = piece
        where = f"line {line}"
        if action.startswith("/*"):
            if not action.endswith("*/"):
                raise TemplateError(f"{where}: unclosed comment")
            continue
        word = action.split(None, 1)[0] if action else ""
        if word == "if":
            branch = _If([(_expression(action[2:], where), [])])
            current.append(branch)
            stack.append((branch, current))
            _check_nesting(stack, where)
            current = branch.branches[0][1]
        elif word == "range":
            found = _RANGE.fullmatch(action)
            if found is None:
                raise TemplateError(f"{where}: bad range {action!r}")
            first, second, expression = found.groups()
            variables = tuple(v for v in (first, second) if v)
            loop = _Range(variables, _expression(expression, where))
            current.append(loop)
            stack.append((loop, current))
            _check_nesting(stack, where)
            current = loop.body
        elif word == "else":
            if not stack:
                raise TemplateError(f"{where}: else outside if or range")
            node, _ = stack[-1]
            rest = action[4:].strip()
            if rest.startswith("if ") and isinstance(node, _If):
                node.branches.append((_expression(rest[3:], where), []))
                current = node.branches[-1][1]
            elif rest:
                raise TemplateError(f"{where}: unexpected {rest!r} after else")
            else:
                current = node.otherwise
        elif word == "end":
            if not stack or action != "end":
                raise TemplateError(f"{where}: end without if or range")
            _, current = stack.pop()
        elif word in ("with", "define", "template", "block", "break", "continue"):
            raise TemplateError(f"{where}: {word!r} is not supported")
        else:
            current.append(_Output(_expression(action, where)))
    if stack:
        raise TemplateError("the template ends inside an if or range (missing {{ end }})")
    return Template(source, tuple(root))


def _value(expression: Expression, dot: object, scope: Mapping[str, object]) -> object:
    if isinstance(expression, _Literal):
        return expression.value
    if isinstance(expression, _Call):
        arguments = [_value(a, dot, scope) for a in expression.arguments]
        try:
            return FUNCTIONS[expression.function](*arguments)
        except TypeError:
            raise TemplateError(
                f"wrong arguments for {expression.function}: {arguments!r}"
            ) from None
    if expression.variable:
        if expression.variable not in scope:
            raise TemplateError(f"undefined variable {expression.variable}")
        value = scope[expression.variable]
    else:
        value = dot
    for name in expression.path:
        if not isinstance(value, Mapping) or name not in value:
            raise TemplateError(f"no field {name!r} in {type(value).__name__}")
        value = value[name]
    return value


def _text_of(value: object) -> str:
    if value is None:
        return "<no value>"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_text_of(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_text_of(v) for v in value) + "]"
    return str(value)


class _Rendering:
    """What a render wrote, with the budget it may spend."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.chars = 0
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_RENDER_STEPS:
            raise TemplateError(
                f"rendering takes more than {MAX_RENDER_STEPS} steps (nested range?)"
            )

    def append(self, text: str) -> None:
        self.chars += len(text)
        if self.chars > MAX_OUTPUT_CHARS:
            raise TemplateError(f"the rendered text is longer than {MAX_OUTPUT_CHARS} characters")
        self.parts.append(text)


def _run(nodes: list[Any], dot: object, scope: dict[str, object], out: _Rendering) -> None:
    for node in nodes:
        out.step()
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Output):
            out.append(_text_of(_value(node.expression, dot, scope)))
        elif isinstance(node, _If):
            for condition, body in node.branches:
                if _truth(_value(condition, dot, scope)):
                    _run(body, dot, scope, out)
                    break
            else:
                _run(node.otherwise, dot, scope, out)
        elif isinstance(node, _Range):
            collection = _value(node.expression, dot, scope)
            if isinstance(collection, Mapping):
                items: list[tuple[object, object]] = sorted(collection.items())
            elif isinstance(collection, list | tuple):
                items = list(enumerate(collection))
            elif collection is None:
                items = []
            else:
                raise TemplateError(f"range over {type(collection).__name__}")
            if not items:
                _run(node.otherwise, dot, scope, out)
            for key, element in items:
                inner = dict(scope)
                if len(node.variables) == 2:
                    inner[node.variables[0]], inner[node.variables[1]] = key, element
                elif len(node.variables) == 1:
                    inner[node.variables[0]] = element
                _run(node.body, element, inner, out)
