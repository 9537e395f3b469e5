"""The safe evaluator of workflow ``condition`` and ``switch`` expressions.

CodeMie evaluates these with Python over the JSON-parsed previous output (its keys become
variables, plus ``keys``). Here an expression is parsed with ``ast`` and only a whitelist of
node kinds is accepted: literals, names, boolean logic, comparisons (``in`` included), arithmetic,
subscripts and a few pure functions. There is no attribute access (so no ``__class__`` walks), no
calls but the whitelisted ones, no comprehensions, lambdas or loops, so evaluation time is linear
in the (bounded) expression size; arithmetic that could build huge values (``'a' * 10**9``,
``9 ** 9 ** 9``) is bounded too. Checking happens when a workflow is saved (``check``), and again
before every evaluation.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

from repolens.errors import InvalidInput

# A condition is a one-liner in YAML; a longer text is almost certainly not a condition.
MAX_EXPRESSION_CHARS = 1000
# Nodes in the parsed tree: bounds the evaluation time together with the value limits below.
MAX_EXPRESSION_NODES = 200
# No intermediate string, list or number may grow past this many characters/items/digits:
# ``'a' * 10**9`` is refused before it allocates a gigabyte.
MAX_VALUE_SIZE = 100_000
MAX_EXPONENT = 64

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
# Pure functions of bounded cost on bounded values.
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "abs": abs,
    "min": min,
    "max": max,
    "lower": lambda s: str(s).lower(),
    "upper": lambda s: str(s).upper(),
}
_ALLOWED = (
    ast.Expression,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Compare,
    ast.Subscript,
    ast.List,
    ast.Tuple,
    ast.Dict,
    ast.Call,
    ast.IfExp,
    *_BINARY,
    *_COMPARE,
)


class ExpressionError(InvalidInput):
    """An expression that is not allowed or failed to evaluate."""


def check(expression: str) -> ast.Expression:
    """Parse and vet ``expression``; raise ``ExpressionError`` naming what is not allowed."""
    if not isinstance(expression, str) or not expression.strip():
        raise ExpressionError("the expression is empty")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"the expression is not valid: {exc.msg}") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_EXPRESSION_NODES:
        raise ExpressionError(f"the expression has more than {MAX_EXPRESSION_NODES} parts")
    for node in nodes:
        if isinstance(node, ast.Attribute):
            raise ExpressionError("attribute access (a.b) is not allowed in an expression")
        if not isinstance(node, _ALLOWED):
            raise ExpressionError(f"{type(node).__name__} is not allowed in an expression")
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise ExpressionError(f"the name {node.id!r} is not allowed in an expression")
        plain_call = isinstance(node, ast.Call) and not node.keywords and isinstance(node.func, ast.Name)
        if isinstance(node, ast.Call) and not (plain_call and getattr(node.func, "id", "") in _FUNCTIONS):
            allowed = ", ".join(sorted(_FUNCTIONS))
            raise ExpressionError(f"only these functions may be called in an expression: {allowed}")
    return tree


def _bounded(value: Any) -> Any:
    if isinstance(value, (str, list, tuple, dict)) and len(value) > MAX_VALUE_SIZE:
        raise ExpressionError(f"the expression built a value larger than {MAX_VALUE_SIZE} items")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_VALUE_SIZE:
        raise ExpressionError("the expression built a number that is too large")
    return value


def _size(value: Any) -> int:
    if isinstance(value, (str, list, tuple, dict)):
        return len(value)
    if isinstance(value, int):
        return abs(value)
    return 1


class _Evaluator:
    def __init__(self, names: Mapping[str, Any]) -> None:
        self.names = names

    def eval(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return self.eval(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[node.id]
            if node.id in ("true", "false", "null"):  # JSON spellings, as YAML authors write them
                return {"true": True, "false": False, "null": None}[node.id]
            if node.id not in self.names:
                raise ExpressionError(f"the name {node.id!r} is not in the previous output")
            return self.names[node.id]
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                result: Any = True
                for value in node.values:
                    result = self.eval(value)
                    if not result:
                        return result
                return result
            result = False
            for value in node.values:
                result = self.eval(value)
                if result:
                    return result
            return result
        if isinstance(node, ast.UnaryOp):
            operand = self.eval(node.operand)
            if isinstance(node.op, ast.Not):
                return not operand
            return -operand if isinstance(node.op, ast.USub) else +operand
        if isinstance(node, ast.BinOp):
            left, right = self.eval(node.left), self.eval(node.right)
            if isinstance(node.op, ast.Pow) and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
                raise ExpressionError(f"exponents above {MAX_EXPONENT} are not allowed in an expression")
            sequence = isinstance(left, (str, list, tuple)) or isinstance(right, (str, list, tuple))
            if isinstance(node.op, ast.Mult) and sequence and _size(left) * _size(right) > MAX_VALUE_SIZE:
                raise ExpressionError(f"the expression built a value larger than {MAX_VALUE_SIZE} items")
            try:
                return _bounded(_BINARY[type(node.op)](left, right))
            except (TypeError, ZeroDivisionError, OverflowError, ValueError) as exc:
                raise ExpressionError(f"the expression failed: {exc}") from None
        if isinstance(node, ast.Compare):
            left = self.eval(node.left)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self.eval(comparator)
                try:
                    if not _COMPARE[type(op)](left, right):
                        return False
                except TypeError as exc:
                    raise ExpressionError(f"the expression failed: {exc}") from None
                left = right
            return True
        if isinstance(node, ast.IfExp):
            return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)
        if isinstance(node, ast.Subscript):
            container, index = self.eval(node.value), self.eval(node.slice)
            try:
                return container[index]
            except (KeyError, IndexError, TypeError) as exc:
                raise ExpressionError(f"the expression failed: no item {exc}") from None
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.eval(e) for e in node.elts]
        if isinstance(node, ast.Dict):
            return {
                self.eval(k) if k is not None else None: self.eval(v) for k, v in zip(node.keys, node.values, strict=True)
            }
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            args = [self.eval(a) for a in node.args]
            try:
                return _bounded(_FUNCTIONS[node.func.id](*args))
            except (TypeError, ValueError) as exc:
                raise ExpressionError(f"the expression failed: {exc}") from None
        raise ExpressionError(f"{type(node).__name__} is not allowed in an expression")


def names_for(output: Any) -> dict[str, Any]:
    """The variables an expression sees: a dict output's keys, plus ``keys`` (the list of them)
    and ``output`` (the whole value), as CodeMie does."""
    names: dict[str, Any] = {}
    if isinstance(output, dict):
        names.update({str(k): v for k, v in output.items() if not str(k).startswith("_")})
        names["keys"] = list(output)
    else:
        names["keys"] = []
    names.setdefault("output", output)
    return names


def evaluate(expression: str, output: Any) -> Any:
    """Evaluate a vetted expression over the previous output."""
    return _Evaluator(names_for(output)).eval(check(expression))
