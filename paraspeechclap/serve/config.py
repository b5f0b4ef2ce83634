"""The service's limits and switches: one dataclass, each field declaring its flag and help (the CLI and the limits
table of docs/serve.md are read from it)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from .pacing import BURST_SECONDS

MB = 2**20
SAMPLE_BYTES = 16000 * 4  # a second of decoded audio: 16 kHz mono float32
HTTP_FRONTS = ("auto", "httptools", "h11")


def _opt(default, flag: str | None, help: str, scale: float = 1.0, group: str = "limits", choices: tuple = ()):
    """A config field; ``flag`` is its CLI option (None: set in Python only), ``scale`` turns the flag's unit into the
    field's (MiB -> bytes), ``choices`` its allowed values (any when empty)."""
    return field(default=default, metadata={"flag": flag, "help": help, "scale": scale, "group": group,
                                            "choices": choices})


@dataclass
class ServeConfig:
    token: str | None = _opt(None, "--token", "bearer token required on /v1/* and /metrics (default: "
                             "$PARASPEECHCLAP_TOKEN, else none)", group="access")
    allow_root: str | None = _opt(None, "--allow-root", "allow {\"path\": ...} audio, only for files under this folder "
                                  "(default: paths refused)", group="access")
    allowed_hosts: tuple[str, ...] = _opt((), "--allowed-hosts", "Host / Origin names accepted besides the loopback "
                                          "names when no token is set (comma-separated; '*' accepts any)",
                                          group="access")
    # batching and backpressure
    max_batch_items: int = _opt(32, "--max-batch-items", "dynamic batching: up to N items per batch ...")
    max_batch_seconds: float = _opt(96.0, "--max-batch-seconds", "... and up to this many seconds of audio "
                                    "(a longer clip is a batch of its own)")
    max_wait_ms: float = _opt(10.0, "--max-wait-ms", "... or T ms of gathering, whichever first")
    max_queue_items: int = _opt(256, "--max-queue-items", "items in flight before requests get 429 + Retry-After")
    max_queue_cost: float = _opt(1800.0, "--max-queue-cost", "work in flight (seconds of audio-equivalent, see the "
                                 "cost model) before requests get 429")
    batch_size: int | None = _opt(None, "--batch-size", "clips per forward pass inside a batch (default: the model's)",
                                  group="model")
    request_timeout: float = _opt(60.0, "--timeout", "seconds a request may take once admitted; then 504 and its "
                                  "remaining chunks are dropped (work that could not be done in half of it at the "
                                  "measured rate is refused at admission)")
    express_cost: float = _opt(8.0, "--express-cost", "requests costing at most this many seconds of work run on a "
                               "model thread of their own (the express lane), never behind an expensive batch")
    bulk_nice: int = _opt(10, "--bulk-nice", "CPU priority (nice) of the bulk lane's work for requests costing "
                          "over --nice-cost (large decodes, long timelines): the event loop, the express lane and "
                          "cheaper bulk work go first when cores are short (0: all at the same priority)")
    nice_cost: float = _opt(60.0, "--nice-cost", "requests costing more than this many seconds of work run their bulk "
                            "work at --bulk-nice (on a shared machine it then waits behind other processes too)")
    model_process: bool = _opt(True, "--model-process", "run the forward passes in a process of their own, so that "
                               "the event loop and the model never wait for each other's GIL (the server then holds "
                               "two copies of the model); --no-model-process keeps them in the server's process",
                               group="model")
    chunk_seconds: float = _opt(6.0, "--chunk-seconds", "work per model job: a request is cut into chunks of about "
                                "this many seconds of audio, checked for timeout and disconnect between chunks")
    # cost of one request
    max_request_cost: float = _opt(900.0, "--max-request-cost", "the most work one request may cause, in seconds of "
                                   "audio-equivalent (audio + prompts + timeline windows + search); more: 413")
    max_audio_seconds: float = _opt(60.0, "--max-audio-seconds", "longest clip for score/classify/embed/reward")
    max_timeline_seconds: float = _opt(1800.0, "--max-timeline-seconds", "longest recording for /v1/timeline")
    max_timeline_windows: int = _opt(4000, "--max-timeline-windows", "most windows of one timeline")
    max_captions: int = _opt(64, "--max-captions", "captions / candidates / classes per list")
    max_prompts: int = _opt(256, "--max-prompts", "prompts per request: candidates plus the classes of every "
                            "attribute set")
    max_attribute_sets: int = _opt(32, "--max-attribute-sets", "attribute sets per /v1/classify request")
    max_items: int = _opt(128, "--max-items", "items per /v1/reward or /v1/embed request")
    max_caption_chars: int = _opt(1000, "--max-caption-chars", "characters per caption, candidate, text or template")
    max_search_k: int = _opt(100, "--max-search-k", "largest k of /v1/search")
    max_sample_rate: int = _opt(96_000, "--max-sample-rate", "highest sample rate of an uploaded file (Hz)")
    max_channels: int = _opt(8, "--max-channels", "most channels of an uploaded file")
    # memory and the HTTP layer
    max_upload_bytes: int = _opt(25 * MB, "--max-upload-mb", "largest audio file in MiB; a body may be 4/3 of it plus "
                                 "64 KiB (base64)", scale=MB)
    max_body_memory: int = _opt(96 * MB, "--max-body-memory-mb", "memory for request bodies being read and parsed, "
                                "in MiB (each body is charged 2x its size: the bytes, the audio file decoded from "
                                "them); a body that does not fit gets 429", scale=MB)
    max_body_readers: int = _opt(64, "--max-body-readers", "request bodies being received at once; past it 429 "
                                 "before the body is read")
    max_audio_memory: int = _opt(48 * MB, "--max-audio-memory-mb", "memory for decoded audio in flight, in MiB "
                                 "(seconds x 16 kHz x 4 bytes; a timeline counts the windows it holds); 429 beyond",
                                 scale=MB)
    max_threads: int = _opt(4, "--max-threads", "threads for parsing, base64, headers and decoding of mid-sized "
                            "requests (small ones run on the event loop, large decodes on the model lanes)")
    max_json_depth: int = _opt(32, "--max-json-depth", "deepest nesting of a JSON body or JSON field")
    max_json_values: int = _opt(100_000, "--max-json-values", "most values in a JSON body (counted before parsing)")
    header_timeout: float = _opt(10.0, "--header-timeout", "seconds a connection may take to send a request's headers; "
                                 "then 408 and closed")
    body_timeout: float = _opt(30.0, "--body-timeout", "seconds a request may take to send its body; then 408 and "
                               "closed")
    refusal_rate: float = _opt(32.0, "--refusal-rate", "refusals (4xx) answered at once per second, after a burst of "
                               f"{BURST_SECONDS:g} s worth; past it each waits its turn, up to --refusal-delay, so a "
                               "client that keeps being refused is slowed instead of taking the event loop (0: never "
                               "held)")
    refusal_delay: float = _opt(1.5, "--refusal-delay", "a refusal held back is answered at most this many seconds "
                                "after its request arrived (at most half of the connections wait at once)")
    max_connections: int = _opt(256, "--max-connections", "open connections; past it requests get 503 from uvicorn")
    http: str = _opt("auto", "--http", "HTTP front end: httptools (a C parser, with uvloop when installed) or h11 "
                     "(pure Python); auto: httptools when installed", choices=HTTP_FRONTS)

    @property
    def max_body_bytes(self) -> int:
        """The largest request body: base64 is 4/3 of the file's bytes, plus room for framing and the JSON around it."""
        return self.max_upload_bytes * 4 // 3 + 64 * 1024

    def public(self) -> dict:
        """The limits, as /health shows them (never the token)."""
        out = asdict(self)
        out.pop("token")
        out["auth"] = self.token is not None
        out["paths"] = self.allow_root is not None
        out.pop("allow_root")
        out["allowed_hosts"] = list(self.allowed_hosts)
        return out


def options() -> list:
    """The config fields that have a CLI flag, in declaration order."""
    return [f for f in fields(ServeConfig) if f.metadata.get("flag")]


def _shown(default, scale: float) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    if default in (None, ()):
        return "none"
    if scale != 1:
        return f"{default / scale:g} MiB"
    return f"{default:g}" if isinstance(default, (int, float)) else str(default)


def limits_table() -> str:
    """The Markdown table of every option and its default, as docs/serve.md shows it (a test keeps them equal)."""
    rows = ["| option | default | what it bounds |", "|---|---|---|"]
    for option in fields(ServeConfig):
        meta, default = option.metadata, option.default
        shown = _shown(default, meta["scale"])
        flag = f"`{meta['flag']}`" if meta.get("flag") else "(Python only)"
        rows.append(f"| {flag} (`{option.name}`) | {shown} | {meta['help']} |")
    return "\n".join(rows)
