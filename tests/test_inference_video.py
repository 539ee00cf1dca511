"""Video: PyAV frame sampling, stream mode with caps, bounded summaries, the predict_video entry point."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from deepfake_lightning.inference import Detector
from deepfake_lightning.inference.video_source import Sampling, VideoError, batched, is_live, iter_frames
from deepfake_lightning.predict_video import predict_video
from deepfake_lightning.prediction.frames import TIMELINE_POINTS, VideoSummary, predict_frames
from deepfake_lightning.utils.config_validation import ConfigError
from tests.fixtures_inference import compose_entry, write_video

pytest_plugins = ("tests.fixtures_inference",)  # tiny_ckpt, tiny_onnx, ... shared fixtures


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 frames at 10 fps, 96x80."""
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames=30)


def test_num_frames_are_spread_over_the_file(clip: Path) -> None:
    frames = list(iter_frames(clip, Sampling(num_frames=4)))
    assert [f.index for f in frames] == [0, 10, 19, 29]
    assert frames[1].time_s == pytest.approx(1.0, abs=0.01)
    assert frames[0].image.shape == (80, 96, 3) and frames[0].image.dtype.name == "uint8"
    assert len(list(iter_frames(clip, Sampling(num_frames=100)))) == 30  # never more than the clip has


def test_every_k_and_caps(clip: Path) -> None:
    assert [f.index for f in iter_frames(clip, Sampling(every_k=7))] == [0, 7, 14, 21, 28]
    assert [f.index for f in iter_frames(clip, Sampling(every_k=2, max_frames=3))] == [0, 2, 4]
    assert [f.index for f in iter_frames(clip, Sampling(every_k=5, max_seconds=1.2))] == [0, 5, 10]


def test_live_mode_streams_every_frame_until_a_cap(clip: Path) -> None:
    frames = iter_frames(clip, Sampling(num_frames=4, max_frames=6), live=True)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4, 5]  # num_frames needs a length: ignored live
    assert is_live("rtsp://camera.local/stream") and is_live("/dev/video0") and not is_live(str(clip))


def test_stream_is_consumed_lazily_in_bounded_batches(clip: Path) -> None:
    frames = iter_frames(clip, Sampling(every_k=1), live=True)
    first = next(batched(frames, 4))
    assert [f.index for f in first] == [0, 1, 2, 3]
    frames.close()  # closing the generator releases the container
    assert list(batched(range(5), 2)) == [[0, 1], [2, 3], [4]]


def test_bad_videos_raise_naming_the_source(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01 not a video " * 20)
    with pytest.raises(VideoError, match="junk.mp4"):
        list(iter_frames(junk))
    with pytest.raises(VideoError, match="not found"):
        list(iter_frames(tmp_path / "missing.mp4"))
    with pytest.raises(ValueError, match="every_k"):
        Sampling(every_k=0)


def test_summary_is_bounded_and_exact() -> None:
    summary = VideoSummary(top_k=3)
    n = 3 * TIMELINE_POINTS
    for i in range(n):
        summary.add(i / 10, (i % 100) / 100, None)
    assert len(summary.timeline) < TIMELINE_POINTS and len(summary.top) == 3
    result = summary.result(threshold=0.5)
    assert result["frames_scored"] == n
    assert result["p_fake_mean"] == pytest.approx(sum((i % 100) / 100 for i in range(n)) / n)
    assert result["p_fake_top3_mean"] == pytest.approx(0.99) and result["p_fake_max"] == 0.99


def test_predict_frames_scores_each_frame(tiny_ckpt: Path, clip: Path) -> None:
    detector = Detector.load(tiny_ckpt)
    rows: list[dict] = []
    summary = predict_frames(
        detector, iter_frames(clip, Sampling(num_frames=5)), batch_size=2, on_row=rows.append
    )
    assert [r["frame"] for r in rows] == [0, 7, 14, 22, 29] and summary.count == 5
    expected = detector.predict([f.image for f in iter_frames(clip, Sampling(num_frames=5))])
    assert [r["p_fake"] for r in rows] == pytest.approx([p.p_fake for p in expected])


def test_predict_video_entry_point(tiny_ckpt: Path, clip: Path, tmp_path: Path) -> None:
    cfg = compose_entry(
        "predict_video",
        [f"ckpt_path={tiny_ckpt}", f"input={clip}", "num_frames=6", "top_k=2"],
        tmp_path / "run",
    )
    result = predict_video(cfg)
    run = tmp_path / "run"
    with (run / "frames.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and list(rows[0]) == ["frame", "time_s", "p_fake", "label", "error"]
    video = json.loads((run / "video.json").read_text())
    assert video["frames_scored"] == 6 and video["label"] in ("fake", "real")
    mean = sum(float(r["p_fake"]) for r in rows) / 6
    assert video["p_fake_mean"] == pytest.approx(mean)
    assert video["p_fake_top2_mean"] == pytest.approx(sum(sorted(float(r["p_fake"]) for r in rows)[-2:]) / 2)
    assert (run / "timeline.png").stat().st_size > 1000
    assert result["frames_scored"] == 6


def test_predict_video_json_frames_and_small_frames(tiny_ckpt: Path, tmp_path: Path) -> None:
    small = write_video(tmp_path / "small.mp4", frames=4, size=(48, 32))
    cfg = compose_entry(
        "predict_video",
        [f"ckpt_path={tiny_ckpt}", f"input={small}", "every_k=1", "frames_format=json", "face_crop=true"],
        tmp_path / "run",
    )
    result = predict_video(cfg)
    frames = json.loads((tmp_path / "run" / "frames.json").read_text())
    assert len(frames) == 4 and all("min_size=64" in f["error"] for f in frames)  # recorded, not raised
    assert result["frames_failed"] == 4 and result["p_fake_mean"] is None


def test_predict_video_config_errors(tiny_ckpt: Path, tmp_path: Path) -> None:
    for overrides, match in (
        ([f"input={tmp_path / 'none.mp4'}"], "not found"),
        (["input=x.mp4", "every_k=0"], "every_k"),
        (["input=x.mp4", "frames_format=xml"], "frames_format"),
    ):
        cfg = compose_entry("predict_video", [f"ckpt_path={tiny_ckpt}", *overrides], tmp_path / "run")
        with pytest.raises(ConfigError, match=match):
            predict_video(cfg)
