"""Limits and switches of the HTTP service, validated once at start-up by the config schema (unknown keys refused).

`ServiceSettings` is what the app (`create_app`) enforces; `ServerSettings` is what the process around it
(`deepfake_lightning.serve`: uvicorn and its connection guard) enforces. Both are `Settings` of
`utils/config_schema.py`: strict types, ranges declared once, one line naming the key when a value is wrong.
docs/reliability.md ("Threats and limits") says which attack each limit answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from deepfake_lightning.data.images import MAX_PIXELS
from deepfake_lightning.utils.config_schema import ConfigError, Settings, _holds

MIB = 1 << 20
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and part headers on top of the file bytes
SMALL_BODY = 64 * 1024  # every route that takes no upload (the page, /v1/model, /health)


def _count(default: int, what: str = "an integer >= 1") -> Any:
    return Field(default, ge=1, description=what)


def _seconds(default: float) -> Any:
    return Field(default, gt=0, description="a number of seconds > 0")


LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
HostNames = Annotated[Sequence[str], _holds(lambda v: all(isinstance(h, str) and h.strip() for h in v))]


class ServiceSettings(Settings):
    """What the app enforces on every request; the defaults are `conf/serve.yaml`'s."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    max_upload_bytes: int = _count(10 * MIB)  # one image
    max_video_bytes: int = _count(100 * MIB)  # one video
    max_pixels: int = _count(
        MAX_PIXELS
    )  # decoded size of one image, judged from its header (decompression bombs)
    max_batch_files: int = _count(16)
    max_request_pixels: int = _count(
        200_000_000
    )  # decoded pixels of one request, all files together: 413 above
    decode_pixels: int = _count(100_000_000)  # pixels decoded at once over all requests (decode_budget.py)
    upload_bytes_in_memory: int = _count(512 * MIB)  # upload bytes read into memory at once, all requests
    api_key: Annotated[str, _holds(lambda v: len(v) >= 8)] | None = Field(
        None, description="null or a string of at least 8 characters"
    )  # when set, /v1/* needs header X-API-Key (checked on the headers, before any body byte)
    cors_origins: HostNames = Field((), description="a list of origins")  # empty: no CORS headers at all
    allowed_hosts: HostNames = Field(
        (), description="a list of host names"
    )  # Host header allowlist; empty: any
    video_num_frames: int = _count(16)
    video_max_frames: int = _count(64)
    video_batch_size: int = _count(16)
    video_top_k: int = _count(5)
    video_max_frame_pixels: int = _count(3840 * 2160)  # per decoded frame, judged from the stream header: 413
    video_timeout_s: float = _seconds(60.0)  # wall-clock cap on decoding one upload: 413 past it
    video_concurrency: int = _count(1)  # videos decoded at once; more wait (decoding takes a core each)
    body_timeout_s: float = _seconds(
        60.0
    )  # the whole request body must arrive within this: 408 (slow clients)
    max_batch_size: int = _count(
        16
    )  # dynamic batching: concurrent images scored as one batch of up to N; 1 = serial
    batch_wait_ms: float = Field(5.0, ge=0, description="a number >= 0")  # a batch waits this long for more
    explain: bool = Field(True, description="true or false")  # `?explain=true` may ask for crop and overlay
    # GET /metrics (Prometheus): false = behind the API key like /v1/* (X-API-Key or Authorization: Bearer);
    # true = open to whoever reaches the port (a scraper on a private network; deploy/nginx.conf refuses it)
    metrics_public: bool = Field(False, description="true or false")
    # score drift (drift.py): PSI over the last `drift_window` image scores of each worker
    drift_window: int = _count(1000)
    drift_min_scores: int = _count(200)  # no drift value until the window holds this many scores
    drift_threshold: float = Field(0.25, gt=0, description="a number > 0")  # PSI above it: a warning

    config_key: ClassVar[str] = ""

    @model_validator(mode="after")
    def _drift_window_fills(self) -> ServiceSettings:
        if self.drift_min_scores > self.drift_window:
            raise ConfigError(
                f"drift_min_scores={self.drift_min_scores}: expected at most drift_window={self.drift_window} "
                "(the window never holds more)"
            )
        return self

    def body_limits(self) -> dict[str, tuple[int, str]]:
        """Request path -> (largest body accepted, what that limit is), counted on the byte stream."""
        return {
            "/v1/predict": (self.max_upload_bytes, "max_upload_bytes"),
            "/v1/predict/batch": (
                self.max_upload_bytes * self.max_batch_files,
                "max_upload_bytes x max_batch_files",
            ),
            "/v1/predict/video": (self.max_video_bytes, "max_video_bytes"),
        }

    def request_limit(self) -> int:
        """Largest body any endpoint accepts (multipart overhead included)."""
        return max(limit for limit, _ in self.body_limits().values()) + FORM_OVERHEAD

    def public(self) -> dict[str, Any]:
        """The limits `/v1/model` shows: everything but the key and the origin and host lists."""
        return self.model_dump(exclude={"api_key", "cors_origins", "allowed_hosts"})


class ServerSettings(Settings):
    """What the process enforces on connections, before the app sees a request (`deepfake_lightning.serve`).

    uvicorn's own settings where it has one (`limit_concurrency`, `timeout_keep_alive`, `max_header_bytes` as
    `h11_max_incomplete_event_size`); `header_timeout_s` is `inference/connection_guard.py`'s: uvicorn has no
    deadline for a request head."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    host: str = Field("127.0.0.1", description="an address or host name")
    port: int = Field(8000, ge=0, le=65535, description="an integer in 0..65535")
    log_level: Literal[LOG_LEVELS] = Field("info", description=", ".join(LOG_LEVELS))
    limit_concurrency: int = Field(
        128, ge=2, description="an integer >= 2"
    )  # connections + requests; 503 above
    timeout_keep_alive: float = _seconds(5.0)  # an idle kept-alive connection is closed after this
    header_timeout_s: float = _seconds(10.0)  # a request head must arrive within this (connection_guard.py)
    # h11's limit on a request head still incomplete in its buffer (400 past it); a head that arrives whole in one
    # read (up to 256 KiB) is parsed whole: heads are bounded by 256 KiB + this
    max_header_bytes: int = Field(16384, ge=1024, description="an integer >= 1024")
    # uvicorn worker processes sharing the port, each with its own model (inference/workers.py); /metrics
    # then adds up every worker's counts (prometheus-client's multiprocess mode)
    workers: int = _count(1)

    config_key: ClassVar[str] = ""

    def uvicorn_options(self) -> dict[str, Any]:
        """Keyword arguments of `uvicorn.run`, the connection guard included."""
        from deepfake_lightning.inference.connection_guard import guarded_protocol

        return {
            "host": self.host,
            "port": self.port,
            "log_level": self.log_level,
            "limit_concurrency": self.limit_concurrency,
            # asyncio accepts up to `backlog` connections per loop turn, before an eviction takes effect: this
            # many keeps sockets under 3 x limit_concurrency (`serve` raises RLIMIT_NOFILE to fit them)
            "backlog": self.limit_concurrency,
            "timeout_keep_alive": self.timeout_keep_alive,
            "h11_max_incomplete_event_size": self.max_header_bytes,
            "http": guarded_protocol(self.header_timeout_s),
        }
