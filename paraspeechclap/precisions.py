"""The numeric precisions inference runs in, declared once for the torch engine, the exported runtime and the CLI."""
from __future__ import annotations

PRECISIONS = ("auto", "fp32", "bf16", "int8")
