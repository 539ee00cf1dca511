"""Video-level metrics: frame scores aggregated per video (eval.aggregate_by), the rule predict_video shares."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import open_dict
from sklearn.metrics import roc_auc_score

from deepfake_lightning.eval import evaluate
from deepfake_lightning.evaluation.aggregate import ScoreAggregate, aggregate_groups, group_level_metrics
from deepfake_lightning.evaluation.metrics import compute_metrics
from deepfake_lightning.evaluation.predictions import read_predictions_csv, write_predictions_csv
from deepfake_lightning.predict_video import predict_video
from deepfake_lightning.prediction.frames import VideoSummary
from deepfake_lightning.utils.config_validation import ConfigError
from tests.conftest import write_image
from tests.fixtures_inference import compose_entry, write_video

pytest_plugins = ("tests.fixtures_inference",)

# four videos: A and C real, B and D fake
KEYS = ["A", "A", "A", "B", "B", "C", "D", "D", "D"]
P = [0.1, 0.2, 0.9, 0.6, 0.7, 0.3, 0.2, 0.8, 0.95]
Y = [0, 0, 0, 1, 1, 0, 1, 1, 1]


def test_video_scores_and_auroc_by_hand() -> None:
    mean = aggregate_groups(KEYS, P, Y, "mean")
    assert mean.keys == ["A", "B", "C", "D"] and mean.labels.tolist() == [0, 1, 0, 1]
    assert mean.p_fake == pytest.approx([0.4, 0.65, 0.3, 0.65]) and mean.n_frames.tolist() == [3, 2, 1, 3]
    top2 = aggregate_groups(KEYS, P, Y, "top_k_mean", top_k=2)
    assert top2.p_fake == pytest.approx([0.55, 0.65, 0.3, 0.875])  # C has one frame: its mean
    assert aggregate_groups(KEYS, P, Y, "max").p_fake == pytest.approx([0.9, 0.7, 0.3, 0.95])

    # frame level: 14.5 of 20 (real, fake) pairs ordered (one tie at 0.2 counts 1/2); per video every fake
    # video outranks every real one; by max, 3 of 4 pairs
    frame = compute_metrics(P, Y, n_bootstrap=0)["auroc"]["value"]
    video, _ = group_level_metrics(KEYS, P, Y, "video", n_bootstrap=200)
    by_max, _ = group_level_metrics(KEYS, P, Y, "video", "max", n_bootstrap=0)
    assert frame == pytest.approx(14.5 / 20) == roc_auc_score(Y, P)
    assert video["auroc"]["value"] == 1.0 and by_max["auroc"]["value"] == pytest.approx(0.75)
    assert (video["n"], video["n_real"], video["n_fake"], video["n_frames"]) == (4, 2, 2, 9)
    assert video["aggregate_by"] == "video" and video["frames_per_group"] == {
        "min": 1,
        "mean": 2.25,
        "max": 3,
    }
    # the bootstrap resamples videos: the same CIs as compute_metrics on the four video scores
    direct = compute_metrics(mean.p_fake, mean.labels, n_bootstrap=200)
    assert video["ap"] == direct["ap"] and video["eer"] == direct["eer"]


def test_mixed_video_and_bad_rule_are_named() -> None:
    with pytest.raises(ValueError, match=r"1 video value\(s\) hold both real and fake frames: 'A'"):
        aggregate_groups(["A", "A"], [0.1, 0.2], [0, 1], column="video")
    with pytest.raises(ConfigError, match="aggregate='median': expected mean, max or top_k_mean"):
        aggregate_groups(KEYS, P, Y, "median")
    with pytest.raises(ConfigError, match="top_k=0: expected an integer >= 1"):
        ScoreAggregate(top_k=0)


def test_predict_video_summary_uses_the_same_aggregate() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random(50)
    for method in ("mean", "max", "top_k_mean"):
        summary = VideoSummary(top_k=7, aggregate=method)
        for i, p in enumerate(scores):
            summary.add(i / 10, float(p), None)
        expected = aggregate_groups(["v"] * 50, scores, [1] * 50, method, top_k=7).p_fake[0]
        result = summary.result(threshold=0.5)
        assert result["p_fake_video"] == pytest.approx(expected) and result["aggregate"] == method
    assert result["p_fake_top7_mean"] == pytest.approx(np.sort(scores)[-7:].mean())
    assert result["p_fake_max"] == scores.max() and result["p_fake_mean"] == pytest.approx(scores.mean())


def test_predictions_csv_carries_a_column(tmp_path: Path) -> None:
    path = write_predictions_csv(
        tmp_path / "p.csv", ["a.png", "b.png"], [0, 1], [-1.0, 2.0], [0.2, 0.9], {"video": ["v1", "v2"]}
    )
    assert path.read_text().splitlines()[0] == "path,label,logit,p_fake,video"
    assert read_predictions_csv(path)["video"] == ["v1", "v2"]
    with pytest.raises(ValueError, match="same length"):
        write_predictions_csv(tmp_path / "q.csv", ["a"], [0], [0.0], [0.5], {"video": ["v1", "v2"]})


@pytest.fixture
def video_frames(tmp_path: Path) -> Path:
    """A folder of 'frames' of six videos (3 real, 3 fake, 3 frames each) with labels.csv: file,label,video."""
    root = tmp_path / "frames"
    rows = ["file,label,video"]
    for cls in ("real", "fake"):
        for v in range(3):
            for f in range(3):
                rel = f"{cls}/{cls}_v{v}_f{f}.png"
                write_image(root / rel, seed=hash((cls, v, f)) % 10_000, size=48, fmt="PNG")
                rows.append(f"{rel},{cls},{cls}_v{v}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def _eval_cfg(ckpt: Path, root: Path, out: Path, *extra: str):
    overrides = [
        f"ckpt_path={ckpt}",
        "data=folder",
        f"data.root={root}",
        "data.use_all_for_test=true",
        "data.num_workers=0",
        "trainer.accelerator=cpu",
        "explain.enabled=false",
        *extra,
    ]
    cfg = compose_entry("eval", overrides, out)
    with open_dict(cfg):
        cfg.trainer.enable_progress_bar = False
        cfg.calibration.path = None
    return cfg


def test_eval_reports_video_level_beside_frame_level(
    tiny_ckpt: Path, video_frames: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    results = evaluate(_eval_cfg(tiny_ckpt, video_frames, out, "eval.aggregate_by=video"))
    saved = json.loads((out / "test_results.json").read_text())
    level = saved["video_level"]
    assert results["video_level"]["auroc"] == level["auroc"]
    assert saved["n"] == 18 and (level["n"], level["n_real"], level["n_fake"]) == (6, 3, 3)

    # recomputed by hand from predictions.csv, which carries the column
    preds = read_predictions_csv(out / "predictions.csv")
    by_video: dict[str, list[float]] = {}
    for video, p in zip(preds["video"], preds["p_fake"], strict=True):
        by_video.setdefault(video, []).append(p)
    videos = sorted(by_video)
    scores = [float(np.mean(by_video[v])) for v in videos]
    labels = [int(v.startswith("fake")) for v in videos]
    assert level["auroc"]["value"] == pytest.approx(roc_auc_score(labels, scores))
    with (out / "predictions_by_video.csv").open() as handle:
        rows = {r["video"]: r for r in csv.DictReader(handle)}
    assert {v: float(rows[v]["p_fake"]) for v in videos} == pytest.approx(
        dict(zip(videos, scores, strict=True))
    )
    assert all(rows[v]["n_frames"] == "3" for v in videos)
    report = (out / "REPORT.md").read_text()
    assert "## Results per video (`video_level`: n = 6 videos, 3 real, 3 fake)" in report
    assert "per frame | per video" in report


def test_eval_aggregate_by_errors_are_one_line(tiny_ckpt: Path, video_frames: Path, tmp_path: Path) -> None:
    cfg = _eval_cfg(tiny_ckpt, video_frames, tmp_path / "e1", "eval.aggregate_by=clip")
    with pytest.raises(
        ValueError,
        match=r"eval.aggregate_by='clip': no such column in .*labels.csv; available: file, label, video",
    ):
        evaluate(cfg)
    cfg = _eval_cfg(
        tiny_ckpt, video_frames, tmp_path / "e2", "eval.aggregate_by=video", "eval.aggregate=median"
    )
    with pytest.raises(ConfigError, match="eval.aggregate='median': expected mean, max or top_k_mean"):
        evaluate(cfg)
    (video_frames / "labels.csv").unlink()
    cfg = _eval_cfg(tiny_ckpt, video_frames, tmp_path / "e3", "eval.aggregate_by=video")
    with pytest.raises(ValueError, match="eval.aggregate_by='video' needs a labels CSV"):
        evaluate(cfg)


def test_predict_video_label_follows_the_aggregate(tiny_ckpt: Path, tmp_path: Path) -> None:
    clip = write_video(tmp_path / "clip.mp4", frames=12)
    out = {}
    for method in ("mean", "max"):
        cfg = compose_entry(
            "predict_video",
            [
                f"ckpt_path={tiny_ckpt}",
                f"input={clip}",
                "num_frames=6",
                f"aggregate={method}",
                "calibration=null",
            ],
            tmp_path / method,
        )
        predict_video(cfg)
        out[method] = json.loads((tmp_path / method / "video.json").read_text())
        with (tmp_path / method / "frames.csv").open() as handle:
            frames = [float(r["p_fake"]) for r in csv.DictReader(handle)]
        assert out[method]["p_fake_video"] == pytest.approx(
            aggregate_groups(["v"] * 6, frames, [0] * 6, method).p_fake[0]
        )
    assert out["max"]["p_fake_video"] == out["max"]["p_fake_max"] >= out["mean"]["p_fake_video"]
    cfg = compose_entry(
        "predict_video", [f"ckpt_path={tiny_ckpt}", f"input={clip}", "aggregate=median"], tmp_path / "bad"
    )
    with pytest.raises(ConfigError, match="aggregate='median'"):
        predict_video(cfg)
