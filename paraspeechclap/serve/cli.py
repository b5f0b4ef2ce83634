"""``paraspeechclap serve``: the scoring / reward service and its web page."""
from __future__ import annotations

import argparse
import ipaddress
import os
import sys

HELP = "HTTP service: score, classify, embed, reward, timeline (and search with --index), plus a web page"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's own options, then one per :class:`ServeConfig` field (its flag, help and default), then the
    model options."""
    from ..modelspec import ModelSpec
    from .config import options

    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--index", help="an index folder (paraspeechclap.index) for /v1/search")
    for option in options():
        flag, default, scale = option.metadata["flag"], option.default, option.metadata["scale"]
        if option.name in ("token", "allow_root", "batch_size"):
            continue   # token: also from the environment; batch_size: a model option
        if option.name == "allowed_hosts":
            parser.add_argument(flag, default="", help=option.metadata["help"])
            continue
        if isinstance(default, bool):
            parser.add_argument(flag, dest=option.name, action=argparse.BooleanOptionalAction, default=default,
                                help=f"{option.metadata['help']} (default {'on' if default else 'off'})")
            continue
        kind = type(default) if default is not None else str
        shown = default / scale if scale != 1 else default
        parser.add_argument(flag, dest=option.name, type=float if scale != 1 else kind, default=shown,
                            choices=option.metadata["choices"] or None,
                            help=f"{option.metadata['help']} (default {shown if kind is str else format(shown, 'g')})")
    parser.add_argument("--token", default=None, help=_help("token"))
    parser.add_argument("--allow-root", default=None, help=_help("allow_root"))
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    ModelSpec.add_arguments(parser)


def _help(name: str) -> str:
    from .config import options

    return next(o.metadata["help"] for o in options() if o.name == name)


def config_from_args(args: argparse.Namespace):
    from .config import ServeConfig, options

    values = {}
    for option in options():
        if option.name in ("token", "allow_root", "allowed_hosts", "batch_size"):
            continue
        value = getattr(args, option.name)
        scale = option.metadata["scale"]
        values[option.name] = int(value * scale) if scale != 1 else value
    hosts = tuple(h.strip() for h in (args.allowed_hosts or "").split(",") if h.strip())
    if not _loopback(args.host) and args.host not in ("0.0.0.0", "::", ""):
        hosts += (args.host,)   # the address it was told to listen on is its own name
    return ServeConfig(token=args.token or os.environ.get("PARASPEECHCLAP_TOKEN") or None, allow_root=args.allow_root,
                       allowed_hosts=hosts, batch_size=args.batch_size, **values)


def load_index(folder: str):
    """The index of ``paraspeechclap.index`` (the corpus room), opened read-only."""
    try:
        from ..index import Index
    except ImportError as err:
        raise SystemExit(f"error: --index needs paraspeechclap.index, which is not available here ({err})") from None
    try:
        return Index.open(folder)
    except Exception as err:  # noqa: BLE001 - a missing or unreadable index is the user's to fix
        raise SystemExit(f"error: --index {folder}: {err}") from None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .app import create_app
        from .http import uvicorn_config
    except ImportError as err:
        print(f"error: serve needs the 'serve' extra (pip install 'paraspeechclap[serve]'): {err}", file=sys.stderr)
        return 2
    from ..modelspec import ModelSpec
    from .http import limit_malloc_arenas

    limit_malloc_arenas()
    config = config_from_args(args)
    if config.allow_root is not None and not os.path.isdir(config.allow_root):
        print(f"error: --allow-root {config.allow_root} is not a folder", file=sys.stderr)
        return 2
    if not _loopback(args.host) and config.token is None:
        print(f"warning: listening on {args.host} without a token: anyone who can reach it can use it "
              "(give --token or PARASPEECHCLAP_TOKEN)", file=sys.stderr)
    index = load_index(args.index) if args.index else None
    spec = ModelSpec.from_args(args)
    model = spec.load()
    try:
        app = create_app(model, config, index=index, spec=spec)
    except ValueError as err:
        print(f"error: --index {args.index}: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:   # the model process could not load the model
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"serving {model.provenance()['model']} on http://{args.host}:{args.port}/ (API docs at /docs)",
          file=sys.stderr)
    uvicorn.Server(uvicorn_config(app, config, args.host, args.port, args.log_level)).run()
    return 0
