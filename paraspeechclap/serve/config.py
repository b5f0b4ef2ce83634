"""The service's limits and switches (one dataclass; the CLI fills it from flags)."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class ServeConfig:
    token: str | None = None                 # bearer token for /v1/* and /metrics (None: no auth)
    allow_root: str | None = None            # server-side paths allowed only under this folder (None: paths refused)
    max_batch_items: int = 32                # dynamic batching: up to N items ...
    max_wait_ms: float = 10.0                # ... or T ms, whichever first
    max_queue_items: int = 256               # items in flight; past it: 429 with Retry-After
    batch_size: int | None = None            # clips per forward pass inside a batch (default: the model's)
    max_upload_bytes: int = 25 * 1024 * 1024  # a request body (multipart or JSON)
    max_audio_seconds: float = 60.0          # one clip for score / classify / embed / reward
    max_timeline_seconds: float = 1800.0     # one recording for the timeline
    max_timeline_windows: int = 4000
    max_captions: int = 64                   # captions / candidates per request
    max_items: int = 128                     # items per /v1/reward or /v1/embed request
    max_caption_chars: int = 1000
    request_timeout: float = 60.0            # seconds a request may wait for the model worker; then 504

    def public(self) -> dict:
        """The limits, as /health shows them (never the token)."""
        out = asdict(self)
        out.pop("token")
        out["auth"] = self.token is not None
        out["paths"] = self.allow_root is not None
        out.pop("allow_root")
        return out
