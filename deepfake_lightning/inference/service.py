"""FastAPI app around any detector: `create_app(detector, settings)`; `deepfake_lightning.serve` runs it.

Every client mistake (no file, empty, random bytes, truncated, too big, too many pixels, too small, wrong key,
too slow) is a 4xx with a JSON `{"detail": ...}`; a 5xx only ever means a server fault. The API key, route,
method and content type are checked on the request head (`upload_guard.py`), body size and deadline on the byte
stream (`request_limits.py`); `middleware.py` orders those layers. Images of concurrent requests are decoded in
parallel and scored in dynamic batches (`prediction/batcher.py`); videos are decoded outside the model, their frames scored
through the same batches. `max_batch_size=1` keeps the previous path (one request at a time through one
lock) as the baseline the load test compares against. The page at `/` is plain HTML/JS from `web/`.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import torch
from fastapi import APIRouter, FastAPI, File, HTTPException, Query, Security, UploadFile
from fastapi.concurrency import iterate_in_threadpool, run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel

from deepfake_lightning.bundle import package_version
from deepfake_lightning.data.images import BadImageError
from deepfake_lightning.inference import explain as explaining
from deepfake_lightning.inference.decode_budget import Budget
from deepfake_lightning.inference.detector import BaseDetector
from deepfake_lightning.inference.disconnect import stop_event
from deepfake_lightning.inference.drift import DriftMonitor
from deepfake_lightning.inference.face_regions import FaceReport
from deepfake_lightning.inference.metrics import ServiceMetrics
from deepfake_lightning.inference.middleware import install_middleware
from deepfake_lightning.inference.model_card import model_card
from deepfake_lightning.inference.settings import ServiceSettings
from deepfake_lightning.inference.video_containers import (
    OPEN_OPTIONS,
    SNIFF_BYTES,
    UnsupportedContainerError,
    sniff_container,
)
from deepfake_lightning.inference.video_source import (
    Frame,
    Sampling,
    VideoError,
    VideoLimitError,
    batched,
    iter_frames,
)
from deepfake_lightning.prediction.batcher import DynamicBatcher
from deepfake_lightning.prediction.frames import (
    Prepared,
    VideoSummary,
    frame_rows,
    predict_frames,
    prepare_frames,
)
from deepfake_lightning.prediction.image_check import (
    as_refusal,
    decode_header,
    open_checked,
    refusal_fields,
    refusal_response,
)
from deepfake_lightning.prediction.scoring import Scored, answer_fields, score_prepared

READ_CHUNK = 1 << 16
PATH_KEYS = ("source", "calibration_source", "manifest")
WEB = resources.files("deepfake_lightning.inference") / "web"
# a video whose container records no length: what the caller can do (the service has no `every_k`)
UNKNOWN_LENGTH_HINT = "the server spreads video_num_frames={n} frames over the length a container records: re-encode it (e.g. as MP4)"


class PredictionOut(BaseModel):
    filename: str
    p_fake: float | None = None
    label: str | None = None  # "fake" | "real"
    threshold: float | None = None
    face: str | None = None  # "found" | "not_found" when the server crops faces
    n_faces: int | None = None
    faces: list[dict[str, Any]] | None = None  # each face: box, score, landmarks, alignment, its own p_fake
    attention: list[list[float]] | None = None
    explanation: dict[str, str] | None = None  # ?explain=true: base64 PNGs "crop", "overlay"; "method"
    error: str | None = None  # batch only: why this file has no score (the message a predictions row gets)
    reason: str | None = None  # batch only: which check refused it (prediction/image_check.py)


class BatchOut(BaseModel):
    predictions: list[PredictionOut]


class VideoOut(BaseModel):
    filename: str
    summary: dict[str, Any]
    frames: list[dict[str, Any]]


def _client_error(err: Exception, detail: str | None = None) -> HTTPException:
    """A video's refusal (an image's is a `BadImageError`, answered by `refused_image`)."""
    status = 413 if isinstance(err, VideoLimitError) else 422
    return HTTPException(status_code=status, detail=detail or str(err))


def refused_image(err: BadImageError) -> JSONResponse:
    """The answer to an image the decode-and-check step refused: its reason's status, `{"detail", "reason"}`."""
    status, body = refusal_response(err)
    return JSONResponse(body, status_code=status)


async def _read_limited(upload: UploadFile, limit: int) -> bytes:
    """Read at most `limit` bytes; one more means the file is too large (413), whatever the headers said. An
    empty image is refused by the decode step (`empty`), as a file of 0 bytes is in a predictions row."""
    chunks, size = [], 0
    while chunk := await upload.read(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"{upload.filename}: larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class _Scorer:
    """Decoding, the video summary and (serial mode) scoring; the parts both modes share."""

    def __init__(self, detector: BaseDetector, settings: ServiceSettings) -> None:
        self.detector = detector
        self.settings = settings
        self.lock = threading.Lock()  # serial mode: the one lock; batched mode: the face cropper only
        self.serial = settings.max_batch_size == 1
        self.crops_faces = getattr(detector.preparer, "faces", None) is not None
        self.batcher = (
            None if self.serial else DynamicBatcher(detector, settings.max_batch_size, settings.batch_wait_ms)
        )
        self.videos = threading.BoundedSemaphore(settings.video_concurrency)
        self.pixels = Budget(settings.decode_pixels)  # pixels being decoded, all requests together
        self.uploads = Budget(settings.upload_bytes_in_memory)  # upload bytes read into memory, all requests

    async def prepare(self, data: bytes, name: str) -> Prepared:
        """The header checked in a worker thread, then decoded and preprocessed once its pixels fit the budget."""
        return await self.decode(
            await run_in_threadpool(open_checked, data, name, self.settings.max_pixels), name
        )

    async def decode(self, image: Image.Image, name: str) -> Prepared:
        try:
            async with self.pixels.hold(image.width * image.height):
                return await run_in_threadpool(self._decode_prepare, image, name)
        finally:
            image.close()

    def _decode_prepare(self, image: Image.Image, name: str) -> Prepared:
        array = decode_header(image, name)
        if self.serial or self.crops_faces:  # face detectors (OpenCV cascade and dnn) are not thread-safe
            with self.lock:
                return self.detector.preparer(array, name)
        return self.detector.preparer(array, name)

    def score_serial(self, prepared: list[Prepared], attention: bool = False) -> list[Scored]:
        with self.lock:
            return score_prepared(self.detector, [item for item, _ in prepared], attention=attention)

    def result(self, name: str, scored: Scored, report: FaceReport | None, **extra: Any) -> PredictionOut:
        """The answer for one image: a predictions row's fields (p_fake, label, the faces, each with its box and
        own p_fake) and the threshold."""
        return PredictionOut(filename=name, **answer_fields(scored, report, self.detector.threshold), **extra)

    async def one(self, data: bytes, name: str, attention: bool, explain: bool) -> PredictionOut:
        prepared = await self.prepare(data, name)
        tensors = prepared[0]
        if self.batcher is None:
            [scored] = await run_in_threadpool(self.score_serial, [prepared], attention or explain)
        else:
            scored = await self.batcher.score(tensors, attention or explain)
        amap = scored.attention
        extra: dict[str, Any] = {"attention": amap.tolist() if attention and amap is not None else None}
        if explain:  # the crop that decided the score: the highest face, as aligned
            extra["explanation"] = await self.explanation(tensors[0][scored.best], amap, scored.p_fake)
        return self.result(name, scored, prepared[1], **extra)

    async def explanation(self, tensor: torch.Tensor, amap: Any, p_fake: float) -> dict[str, str]:
        cam = None
        if amap is None and explaining.can_gradcam(self.detector):
            predicted = int(p_fake >= self.detector.threshold)
            args = (explaining.gradcam, self.detector, tensor, predicted)
            if self.batcher is not None:
                cam = await self.batcher.run_on_model_thread(*args)
            else:
                cam = await run_in_threadpool(self._locked, *args)
        return await run_in_threadpool(explaining.explanation, self.detector, tensor, amap, cam)

    def _locked(self, fn: Any, *args: Any) -> Any:
        with self.lock:
            return fn(*args)

    async def many(self, contents: list[bytes], names: list[str]) -> list[PredictionOut]:
        """Every header read first: more than `max_request_pixels` in all is a 413 before any decode. Then each
        file decoded in parallel (within the pixel budget); an unreadable one gets `error`, the rest are scored
        together."""
        results: list[PredictionOut | None] = [None] * len(names)

        def fail(i: int, err: Exception) -> None:
            results[i] = PredictionOut(filename=names[i], **refusal_fields(as_refusal(err, names[i])))

        async def header(i: int) -> Image.Image | None:
            try:
                return await run_in_threadpool(open_checked, contents[i], names[i], self.settings.max_pixels)
            except ValueError as err:
                fail(i, err)
                return None

        images = await asyncio.gather(*(header(i) for i in range(len(names))))
        total = sum(image.width * image.height for image in images if image is not None)
        if total > self.settings.max_request_pixels:
            for image in images:
                if image is not None:
                    image.close()
            raise HTTPException(
                413,
                f"{len(names)} files of {total} pixels in all; at most "
                f"max_request_pixels={self.settings.max_request_pixels} per request",
            )

        async def prepare(i: int, image: Image.Image | None) -> Prepared | None:
            if image is None:
                return None
            try:
                return await self.decode(image, names[i])
            except ValueError as err:
                fail(i, err)
                return None

        prepared = await asyncio.gather(*(prepare(i, image) for i, image in enumerate(images)))
        good = [i for i, item in enumerate(prepared) if item is not None]
        scored: list[Scored] = []
        if good and self.batcher is None:
            scored = await run_in_threadpool(self.score_serial, [prepared[i] for i in good])
        elif good:
            assert self.batcher is not None
            scored = await asyncio.gather(*(self.batcher.score(prepared[i][0]) for i in good))  # type: ignore[index]
        for i, one in zip(good, scored, strict=True):
            results[i] = self.result(names[i], one, prepared[i][1])  # type: ignore[index]
        return [r for r in results if r is not None]

    def frames(self, path: str, container: str) -> Iterator[Frame]:
        """Frames of an upload, opened only as the `container` its first bytes showed (`video_containers.py`)."""
        settings = self.settings
        sampling = Sampling(num_frames=settings.video_num_frames, max_frames=settings.video_max_frames)
        return iter_frames(
            path,
            sampling,
            input_format=container,
            live=False,
            max_frame_pixels=settings.video_max_frame_pixels,
            deadline=time.monotonic() + settings.video_timeout_s,
            options=OPEN_OPTIONS,
            stop=stop_event(),
            unknown_length_hint=UNKNOWN_LENGTH_HINT.format(n=settings.video_num_frames),
        )

    def video_serial(self, path: str, container: str) -> tuple[VideoSummary, list[dict[str, Any]]]:
        """The previous path: decoding and scoring under the one lock."""
        rows: list[dict[str, Any]] = []
        with self.lock:
            summary = predict_frames(
                self.detector,
                self.frames(path, container),
                self.settings.video_batch_size,
                self.settings.video_top_k,
                on_row=rows.append,
            )
        return summary, rows

    def prepared_frames(
        self, path: str, container: str
    ) -> Iterator[list[tuple[Frame, Prepared | BadImageError]]]:
        """Decode and preprocess in a worker thread, one chunk at a time; a frame that fails keeps its message."""
        with self.videos:
            for chunk in batched(self.frames(path, container), self.settings.video_batch_size):
                yield prepare_frames(chunk, self.prepare_frame)

    def prepare_frame(self, frame: Frame) -> Prepared:
        if self.crops_faces:
            with self.lock:
                return self.detector.preparer(frame.image, f"frame {frame.index}")
        return self.detector.preparer(frame.image, f"frame {frame.index}")

    async def video(self, path: str, name: str, container: str) -> VideoOut:
        if self.batcher is None:
            summary, rows = await run_in_threadpool(self.video_serial, path, container)
            return VideoOut(filename=name, summary=summary.result(self.detector.threshold), frames=rows)
        summary, rows = VideoSummary(top_k=self.settings.video_top_k), []
        chunks = self.prepared_frames(path, container)
        try:
            async for items in iterate_in_threadpool(chunks):
                scored = await asyncio.gather(
                    *(self.batcher.score(item[0]) for _, item in items if not isinstance(item, BadImageError))
                )
                rows.extend(frame_rows(items, scored, self.detector.threshold, summary))
        finally:
            chunks.close()  # a cancelled request: the decoder and its `video_concurrency` slot are released now
        return VideoOut(filename=name, summary=summary.result(self.detector.threshold), frames=rows)


def _public(record: Any) -> Any:
    """Model description without server paths: file names only."""
    if isinstance(record, dict):
        return {
            k: Path(v).name if k in PATH_KEYS and isinstance(v, str) else _public(v)
            for k, v in record.items()
        }
    if isinstance(record, list):
        return [_public(item) for item in record]
    return record


def _without_versions(record: Any) -> Any:
    """A record without library versions (`versions`, `version.package`); the model's SHA-256 stays."""
    if isinstance(record, dict):
        return {
            k: _without_versions({x: y for x, y in v.items() if x != "package"} if k == "version" else v)
            for k, v in record.items()
            if k != "versions"
        }
    if isinstance(record, list):
        return [_without_versions(item) for item in record]
    return record


def create_app(detector: BaseDetector, settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    scorer = _Scorer(detector, settings)
    card = model_card(detector)
    app = FastAPI(  # no Swagger UI or ReDoc: they load from a public CDN; the schema is at /openapi.json
        title="deepfake_lightning detector",
        version=package_version() if settings.api_key else "-",
        description="p_fake (calibrated probability that a face image is fake) and a label at the model's threshold.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.scorer = scorer
    metrics = ServiceMetrics(settings.max_batch_size, DriftMonitor.for_detector(detector, settings))
    if scorer.batcher is not None:
        scorer.batcher.on_batch = metrics.batch_scored
    install_middleware(app, settings, metrics)
    # the key is checked on the request head by `upload_guard.py`; this declares it in the OpenAPI schema
    key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the server's API key, if set")

    v1 = APIRouter(prefix="/v1", dependencies=[Security(key_header)])

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        """The web page (no key needed to load it; its API calls send the key the user types)."""
        return HTMLResponse((WEB / "index.html").read_text(encoding="utf-8"))

    app.mount("/static", StaticFiles(packages=[("deepfake_lightning.inference", "web")]), name="static")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        """Prometheus text format (`metrics.py`); behind the API key unless `metrics_public`."""
        return metrics.exposition()

    @v1.get("/model")
    def model() -> dict[str, Any]:
        if settings.api_key is None:  # anyone can read this: no software versions to match against advisories
            return {
                "model": _without_versions(_public(detector.describe())),
                "card": _without_versions(card),
                "limits": settings.public(),
                "drift": metrics.drift_status(),
            }
        return {
            "model": _public(detector.describe()),
            "card": card,
            "limits": settings.public(),
            "drift": metrics.drift_status(),  # this worker's window (drift.py)
            "version": package_version(),
        }

    @v1.post("/predict", response_model=PredictionOut, response_model_exclude_none=True)
    async def predict(
        file: Annotated[UploadFile, File()],
        attention: Annotated[bool, Query()] = False,
        explain: Annotated[bool, Query()] = False,
    ) -> PredictionOut:
        """One image (multipart field `file`) -> p_fake and label; `?attention=true` adds the attention map,
        `?explain=true` the scored crop and its attention / Grad-CAM overlay as base64 PNGs."""
        if explain and not settings.explain:
            raise HTTPException(422, "explain is switched off on this server (explain=false)")
        async with scorer.uploads.hold(file.size or settings.max_upload_bytes):
            data = await _read_limited(file, settings.max_upload_bytes)
            name = file.filename or "upload"
            try:
                return await scorer.one(data, name, attention, explain)
            except ValueError as err:  # a refused image: the decode step's reason and message
                return refused_image(as_refusal(err, name))

    @v1.post("/predict/batch", response_model=BatchOut, response_model_exclude_none=True)
    async def predict_batch(files: Annotated[list[UploadFile], File()]) -> BatchOut:
        """Up to `max_batch_files` images (repeated field `files`); an unreadable file gets an `error` entry."""
        if len(files) > settings.max_batch_files:
            raise HTTPException(
                413, f"{len(files)} files; at most max_batch_files={settings.max_batch_files}"
            )
        names = [f.filename or f"upload {i}" for i, f in enumerate(files)]
        async with scorer.uploads.hold(sum(f.size or settings.max_upload_bytes for f in files)):
            contents = [await _read_limited(f, settings.max_upload_bytes) for f in files]
            return BatchOut(predictions=await scorer.many(contents, names))

    @v1.post("/predict/video", response_model=VideoOut)
    async def predict_video(file: Annotated[UploadFile, File()]) -> VideoOut:
        """A video file (MP4/MOV, MKV/WebM or AVI: anything else is a 415): `video_num_frames` evenly spaced
        frames scored; mean and top-k mean p_fake."""
        name = file.filename or "upload"
        with tempfile.NamedTemporaryFile(suffix=".video") as handle:
            async with scorer.uploads.hold(file.size or settings.max_video_bytes):  # in memory until on disk
                data = await _read_limited(file, settings.max_video_bytes)
                if not data:
                    raise HTTPException(422, f"{name}: empty file (0 bytes); expected a video")
                try:
                    container = sniff_container(data[:SNIFF_BYTES], name)
                except UnsupportedContainerError as err:
                    raise HTTPException(415, str(err)) from None
                handle.write(data)
                handle.flush()
                del data
            try:
                return await scorer.video(handle.name, name, container)
            except (VideoError, BadImageError, ValueError) as err:
                raise _client_error(err, str(err).replace(handle.name, name)) from None

    app.include_router(v1)
    metrics.watch_routes([*app.routes, *v1.routes])
    return app
