"""Limits and switches of the HTTP service, validated once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from deepfake_lightning.data.images import MAX_PIXELS

MIB = 1 << 20
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and part headers on top of the file bytes
SMALL_BODY = 64 * 1024  # every route that takes no upload (the page, /v1/model, /health)


@dataclass(frozen=True)
class ServiceSettings:
    max_upload_bytes: int = 10 * MIB  # one image
    max_video_bytes: int = 100 * MIB  # one video
    max_pixels: int = MAX_PIXELS  # decoded size guard (decompression bombs)
    max_batch_files: int = 16
    api_key: str | None = None  # when set, /v1/* needs header X-API-Key
    cors_origins: tuple[str, ...] = field(default_factory=tuple)  # empty: no CORS headers at all
    video_num_frames: int = 16
    video_max_frames: int = 64
    video_batch_size: int = 16
    video_top_k: int = 5
    video_max_frame_pixels: int = 3840 * 2160  # per decoded frame, judged from the stream header: 413 above
    video_timeout_s: float = 60.0  # wall-clock cap on decoding one upload: 413 past it
    video_concurrency: int = 1  # videos decoded at once; more wait (decoding takes a core each)
    body_timeout_s: float = 60.0  # the whole request body must arrive within this: 408 (slow clients)
    max_batch_size: int = 16  # dynamic batching: concurrent images scored as one batch of up to N; 1 = serial
    batch_wait_ms: float = 5.0  # how long a batch waits for more requests after the first one arrives
    explain: bool = True  # `?explain=true` may ask for the face crop and attention / Grad-CAM overlay

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.type == "int" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{item.name}={value!r}: expected an integer >= 1")
            if item.type == "float" and (
                not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0
            ):
                raise ValueError(f"{item.name}={value!r}: expected a number >= 0")
            if item.type == "bool" and not isinstance(value, bool):
                raise ValueError(f"{item.name}={value!r}: expected true or false")
        for name in ("video_timeout_s", "body_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r}: expected a number of seconds > 0")
        if self.api_key is not None and (not isinstance(self.api_key, str) or len(self.api_key) < 8):
            raise ValueError("api_key: expected null or a string of at least 8 characters")

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> ServiceSettings:
        """Keep only known keys (a config node may hold host, port...); lists become tuples."""
        known = {item.name for item in fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in known and v is not None}
        if "cors_origins" in kwargs:
            kwargs["cors_origins"] = tuple(kwargs["cors_origins"])
        return cls(**kwargs)

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
