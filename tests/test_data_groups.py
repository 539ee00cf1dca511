"""Group-aware splits: a labels CSV names each file's group (a source video); no group may sit in two splits,
every mistake in the CSV stops with one line naming the column or the files, and `splits.csv` rebuilds a split."""

from __future__ import annotations

import csv
import logging
from collections import Counter
from pathlib import Path

import pytest

from deepfake_lightning.data import DatasetLayoutError, DeepfakeDataModule
from deepfake_lightning.data.index import describe, index_folder, index_folder_with_groups
from deepfake_lightning.data.leakage import find_cross_split_groups
from deepfake_lightning.data.split_manifest import read_split_manifest
from deepfake_lightning.train import train
from deepfake_lightning.utils.config_validation import ConfigError, validate_config
from deepfake_lightning.utils.task import run_task
from tests.conftest import REPO_ROOT, write_image

DFDC_DIR = REPO_ROOT.parent / "shared" / "data" / "dfdc_faces"


def grouped_tree(base: Path, n_groups: int = 40, fakes_per_group: int = 1) -> Path:
    """`base/{real,fake}/` with 8x8 JPEGs and labels.csv: each group (a "source video") is one real and its
    fakes, as in dfdc_faces."""
    rows = [["file", "label", "source_video"]]
    seed = 0
    for g in range(n_groups):
        group = f"video{g:03d}.mp4"
        members = [("real", f"real/r{g:03d}.jpg")]
        members += [("fake", f"fake/f{g:03d}_{k}.jpg") for k in range(fakes_per_group)]
        for label, rel in members:
            write_image(base / rel, seed, size=8)
            seed += 1
            rows.append([rel, label, group])
    with (base / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return base


def _rewrite_csv(root: Path, edit) -> None:  # noqa: ANN001
    with (root / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows = edit(rows)
    with (root / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _all_paths(index: dict) -> list[str]:
    return sorted(path for samples in index.values() for path, _ in samples)


# --- the split ----------------------------------------------------------------------------------------------


def test_grouped_split_keeps_groups_whole_and_classes_balanced(tmp_path: Path) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=40)
    index, groups = index_folder_with_groups(root, (0.8, 0.1, 0.1), seed=0, group_by="source_video")
    assert find_cross_split_groups(index, groups) == []
    disk = sorted(str(p) for p in root.glob("*/*.jpg"))
    assert _all_paths(index) == disk  # every file in exactly one split
    counts = describe(index)
    assert counts == {
        "train": {"real": 32, "fake": 32},
        "valid": {"real": 4, "fake": 4},
        "test": {"real": 4, "fake": 4},
    }
    by_file = index_folder(root, (0.8, 0.1, 0.1), seed=0)  # the same folder split by file leaks groups
    assert len(find_cross_split_groups(by_file, groups)) >= 5


def test_grouped_split_with_uneven_groups_is_approximately_stratified(tmp_path: Path) -> None:
    """Groups of 1 real + 3 fakes beside groups of 1 real + 1 fake: ratios and class shares hold roughly."""
    root = grouped_tree(tmp_path / "a", n_groups=30, fakes_per_group=1)
    grouped_tree(tmp_path / "b", n_groups=30, fakes_per_group=3)
    for path in (tmp_path / "b").glob("*/*.jpg"):  # merge b into a under other names and groups
        path.rename(root / path.parent.name / f"b_{path.name}")
    _rewrite_csv(
        root,
        lambda rows: (
            rows
            + [
                {
                    "file": r["file"].replace("/", "/b_"),
                    "label": r["label"],
                    "source_video": "b_" + r["source_video"],
                }
                for r in csv.DictReader((tmp_path / "b" / "labels.csv").open())
            ]
        ),
    )
    index, groups = index_folder_with_groups(root, (0.6, 0.2, 0.2), seed=3, group_by="source_video")
    assert find_cross_split_groups(index, groups) == []
    total = sum(len(s) for s in index.values())
    overall_fake = sum(t for s in index.values() for _, t in s) / total
    for split, ratio in zip(("train", "valid", "test"), (0.6, 0.2, 0.2), strict=True):
        share = len(index[split]) / total
        fake_share = sum(t for _, t in index[split]) / len(index[split])
        assert abs(share - ratio) <= 0.08, (split, share)
        assert abs(fake_share - overall_fake) <= 0.08, (split, fake_share, overall_fake)


def test_grouped_split_is_seeded(tmp_path: Path) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=40)
    first = index_folder(root, (0.8, 0.1, 0.1), seed=1, group_by="source_video")
    assert first == index_folder(root, (0.8, 0.1, 0.1), seed=1, group_by="source_video")
    assert first != index_folder(root, (0.8, 0.1, 0.1), seed=2, group_by="source_video")


def test_too_few_groups_is_an_error(tmp_path: Path) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=2)
    with pytest.raises(DatasetLayoutError, match=r"4 images in 2 group\(s\).*too few to split"):
        index_folder(root, group_by="source_video")


def test_max_per_class_takes_whole_groups(tmp_path: Path) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=30, fakes_per_group=2)
    index, groups = index_folder_with_groups(root, group_by="source_video", max_per_class=20)
    counts = Counter(t for s in index.values() for _, t in s)
    assert counts == {0: 10, 1: 20}  # 10 groups of 1 real + 2 fakes: the fakes reach the cap first
    members = Counter(groups[p] for p in _all_paths(index))
    assert set(members.values()) == {3}  # no group cut
    assert find_cross_split_groups(index, groups) == []
    plain = index_folder(root, max_per_class=7, use_all_for_test=True)  # without groups: per file
    assert describe(plain)["test"] == {"real": 7, "fake": 7}


# --- the labels CSV: every mistake is named ---------------------------------------------------------------


def test_missing_group_column_lists_the_columns(tmp_path: Path) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=4)
    with pytest.raises(
        DatasetLayoutError,
        match=r"data.group_by='video': no such column .*available: file, label, source_video",
    ):
        index_folder(root, group_by="video")


def test_empty_group_values_are_named_and_counted(tmp_path: Path) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=10)

    def blank(rows: list[dict]) -> list[dict]:
        for row in rows[:7]:
            row["source_video"] = " "
        return rows

    _rewrite_csv(root, blank)
    with pytest.raises(
        DatasetLayoutError,
        match=r"7 file\(s\) in .*labels.csv have an empty source_video: fake/f000_0.jpg, .*, \.\.\.$",
    ):
        index_folder(root, group_by="source_video")


def test_listed_files_missing_on_disk_are_named_and_counted(tmp_path: Path) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=6)
    (root / "fake" / "f002_0.jpg").unlink()
    (root / "real" / "r004.jpg").unlink()
    with pytest.raises(
        DatasetLayoutError,
        match=r"lists 2 file\(s\) that are not images in the class folders \(real/, fake/\) under .*: fake/f002_0.jpg, real/r004.jpg$",
    ):
        index_folder(root)  # an error with or without group_by: the CSV is stale


def test_unlisted_files_cannot_be_grouped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=6)
    write_image(root / "fake" / "stray.jpg", 99, size=8)
    with pytest.raises(
        DatasetLayoutError,
        match=r"1 image\(s\) under .* are not in .*labels.csv, so they have no group: fake/stray.jpg",
    ):
        index_folder(root, group_by="source_video")
    with caplog.at_level(logging.WARNING):
        assert len(_all_paths(index_folder(root, use_all_for_test=True))) == 13  # ungrouped: a warning
    assert "1 image(s) under" in caplog.text and "fake/stray.jpg" in caplog.text


def test_label_that_contradicts_the_folder_is_named(tmp_path: Path) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=4)

    def swap(rows: list[dict]) -> list[dict]:
        rows[1]["label"] = "real"  # fake/f000_0.jpg
        return rows

    _rewrite_csv(root, swap)
    with pytest.raises(
        DatasetLayoutError,
        match=r"1 file\(s\) whose label contradicts their folder: fake/f000_0.jpg \(label='real'\)",
    ):
        index_folder(root)


def test_numeric_labels_mean_one_is_fake(tmp_path: Path) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=10)
    _rewrite_csv(root, lambda rows: [{**r, "label": "1" if r["label"] == "fake" else "0"} for r in rows])
    assert describe(index_folder(root, use_all_for_test=True))["test"] == {"real": 10, "fake": 10}
    _rewrite_csv(root, lambda rows: [{**r, "label": "0" if r["label"] == "1" else "1"} for r in rows])
    with pytest.raises(DatasetLayoutError, match=r"20 file\(s\) whose label contradicts"):
        index_folder(root)


def test_a_file_listed_twice_is_named(tmp_path: Path) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=4)
    _rewrite_csv(root, lambda rows: rows + [dict(rows[0])])
    with pytest.raises(DatasetLayoutError, match=r"1 file\(s\) listed twice: real/r000.jpg"):
        index_folder(root)


def test_group_by_needs_a_csv_and_a_named_csv_must_exist(tmp_path: Path) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=4)
    (root / "labels.csv").rename(root / "meta.csv")
    with pytest.raises(
        DatasetLayoutError, match=r"data.group_by='source_video' needs a labels CSV: .*labels.csv not found"
    ):
        index_folder(root, group_by="source_video")
    with pytest.raises(DatasetLayoutError, match=r"data.labels_csv='nope.csv': file not found"):
        index_folder(root, labels_csv="nope.csv")
    index = index_folder(root, labels_csv="meta.csv", group_by="source_video")  # relative to root
    assert len(_all_paths(index)) == 8


def test_an_unrelated_labels_csv_is_ignored_unless_asked_for(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=10)
    (root / "labels.csv").write_text("name,score\na,1\n")
    with caplog.at_level(logging.WARNING):
        assert len(_all_paths(index_folder(root))) == 20
    assert "no 'file' column" in caplog.text
    with pytest.raises(DatasetLayoutError, match=r"labels.csv: no 'file' column \(columns: name, score\)"):
        index_folder(root, labels_csv="labels.csv")


def test_a_likely_group_column_is_pointed_out_when_splitting_by_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=10)
    with caplog.at_level(logging.WARNING):
        index_folder(root)
    assert "is split by file, but column(s) ['source_video']" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        index_folder(root, use_all_for_test=True)  # nothing is split: no hint
    assert "is split by file" not in caplog.text


def test_layout_error_is_one_cli_line(compose_cfg, tmp_path: Path) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=4)
    cfg = compose_cfg("train", ["data=folder", f"data.root={root}", "data.group_by=video"])
    with pytest.raises(SystemExit, match=r"^Invalid input: data.group_by='video': no such column"):
        run_task(train, cfg)


# --- config-level checks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["data=faces140k", "data.root={root}", "+data.group_by=source_video"],
            r"data.group_by='source_video': applies to data=folder only",
        ),
        (
            ["+data.max_per_class=10"],
            r"data.max_per_class=10: applies to data=folder only; faces140k",
        ),  # synthetic
        (
            ["data=folder", "data.root={root}", "data.group_by=source_video", "data.labels_csv=absent.csv"],
            r"data.labels_csv='absent.csv': file not found",
        ),
        (
            ["data=folder", "data.root={root}", "data.max_per_class=0"],
            r"data.max_per_class=0: expected null or an integer >= 1",
        ),
        (
            ["data=folder", "data.root={root}", "data.group_by=''"],
            r"data.group_by='': expected null or a CSV column name",
        ),
    ],
)
def test_grouping_config_is_checked_at_start(
    compose_cfg, tmp_path: Path, overrides: list[str], message: str
) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=2)
    cfg = compose_cfg("train", [o.format(root=root) for o in overrides], tiny=False)
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


def test_group_by_without_a_csv_fails_at_start(compose_cfg, tmp_path: Path) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=2)
    (root / "labels.csv").unlink()
    cfg = compose_cfg("train", ["data=folder", f"data.root={root}", "data.group_by=source_video"], tiny=False)
    with pytest.raises(ConfigError, match=r"data.group_by='source_video' needs a labels CSV"):
        validate_config(cfg)
    (root / "labels.csv").write_text("file,source_video\n")
    validate_config(cfg)  # the columns are checked when the data is indexed


# --- the leakage report -----------------------------------------------------------------------------------


def test_given_splits_that_share_groups_are_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """root/{train,valid,test} with group_by: kept as given, and every group in two splits is reported."""
    root = tmp_path / "given"
    rows = ["file,label,source_video"]
    for split, groups in (("train", "ABCD"), ("valid", "EF"), ("test", "GH")):
        for g in groups:
            for cls in ("real", "fake"):
                rel = f"{split}/{cls}/{g}.jpg"
                write_image(root / rel, hash(rel) % 1000, size=8)
                rows.append(f"{rel},{cls},{g}")
    # the deliberate leak: the fakes of test/ come from train's source videos A and B
    rows = [r.replace("test/fake/G.jpg,fake,G", "test/fake/G.jpg,fake,A") for r in rows]
    rows = [r.replace("test/fake/H.jpg,fake,H", "test/fake/H.jpg,fake,B") for r in rows]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    dm = DeepfakeDataModule(
        str(root), layout="folder", group_by="source_video", num_workers=0, check_leakage=False
    )
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert [leak.group for leak in dm.group_leaks] == ["A", "B"]
    assert dm.group_leaks[0].paths == {
        "train": [str(root / "train" / "real" / "A.jpg"), str(root / "train" / "fake" / "A.jpg")],
        "test": [str(root / "test" / "fake" / "G.jpg")],
    }
    assert "data leakage: 2 group(s) of" in caplog.text and "(6 files)" in caplog.text
    assert "A (test:1, train:2)" in caplog.text
    assert describe(dm.index)["test"] == {"real": 2, "fake": 2}  # the given split is not changed


def test_grouped_split_reports_no_group_leak(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=20)
    dm = DeepfakeDataModule(str(root), layout="folder", group_by="source_video", num_workers=0)
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert dm.group_leaks == [] and "leakage" not in caplog.text
    assert set(dm.groups.values()) == {f"video{g:03d}.mp4" for g in range(20)}


# --- splits.csv -------------------------------------------------------------------------------------------


def test_split_manifest_reads_back_to_the_same_split(tmp_path: Path) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=20)
    dm = DeepfakeDataModule(str(root), layout="folder", group_by="source_video", num_workers=0, split_seed=5)
    path = dm.write_split_manifest(tmp_path / "splits.csv")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["path", "split", "label", "group"]
    assert {r["label"] for r in rows} == {"0", "1"}
    assert all((r["label"] == "1") == ("/fake/" in r["path"]) for r in rows)
    index, groups = read_split_manifest(path)
    assert index == dm.index and groups == dm.groups

    plain = DeepfakeDataModule(str(root), layout="folder", num_workers=0)  # ungrouped: empty group column
    plain.write_split_manifest(tmp_path / "plain.csv")
    index, groups = read_split_manifest(tmp_path / "plain.csv")
    assert index == plain.index and groups == {}


def test_training_run_writes_splits_csv(compose_cfg, tmp_path: Path) -> None:
    root = grouped_tree(tmp_path / "d", n_groups=20)
    cfg = compose_cfg(
        "train",
        [
            "data=folder",
            f"data.root={root}",
            "data.group_by=source_video",
            "data.image_size=32",
            "++trainer.fast_dev_run=1",
        ],
    )
    train(cfg)
    index, groups = read_split_manifest(Path(cfg.paths.output_dir) / "splits.csv")
    expected, expected_groups = index_folder_with_groups(root, (0.8, 0.1, 0.1), 0, group_by="source_video")
    assert index == expected and groups == expected_groups
    assert find_cross_split_groups(index, groups) == []


# --- the real set -----------------------------------------------------------------------------------------


def test_dfdc_faces_grouped_split_has_no_crossing_group_and_a_file_split_has_many() -> None:
    if not (DFDC_DIR / "labels.csv").is_file():
        pytest.skip(f"shared DFDC face set not found at {DFDC_DIR} (it lives in ../shared beside the repo)")
    grouped, groups = index_folder_with_groups(DFDC_DIR, group_by="source_video")
    assert len(groups) == 10_000 and len(set(groups.values())) == 5_000
    assert find_cross_split_groups(grouped, groups) == []
    assert describe(grouped) == {
        "train": {"real": 4000, "fake": 4000},
        "valid": {"real": 500, "fake": 500},
        "test": {"real": 500, "fake": 500},
    }
    by_file = index_folder(DFDC_DIR)
    crossing = find_cross_split_groups(by_file, groups)
    # by file, a group (one real, one fake) stays whole with chance 0.8^2 + 2 * 0.1^2 = 0.66: about 1,700 cross
    assert 1_400 <= len(crossing) <= 2_000, len(crossing)
