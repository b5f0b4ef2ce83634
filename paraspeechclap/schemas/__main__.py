"""``python -m paraspeechclap.schemas [KIND | check KIND FILE...]``: the declared file contracts.

No argument: every kind, its version and what file it is. ``KIND``: its JSON Schema. ``check KIND FILE...``: check
files against it (a ``.jsonl`` file line by line, anything else as one JSON document); exit 1 if one does not meet it.
"""
from __future__ import annotations

import json
import sys

from .core import SchemaError, all_contracts, check, contract, read


def _check_file(path: str, kind: str) -> list[str]:
    if not path.endswith(".jsonl"):
        try:
            read(path, kind)
        except SchemaError as err:
            return [str(err)]
        return []
    problems = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                check(json.loads(line), kind, f"{path}:{number}")
            except SchemaError as err:
                problems.append(str(err))
            except ValueError as err:
                problems.append(f"{path}:{number}: not valid JSON ({err})")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        for kind, c in sorted(all_contracts().items()):
            print(f"{kind:26s} version {c.version}  {c.what}")
        return 0
    if args[0] == "check" and len(args) >= 3:
        problems = [p for path in args[2:] for p in _check_file(path, args[1])]
        print("\n".join(problems) if problems else f"{len(args) - 2} file(s) meet {args[1]} "
                                                   f"version {contract(args[1]).version}")
        return 1 if problems else 0
    if len(args) == 1 and args[0] in all_contracts():
        print(json.dumps(contract(args[0]).model.model_json_schema(), indent=2))
        return 0
    print(__doc__.splitlines()[0], file=sys.stderr)
    print(f"kinds: {', '.join(sorted(all_contracts()))}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
