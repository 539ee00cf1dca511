"""FastAPI app around any detector: `create_app(detector, settings)`; `deepfake_lightning.serve` runs it.

Every client mistake (no file, empty, random bytes, truncated, too big, too many pixels, too small, wrong key)
is a 4xx with a JSON `{"detail": ...}`; a 5xx only ever means a server fault. Model calls are serialised by a
lock: the attention map is per-model state, and one CPU model gains nothing from concurrent calls.
"""

from __future__ import annotations

import hmac
import logging
import tempfile
import threading
from pathlib import Path
from typing import Annotated, Any

import torch
from fastapi import APIRouter, Depends, FastAPI, File, Header, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from deepfake_lightning.data.images import BadImageError
from deepfake_lightning.inference.detector import BaseDetector, label_of, stack_inputs
from deepfake_lightning.inference.inputs import ImageTooLargeError, decode_image_bytes
from deepfake_lightning.inference.metadata import package_version
from deepfake_lightning.inference.settings import ServiceSettings
from deepfake_lightning.inference.video_predict import predict_frames
from deepfake_lightning.inference.video_source import Sampling, VideoError, iter_frames

log = logging.getLogger(__name__)
READ_CHUNK = 1 << 16
PATH_KEYS = ("source", "calibration_source")


class PredictionOut(BaseModel):
    filename: str
    p_fake: float | None = None
    label: str | None = None  # "fake" | "real"
    threshold: float | None = None
    face: str | None = None  # "found" | "not_found" when the server crops faces
    attention: list[list[float]] | None = None
    error: str | None = None  # batch only: why this file has no score


class BatchOut(BaseModel):
    predictions: list[PredictionOut]


class VideoOut(BaseModel):
    filename: str
    summary: dict[str, Any]
    frames: list[dict[str, Any]]


def _client_error(err: Exception) -> HTTPException:
    status = 413 if isinstance(err, ImageTooLargeError) else 422
    return HTTPException(status_code=status, detail=str(err))


async def _read_limited(upload: UploadFile, limit: int) -> bytes:
    """Read at most `limit` bytes; one more means the file is too large (413), whatever the headers said."""
    chunks, size = [], 0
    while chunk := await upload.read(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"{upload.filename}: larger than the limit of {limit} bytes")
        chunks.append(chunk)
    if size == 0:
        raise HTTPException(422, f"{upload.filename}: empty file")
    return b"".join(chunks)


class _Scorer:
    """Decode -> prepare -> score under one lock; runs in the threadpool."""

    def __init__(self, detector: BaseDetector, settings: ServiceSettings) -> None:
        self.detector = detector
        self.settings = settings
        self.lock = threading.Lock()

    def prepare(self, data: bytes, name: str) -> tuple[tuple[torch.Tensor, ...], str | None]:
        image = decode_image_bytes(data, name, self.settings.max_pixels)
        with self.lock:  # the face cropper's OpenCV classifier is not shared across threads safely
            return self.detector.preparer(image, name)

    def score(
        self, prepared: list[tuple[tuple[torch.Tensor, ...], str | None]], attention: bool = False
    ) -> Any:
        inputs = stack_inputs([tensors for tensors, _ in prepared])
        with self.lock:
            return self.detector.score(inputs, attention=attention)

    def one(self, data: bytes, name: str, attention: bool) -> PredictionOut:
        prepared = self.prepare(data, name)
        scores = self.score([prepared], attention)
        p_fake = float(scores.p_fake[0])
        amap = scores.attention[0].tolist() if scores.attention is not None else None
        threshold = self.detector.threshold
        return PredictionOut(
            filename=name,
            p_fake=p_fake,
            label=label_of(p_fake, threshold),
            threshold=threshold,
            face=prepared[1],
            attention=amap,
        )

    def video(self, path: str, name: str) -> VideoOut:
        settings = self.settings
        sampling = Sampling(num_frames=settings.video_num_frames, max_frames=settings.video_max_frames)
        rows: list[dict[str, Any]] = []
        with self.lock:
            summary = predict_frames(
                self.detector,
                iter_frames(path, sampling, live=False),
                settings.video_batch_size,
                settings.video_top_k,
                on_row=rows.append,
            )
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


def create_app(detector: BaseDetector, settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    scorer = _Scorer(detector, settings)
    app = FastAPI(
        title="deepfake_lightning detector",
        version=package_version(),
        description="p_fake (calibrated probability that a face image is fake) and a label at the model's threshold.",
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Content-Type"],
        )

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        """Refuse oversized bodies from Content-Length before multipart parsing spools them to disk."""
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.request_limit():
            return JSONResponse({"detail": f"request body larger than {settings.request_limit()} bytes"}, 413)
        return await call_next(request)

    @app.exception_handler(Exception)
    async def server_fault(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse({"detail": f"internal error ({err.__class__.__name__})"}, status_code=500)

    def require_key(x_api_key: Annotated[str | None, Header()] = None) -> None:
        if settings.api_key is None:
            return
        if x_api_key is None or not hmac.compare_digest(x_api_key.encode(), settings.api_key.encode()):
            raise HTTPException(401, "missing or invalid X-API-Key header")

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @v1.get("/model")
    def model() -> dict[str, Any]:
        limits = {k: v for k, v in vars(settings).items() if k not in ("api_key", "cors_origins")}
        return {"model": _public(detector.describe()), "limits": limits, "version": package_version()}

    @v1.post("/predict", response_model=PredictionOut, response_model_exclude_none=True)
    async def predict(
        file: Annotated[UploadFile, File()], attention: Annotated[bool, Query()] = False
    ) -> PredictionOut:
        """One image (multipart field `file`) -> p_fake and label; `?attention=true` adds the attention map."""
        data = await _read_limited(file, settings.max_upload_bytes)
        try:
            return await run_in_threadpool(scorer.one, data, file.filename or "upload", attention)
        except (BadImageError, ValueError) as err:
            raise _client_error(err) from None

    @v1.post("/predict/batch", response_model=BatchOut, response_model_exclude_none=True)
    async def predict_batch(files: Annotated[list[UploadFile], File()]) -> BatchOut:
        """Up to `max_batch_files` images (repeated field `files`); an unreadable file gets an `error` entry."""
        if len(files) > settings.max_batch_files:
            raise HTTPException(
                413, f"{len(files)} files; at most max_batch_files={settings.max_batch_files}"
            )
        names = [f.filename or f"upload {i}" for i, f in enumerate(files)]
        contents = [await _read_limited(f, settings.max_upload_bytes) for f in files]
        results: list[PredictionOut | None] = [None] * len(files)
        prepared, good = [], []
        for i, (data, name) in enumerate(zip(contents, names, strict=True)):
            try:
                prepared.append(await run_in_threadpool(scorer.prepare, data, name))
                good.append(i)
            except (BadImageError, ValueError) as err:
                results[i] = PredictionOut(filename=name, error=str(err))
        if prepared:
            scores = await run_in_threadpool(scorer.score, prepared)
            threshold = detector.threshold
            for j, i in enumerate(good):
                p_fake = float(scores.p_fake[j])
                results[i] = PredictionOut(
                    filename=names[i],
                    p_fake=p_fake,
                    label=label_of(p_fake, threshold),
                    threshold=threshold,
                    face=prepared[j][1],
                )
        return BatchOut(predictions=[r for r in results if r is not None])

    @v1.post("/predict/video", response_model=VideoOut)
    async def predict_video(file: Annotated[UploadFile, File()]) -> VideoOut:
        """A video file: `video_num_frames` evenly spaced frames scored; mean and top-k mean p_fake."""
        data = await _read_limited(file, settings.max_video_bytes)
        name = file.filename or "upload"
        with tempfile.NamedTemporaryFile(suffix=".video") as handle:
            handle.write(data)
            handle.flush()
            try:
                return await run_in_threadpool(scorer.video, handle.name, name)
            except (VideoError, BadImageError, ValueError) as err:
                raise HTTPException(422, str(err).replace(handle.name, name)) from None

    app.include_router(v1)
    return app
