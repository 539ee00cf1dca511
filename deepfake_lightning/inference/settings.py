"""Limits and switches of the HTTP service, validated once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from deepfake_lightning.data.images import MAX_PIXELS

MIB = 1 << 20


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

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.type == "int" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{item.name}={value!r}: expected an integer >= 1")
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

    def request_limit(self) -> int:
        """Largest body any endpoint accepts (multipart overhead included); bigger is refused before parsing."""
        return max(self.max_upload_bytes * self.max_batch_files, self.max_video_bytes) + MIB
