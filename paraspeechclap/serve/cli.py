"""``paraspeechclap serve``: the scoring / reward service and its web page."""
from __future__ import annotations

import argparse
import ipaddress
import os
import sys

HELP = "HTTP service: score, classify, embed, reward, timeline (and search with --index), plus a web page"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..cli import add_model_arguments
    from .config import ServeConfig

    d = ServeConfig()
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--index", help="an index folder (paraspeechclap.index) for /v1/search")
    parser.add_argument("--token", default=None,
                        help="bearer token required on /v1/* and /metrics (default: $PARASPEECHCLAP_TOKEN, else none)")
    parser.add_argument("--allow-root", default=None,
                        help="allow {\"path\": ...} audio, only for files under this folder (default: paths refused)")
    parser.add_argument("--max-batch-items", type=int, default=d.max_batch_items,
                        help=f"dynamic batching: up to N items per batch (default {d.max_batch_items})")
    parser.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms,
                        help=f"... or T ms of gathering, whichever first (default {d.max_wait_ms:g})")
    parser.add_argument("--max-queue-items", type=int, default=d.max_queue_items,
                        help=f"items in flight before requests get 429 + Retry-After (default {d.max_queue_items})")
    parser.add_argument("--max-upload-mb", type=float, default=d.max_upload_bytes / 2**20,
                        help=f"largest request body in MiB (default {d.max_upload_bytes / 2**20:g})")
    parser.add_argument("--max-audio-seconds", type=float, default=d.max_audio_seconds,
                        help=f"longest clip for score/classify/embed/reward (default {d.max_audio_seconds:g})")
    parser.add_argument("--max-timeline-seconds", type=float, default=d.max_timeline_seconds,
                        help=f"longest recording for /v1/timeline (default {d.max_timeline_seconds:g})")
    parser.add_argument("--max-captions", type=int, default=d.max_captions,
                        help=f"captions / candidates per request (default {d.max_captions})")
    parser.add_argument("--max-items", type=int, default=d.max_items,
                        help=f"items per /v1/reward or /v1/embed request (default {d.max_items})")
    parser.add_argument("--timeout", type=float, default=d.request_timeout,
                        help=f"seconds a request may wait for the model; then 504 (default {d.request_timeout:g})")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_model_arguments(parser)


def config_from_args(args: argparse.Namespace):
    from .config import ServeConfig

    return ServeConfig(token=args.token or os.environ.get("PARASPEECHCLAP_TOKEN") or None,
                       allow_root=args.allow_root, max_batch_items=args.max_batch_items, max_wait_ms=args.max_wait_ms,
                       max_queue_items=args.max_queue_items, batch_size=args.batch_size,
                       max_upload_bytes=int(args.max_upload_mb * 2**20), max_audio_seconds=args.max_audio_seconds,
                       max_timeline_seconds=args.max_timeline_seconds, max_captions=args.max_captions,
                       max_items=args.max_items, request_timeout=args.timeout)


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
    except ImportError as err:
        print(f"error: serve needs the 'serve' extra (pip install 'paraspeechclap[serve]'): {err}", file=sys.stderr)
        return 2
    from ..cli import load_model_from_args

    config = config_from_args(args)
    if config.allow_root is not None and not os.path.isdir(config.allow_root):
        print(f"error: --allow-root {config.allow_root} is not a folder", file=sys.stderr)
        return 2
    if not _loopback(args.host) and config.token is None:
        print(f"warning: listening on {args.host} without a token: anyone who can reach it can use it "
              "(give --token or PARASPEECHCLAP_TOKEN)", file=sys.stderr)
    index = load_index(args.index) if args.index else None
    model = load_model_from_args(args)
    app = create_app(model, config, index=index)
    print(f"serving {model.provenance()['model']} on http://{args.host}:{args.port}/ (API docs at /docs)",
          file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_keep_alive=30)
    return 0
