"""Video datasets -> folder sets of aligned face crops (`python -m deepfake_lightning.prepare`, docs/video_data.md).

`layouts.list_videos` reads FaceForensics++, Celeb-DF, DFDC or a plain labels CSV into one `Listing` (videos,
labels, groups, problem lines); `extract.prepare_video` turns one video into crops with the shared face pipeline;
`run.prepare_dataset` does every video not done yet, in parallel and resumably, and writes `labels.csv`
(`file,label,video,frame,group`, what `data=folder` and `data.group_by=group` read) and `summary.json`.
"""

from deepfake_lightning.data.video_dataset.layouts import detect_layout, list_videos
from deepfake_lightning.data.video_dataset.listing import Listing, VideoItem
from deepfake_lightning.data.video_dataset.run import PrepareJob, prepare_dataset

__all__ = ["Listing", "PrepareJob", "VideoItem", "detect_layout", "list_videos", "prepare_dataset"]
