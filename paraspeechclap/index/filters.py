"""The one rule for a user's filter over an annotation folder (``search --where``, ``/v1/search``, ``Index.search``).

A filter is a single SQL *expression* over the annotation columns: column references, literals, comparisons,
``AND``/``OR``/``NOT``, ``IN``, ``BETWEEN``, ``LIKE``/``ILIKE``/``GLOB``, ``IS [NOT] NULL``, ``CASE``, casts,
arithmetic and a small allow-list of pure scalar functions (:data:`FUNCTIONS`). Anything else is refused with an
error naming it: any other function (``read_csv``, ``read_text``, ``getenv`` ... which read files or the
environment), a subquery, a second statement, ``*``/``COLUMNS``, parameters, lambdas, window functions, a clause
after the expression (``GROUP BY``, ``UNION`` ...), a column the annotations do not have.

The text is parsed by DuckDB itself (``json_serialize_sql``), the same parser that will run it, so what is
checked is exactly what runs: no second grammar that could disagree with DuckDB's (as a separate SQL library's
could, on DuckDB-specific syntax such as ``::`` casts, ``[...]`` lists or ``GLOB``). The parse runs on a private
in-memory connection and executes nothing.
"""
from __future__ import annotations

import functools
import json
from typing import Any, Iterable

__all__ = ["FilterError", "FUNCTIONS", "MAX_LENGTH", "validate_where"]

MAX_LENGTH = 4096  # characters: a filter is a condition, not a program
_MAX_DEPTH = 200

#: pure scalar functions and operators a filter may call (DuckDB's names; LIKE is ``~~``, GLOB ``~~~``)
FUNCTIONS = frozenset({
    "+", "-", "*", "/", "//", "%", "||", "~~", "!~~", "~~*", "!~~*", "~~~", "!~~~", "@>", "<@", "&&",
    "abs", "round", "floor", "ceil", "ceiling", "sqrt", "ln", "log", "log2", "log10", "exp", "pow", "power", "sign",
    "greatest", "least", "isnan", "isinf", "isfinite", "ifnull", "nullif",
    "lower", "upper", "lcase", "ucase", "length", "strlen", "trim", "ltrim", "rtrim", "substr", "substring",
    "contains", "starts_with", "ends_with", "prefix", "suffix", "concat", "replace", "strpos", "instr", "position",
    "regexp_matches", "regexp_full_match",
    "len", "array_length", "list_contains", "list_has", "array_contains", "array_has", "list_has_any",
    "array_has_any", "list_has_all", "array_has_all", "list_position", "array_position", "list_extract",
    "list_element", "list_value",
})
#: expression classes walked into; their sub-expressions are checked in turn
_CLASSES = {"CONJUNCTION", "COMPARISON", "BETWEEN", "CONSTANT", "COLUMN_REF", "FUNCTION", "CAST", "TYPE", "CASE",
            "OPERATOR"}
_OPERATORS = {"OPERATOR_NOT", "OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL", "COMPARE_IN", "COMPARE_NOT_IN",
              "OPERATOR_COALESCE", "ARRAY_EXTRACT"}
_REFUSED_NAMES = {"SUBQUERY": "a subquery", "STAR": "* or COLUMNS(...)", "PARAMETER": "a parameter (? or $n)",
                  "LAMBDA": "a lambda", "WINDOW": "a window function", "POSITIONAL_REFERENCE": "a positional reference",
                  "DEFAULT": "DEFAULT", "COLLATE": "COLLATE"}
_PROBE = "SELECT 1 FROM clips WHERE "


class FilterError(ValueError):
    """A filter that is not a plain expression over the annotation columns; the message names what was refused."""


def _parse(sql: str, where: str | None = None) -> dict:
    """DuckDB's parse tree of the one SELECT in ``sql``; with ``where``, the filter is first read on its own after
    the frame, so that ``x; COPY ...`` is named a second statement rather than a syntax error."""
    import duckdb

    con = duckdb.connect()
    try:
        if where is not None:
            try:
                several = len(con.extract_statements(_PROBE + where + "\n")) > 1
            except duckdb.Error:
                several = False  # the parenthesised parse below names the syntax error
            if several:
                raise FilterError("a second statement is refused: a filter is one expression (no ';')")
        try:
            statements = con.extract_statements(sql)
        except duckdb.Error as err:
            raise FilterError(f"not a valid filter expression: {' '.join(str(err).split())}") from None
        if len(statements) != 1:
            raise FilterError("a second statement is refused: a filter is one expression (no ';')")
        doc = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    finally:
        con.close()
    if doc.get("error"):
        raise FilterError(f"not a valid filter expression: {doc.get('error_message')}")
    return doc["statements"][0]["node"]


def _without(node: Any, drop: set[str]) -> Any:
    if isinstance(node, dict):
        return {k: _without(v, drop) for k, v in node.items() if k not in drop}
    if isinstance(node, list):
        return [_without(v, drop) for v in node]
    return node


def _check(node: Any, columns: set[str], depth: int = 0) -> None:
    """Every expression node under ``node`` is of an allowed kind (any dict with a ``class`` is an expression)."""
    if depth > _MAX_DEPTH:
        raise FilterError(f"the filter is nested more than {_MAX_DEPTH} levels deep")
    if isinstance(node, list):
        for item in node:
            _check(item, columns, depth + 1)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("class")
    if kind is not None:
        _check_node(node, kind, columns)
        if kind == "CONSTANT":
            return  # a literal's payload holds values, not expressions
    for value in node.values():
        _check(value, columns, depth + 1)


def _check_node(node: dict, kind: str, columns: set[str]) -> None:
    if kind not in _CLASSES:
        raise FilterError(f"{_REFUSED_NAMES.get(kind, kind.lower())} is not allowed in a filter")
    if kind == "OPERATOR" and node.get("type") not in _OPERATORS:
        raise FilterError(f"the operator {node.get('type')} is not allowed in a filter")
    if kind == "COLUMN_REF":
        names = node.get("column_names") or []
        if len(names) != 1 or names[0] not in columns:
            raise FilterError(f"unknown column {'.'.join(map(str, names))!r}; the annotation columns are: "
                              f"{', '.join(sorted(columns))}")
    if kind == "FUNCTION":
        name = str(node.get("function_name", "")).lower()
        if name not in FUNCTIONS or node.get("schema") or node.get("catalog") or node.get("distinct"):
            raise FilterError(f"the function {name}() is not allowed in a filter (allowed: "
                              f"{', '.join(sorted(f for f in FUNCTIONS if f.isidentifier()))})")


_LOCATION = {"query_location", "query_location_length"}


@functools.lru_cache(maxsize=1)
def _frame() -> dict:
    """The parsed ``SELECT 1 FROM clips WHERE ...`` around a filter, without the filter: a filter must leave it as is."""
    return _without(_parse(_PROBE + "TRUE"), _LOCATION | {"where_clause"})


def validate_where(where: str, columns: Iterable[str]) -> str:
    """``where`` unchanged when it is one filter expression over ``columns`` (see the module); else
    :class:`FilterError` naming what was refused. Costs one parse of at most :data:`MAX_LENGTH` characters."""
    if not isinstance(where, str) or not where.strip():
        raise FilterError("the filter is empty")
    if len(where) > MAX_LENGTH:
        raise FilterError(f"the filter has {len(where)} characters; the limit is {MAX_LENGTH}")
    if "\x00" in where:
        raise FilterError("the filter holds a NUL character")
    try:
        node = _parse(_PROBE + "(" + where + "\n)", where)  # the newline ends a trailing -- comment before the ')'
        if node.get("type") != "SELECT_NODE" or _without(node, _LOCATION | {"where_clause"}) != _frame():
            raise FilterError("only an expression is allowed: a clause after it (GROUP BY, ORDER BY, LIMIT, UNION, "
                              "...) is refused")
        _check(node.get("where_clause"), set(columns))
    except RecursionError:
        raise FilterError(f"the filter is nested more than {_MAX_DEPTH} levels deep") from None
    return where
