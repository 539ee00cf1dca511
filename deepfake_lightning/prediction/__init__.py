"""Prediction: scoring files with a deployed detector, one home for every way of feeding it.

`scoring.py` is the step they all share: prepared images (one tensor per preprocessing, K regions each) are
stacked, scored in one model call and cut back into one `Scored` per image (its highest region is its score);
`scored_fields` turns one into a row's `p_fake`, `label`, `error` and face columns. On top of it:
`files.py` (image files: decode threads or DataLoader workers, uint8 batches, one row per file, errors
included), `frames.py` (a video's frames in bounded batches and the video's aggregate), `distributed.py` (the
same files as a `trainer.predict` job, each rank's rows in a shard, merged on rank 0) and `batcher.py` (the
service's dynamic batcher). `Detector.predict` scores through `scoring.py` too. Every path decodes and checks
its images through `image_check.py`, whose typed refusals become a row's `error` and the service's status +
JSON. `file_job.py` and `video_job.py` are the runs behind the `predict` and `predict_video` entry points.
Labelled logits for evaluation are `evaluation/logits.py`'s.

This package's `__init__` imports nothing: `inference/detector.py` uses `scoring.py`, and the loops here use
`Detector`, so an import of the package must not pull in either side.
"""
