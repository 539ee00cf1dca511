"""Which layout an input folder has, and its `Listing`: FaceForensics++, Celeb-DF, DFDC or a plain labels CSV."""

from __future__ import annotations

from pathlib import Path

from deepfake_lightning.data.index import DatasetLayoutError
from deepfake_lightning.data.video_dataset.celebdf import is_celebdf, list_celebdf
from deepfake_lightning.data.video_dataset.csv_layout import list_csv
from deepfake_lightning.data.video_dataset.dfdc import is_dfdc, list_dfdc
from deepfake_lightning.data.video_dataset.ffpp import is_ffpp, list_ffpp
from deepfake_lightning.data.video_dataset.listing import Listing
from deepfake_lightning.utils.config_schema import VIDEO_LAYOUTS

EXPECTED = (
    "FaceForensics++ (original_sequences/, manipulated_sequences/), Celeb-DF (Celeb-real/, Celeb-synthesis/, "
    "YouTube-real/), DFDC (metadata.json) or labels=FILE.csv (video,label[,group])"
)


def detect_layout(root: Path, labels: Path | None) -> str:
    """`labels=*.csv` means the plain layout; otherwise the folder's own marks decide."""
    if labels is not None and labels.suffix.lower() == ".csv":
        return "csv"
    for name, test in (("ffpp", is_ffpp), ("celebdf", is_celebdf), ("dfdc", is_dfdc)):
        if test(root):
            return name
    raise DatasetLayoutError(f"input={root}: layout not recognised; expected {EXPECTED}")


def list_videos(root: Path, labels: Path | None = None, layout: str = "auto", subset: str = "all") -> Listing:
    """The videos under `root` with labels and groups; problems are lines in the listing, never exceptions
    (only a missing input folder or an unknown layout stops the run)."""
    if not root.is_dir():
        raise DatasetLayoutError(f"input={root}: folder not found; expected a folder of videos: {EXPECTED}")
    if layout == "auto":
        layout = detect_layout(root, labels)
    if subset != "all" and layout != "celebdf":
        raise DatasetLayoutError(
            f"subset={subset!r}: only Celeb-DF has an official test list; {layout} takes subset=all"
        )
    if layout == "csv":
        if labels is None or not labels.is_file():
            raise DatasetLayoutError(f"labels={labels}: file not found; layout=csv needs video,label[,group]")
        return list_csv(root, labels)
    if layout == "ffpp":
        return list_ffpp(root)
    if layout == "celebdf":
        return list_celebdf(root, labels, subset)
    if layout == "dfdc":
        return list_dfdc(root, labels)
    raise DatasetLayoutError(f"layout={layout!r}: expected one of {', '.join(VIDEO_LAYOUTS)}")


__all__ = ["Listing", "detect_layout", "list_videos"]
