"""The schema of the entry points that run a trained model: predict, predict_video, serve's model keys, export
and int8 quantization, as `config_schema.py` declares data, model and trainer.

Each entry point checks its whole composed config with one `Settings.check` before anything is loaded: strict
types, ranges and choices declared here once, unknown keys refused with the nearest known name, one line
``key=value: expected what``. A file or folder a value names must exist (a field rule); what needs several
values at once (ckpt_path or ensemble, quantize=int8 with format=onnx...) is a model validator below.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from deepfake_lightning.faces.detector import DETECTORS
from deepfake_lightning.faces.types import ALIGN_MODES
from deepfake_lightning.inference.backends import BACKENDS
from deepfake_lightning.inference.export_model import FORMATS as EXPORT_FORMATS
from deepfake_lightning.inference.face_regions import FACE_OPTION_KEYS
from deepfake_lightning.inference.video_source import is_live
from deepfake_lightning.prediction.files import DECODE_IN
from deepfake_lightning.prediction.row_writer import FORMATS as ROW_FORMATS
from deepfake_lightning.utils.config_schema import (
    THRESHOLD_WORDS,
    ConfigError,
    ExistingFile,
    ExistingFolder,
    FrameAggregation,
    RunKeys,
    Settings,
    Threshold,
    _holds,
    words,
)

# The choices are declared beside the code that takes them (backends, decode_in, export formats, row files).
EXPORT_SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
FRAME_FORMATS = ("csv", "json")  # predict_video's frames file
QUANTIZE = ("int8",)

MODEL_FILE = "an existing .ckpt, exported .onnx or bundle .json file"


def _count(low: int, default: Any = None, nullable: bool = True) -> Any:
    what = f"an integer >= {low}"
    return Field(default, ge=low, description=f"null or {what}" if nullable else what)


class ModelSource(Settings):
    """The model a run scores with and how (`inference/from_config.py`): predict, predict_video and serve."""

    ckpt_path: ExistingFile | None = Field(None, description=f"null or {MODEL_FILE}")
    ensemble: Annotated[Sequence[ExistingFile], _holds(lambda v: len(v) >= 1)] | None = Field(
        None, description=f"null or a list such as ensemble=[a.ckpt,b.onnx], each {MODEL_FILE}"
    )
    backend: Literal[BACKENDS] = Field("auto", description=words(BACKENDS))
    device: str = Field("cpu", description="cpu, cuda, cuda:N or auto")
    calibration: str | Path | None = Field(
        "auto",
        description="auto, none (or null) or the path of a calibration record or bundle fitted for these weights",
    )
    threshold: Threshold | None = Field(None, description=f"null or {THRESHOLD_WORDS}")
    # the faces scored (conf/faces/inference.yaml, inference/face_regions.py); null: as the model was trained
    face_crop: bool | None = Field(None, description="null (as the model was trained), true or false")
    face_detector: Literal[DETECTORS] | None = Field(None, description=f"null or {words(DETECTORS)}")
    face_alignment: Literal[ALIGN_MODES] | None = Field(None, description=f"null or {words(ALIGN_MODES)}")
    face_scale: Annotated[float, Field(ge=1, le=4)] | None = Field(
        None, description="null or a number in [1, 4]"
    )
    face_size: Annotated[int, Field(ge=16, le=2048)] | None = Field(
        None, description="null or an integer in [16, 2048]"
    )
    face_max_faces: int | None = _count(1, 16)
    min_size: int | None = _count(0, 64)  # null: the detector's default
    max_pixels: int | None = _count(1)
    onnx_sessions: int | None = _count(0, 0)

    @model_validator(mode="after")
    def _one_model(self) -> ModelSource:
        if self.ckpt_path is not None and self.ensemble:
            raise ConfigError(
                "set ckpt_path or ensemble, not both (an ensemble lists every model, ckpt_path included)"
            )
        if self.ckpt_path is None and not self.ensemble:
            raise ConfigError(
                "ckpt_path=null: pass ckpt_path=MODEL (.ckpt or exported .onnx) or ensemble=[A,B]"
            )
        if self.backend == "torch" and any(str(p).endswith(".onnx") for p in self.model_paths()):
            raise ConfigError("backend=torch cannot run an .onnx model; use backend=onnx or auto")
        return self

    @model_validator(mode="after")
    def _faces_off_alone(self) -> ModelSource:
        """`face_crop=false` scores whole images: a detector or alignment beside it would be ignored."""
        given = [key for key in FACE_OPTION_KEYS if getattr(self, key) is not None]
        if self.face_crop is False and given:
            raise ConfigError(f"face_crop=false with {', '.join(given)} set: drop them or set face_crop=true")
        return self

    def model_paths(self) -> list[str]:
        return [str(p) for p in self.ensemble] if self.ensemble else [str(self.ckpt_path)]


class QuantizeSettings(Settings):
    """int8 quantization with ONNX Runtime (`export quantize=int8`, `predict quantize=int8`)."""

    quantize: Literal[QUANTIZE] | None = Field(None, description="null or int8")
    calibration_dir: ExistingFolder | None = Field(None, description="null or an existing folder of images")
    max_calibration_images: int = _count(1, 128, nullable=False)


class PredictSettings(RunKeys, ModelSource, QuantizeSettings):
    """`python -m deepfake_lightning.predict` (conf/predict.yaml)."""

    input: Annotated[str, _holds(lambda v: v.strip() != "")] = Field(
        description="an image file, a folder or a glob in quotes"
    )
    output: Annotated[str | Path, _holds(lambda v: Path(v).suffix.lower() in ROW_FORMATS)] = Field(
        description=f"a {' or '.join(ROW_FORMATS)} file path"
    )
    batch_size: int | None = _count(1)
    num_workers: int | None = _count(0)
    decode_in: Literal[DECODE_IN] = Field("auto", description=words(DECODE_IN))
    int8_cache_dir: str | Path = Field(description="a folder path")
    progress: bool = Field(True, description="true or false")
    trainer: dict[str, Any] | None = Field(None, description="null or a trainer (trainer=ddp_cpu, ...)")

    @model_validator(mode="after")
    def _int8_from_one_checkpoint(self) -> PredictSettings:
        """int8 exports and quantizes one `.ckpt` (an `.onnx` is run as exported)."""
        if self.quantize is None:
            return self
        if self.ensemble:
            raise ConfigError("quantize=int8 takes one checkpoint (ckpt_path), not an ensemble")
        if str(self.ckpt_path).endswith(".onnx"):
            raise ConfigError(
                f"quantize=int8: ckpt_path={str(self.ckpt_path)!r} is already exported; pass the .ckpt, or "
                "quantize with python -m deepfake_lightning.export quantize=int8"
            )
        return self


class PredictVideoSettings(RunKeys, ModelSource, FrameAggregation):
    """`python -m deepfake_lightning.predict_video` (conf/predict_video.yaml); `aggregate` and `top_k` are
    eval's rule (`FrameAggregation`)."""

    input: Annotated[str, _holds(lambda v: v.strip() != "")] = Field(
        description="a video file, a stream URL or a device such as /dev/video0"
    )
    input_format: str | None = Field(None, description="null or a PyAV/FFmpeg demuxer name (e.g. v4l2)")
    live: Literal["auto"] | bool = Field("auto", description="auto, true or false")
    every_k: int | None = _count(1)
    num_frames: int | None = _count(1, 16)
    max_frames: int | None = _count(1)
    max_seconds: Annotated[float, Field(gt=0)] | None = Field(None, description="null or a number > 0")
    batch_size: int = _count(1, 16, nullable=False)
    frames_format: Literal[FRAME_FORMATS] = Field("csv", description=words(FRAME_FORMATS))
    output_dir: str | Path = Field(description="a folder path")

    @model_validator(mode="after")
    def _file_unless_live(self) -> PredictVideoSettings:
        if self.live is not True and not is_live(self.input) and not Path(self.input).is_file():
            raise ConfigError(
                f"input={self.input!r}: video file not found (stream URLs and /dev/* devices are read live)"
            )
        return self


class ServeModelSettings(ModelSource):
    """serve's model keys; the service's and the server's are `inference/settings.py`'s."""

    torch_replicas: int = Field(0, ge=0, description="an integer >= 0")


class ExportSettings(RunKeys, QuantizeSettings):
    """`python -m deepfake_lightning.export` (conf/export.yaml)."""

    ckpt_path: ExistingFile = Field(description="an existing .ckpt written by training")
    format: Literal[EXPORT_FORMATS] = Field("onnx", description=words(EXPORT_FORMATS))
    output: str | Path | None = Field(None, description="null or the exported file's path")
    opset: int = Field(17, ge=7, description="an integer >= 7 (ONNX opset)")
    calibration: str | Path | None = Field(
        "auto", description="auto, none (or null) or the path of a calibration record or bundle"
    )
    eval_dir: ExistingFolder | None = Field(None, description="null or an existing folder root/{real,fake}")
    max_eval_images: int = _count(1, 1000, nullable=False)

    @model_validator(mode="after")
    def _format_fits(self) -> ExportSettings:
        suffix = EXPORT_SUFFIX[self.format]
        if self.quantize and self.format != "onnx":
            raise ConfigError("quantize=int8 needs format=onnx")
        if self.output is not None and Path(self.output).suffix != suffix:
            raise ConfigError(f"output={str(self.output)!r}: a {self.format} export should end in {suffix}")
        return self
