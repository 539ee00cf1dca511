"""`prepare`: list the videos, prepare the ones not done yet in parallel (one process per video at a time, one
progress bar), then write `labels.csv` and `summary.json` from every finished video's record.

Why processes over videos, each decoding and detecting single-threaded: both stages are CPU-bound and every
video is independent, so W processes keep W cores busy end to end, where FFmpeg's frame threads and the
detector's intra-op threads inside one process scale worse and would oversubscribe the cores when combined
with W processes. `summary.json` reports decoding and detection frames per second separately (`timing`), the
figures to check that on a given machine.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cv2
from tqdm import tqdm

from deepfake_lightning.data.face_crops import SUMMARY_FILE
from deepfake_lightning.data.video_dataset.extract import VideoResult, crop_folder, prepare_video
from deepfake_lightning.data.video_dataset.layouts import list_videos
from deepfake_lightning.data.video_dataset.listing import CLASS_NAMES, Listing, VideoItem
from deepfake_lightning.data.video_dataset.resume import ResumeStore, write_atomic
from deepfake_lightning.faces import FacePipeline

log = logging.getLogger(__name__)

LABELS_FILE = "labels.csv"
BASE_COLUMNS = ("file", "label", "video", "frame", "group")


@dataclass(frozen=True)
class PrepareJob:
    """Everything that decides the crops, and how the work is spread."""

    input: Path
    output: Path
    labels: Path | None = None
    layout: str = "auto"
    subset: str = "all"
    frames: int = 32
    face: dict[str, Any] | None = None  # a FacePipeline spec: detector, alignment, scale, size, ...
    image_format: str = "png"
    jpeg_quality: int = 95
    workers: int | None = None  # None: one per CPU core; 0: in this process
    progress: bool = True

    def crop_settings(self) -> dict[str, Any]:
        """The record a rerun must match (`ResumeStore`)."""
        return {
            "input": str(self.input.resolve()),
            "frames": self.frames,
            "face": self.face_spec(),
            "image_format": self.image_format,
            "jpeg_quality": self.jpeg_quality if self.image_format == "jpg" else None,
        }

    def face_spec(self) -> dict[str, Any]:
        return build_pipeline(self.face).spec()

    def worker_count(self) -> int:
        return (os.cpu_count() or 1) if self.workers is None else self.workers


def build_pipeline(spec: dict[str, Any] | None, threads: int | None = None) -> Any:
    """The shared face pipeline (detector + alignment) of a spec; `threads` bounds the detector's runtime."""
    spec = dict(spec or {})
    runtime = {"threads": threads} if threads and spec.get("detector", "centerface") == "centerface" else {}
    return FacePipeline.from_spec(spec, **runtime)


_PIPELINE: Any = None  # one per worker process, built by _start_worker


def _start_worker(spec: dict[str, Any] | None, single_thread: bool = True) -> None:
    """A worker process decodes and detects with one thread each (see the module doc)."""
    global _PIPELINE
    if single_thread:
        cv2.setNumThreads(1)
    _PIPELINE = build_pipeline(spec, threads=1 if single_thread else None)


def _work(item: VideoItem, job: PrepareJob) -> VideoResult:
    threads = 1 if job.worker_count() > 0 else None
    return prepare_video(
        item, job.output, _PIPELINE, job.frames, job.image_format, job.jpeg_quality, decode_threads=threads
    )


def _run(items: list[VideoItem], job: PrepareJob) -> Iterator[VideoResult]:
    """Results in completion order; `workers=0` runs in this process (debugging, tests)."""
    workers = min(job.worker_count(), len(items))
    if workers <= 0:
        _start_worker(job.face, single_thread=False)  # the caller's process: its thread settings stay
        for item in items:
            yield _work(item, job)
        return
    context = get_context("spawn")  # no fork of a process holding threads (torch, ONNX Runtime)
    with ProcessPoolExecutor(workers, context, initializer=_start_worker, initargs=(job.face,)) as pool:
        futures = [pool.submit(_work, item, job) for item in items]
        for future in as_completed(futures):
            yield future.result()


def _progress(results: Iterable[VideoResult], total: int, enabled: bool) -> Iterable[VideoResult]:
    if not enabled:
        return results
    return tqdm(results, total=total, desc="prepare", unit="video", dynamic_ncols=True)


def _sync_records(store: ResumeStore, listing: Listing) -> tuple[dict[str, VideoResult], list[str]]:
    """Finished videos still wanted as they are; records of videos that left the input (or changed label) are
    removed with their crops, so the folder set always mirrors the input."""
    wanted = {item.video: item for item in listing.items}
    done: dict[str, VideoResult] = {}
    removed: list[str] = []
    for record in store.records():
        item = wanted.get(record.video)
        if item is not None and item.label == record.label and record.status == "done":
            done[record.video] = record
            continue
        why = "no longer in the input" if item is None else "its label changed"
        log.warning("prepare: %s: %s; its crops are removed", record.video, why)
        store.remove(record, f"{CLASS_NAMES[record.label]}/{record.video}")
        removed.append(record.video)
    return done, removed


def labels_rows(listing: Listing, done: dict[str, VideoResult]) -> tuple[list[str], list[list[str]]]:
    """`file,label,video,frame,group` and the layout's own columns, one row per crop, in video order."""
    extra = list(dict.fromkeys(name for item in listing.items for name, _ in item.extra))
    rows = []
    for item in listing.items:
        record = done.get(item.video)
        if record is None:
            continue
        values = dict(item.extra)
        for index, file in record.frames:
            label = CLASS_NAMES[item.label]
            rows.append(
                [file, label, item.video, str(index), item.group, *(values.get(c, "") for c in extra)]
            )
    return [*BASE_COLUMNS, *extra], rows


def _write_labels(path: Path, columns: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    write_atomic(path, buffer.getvalue())


def _timing(results: list[VideoResult]) -> dict[str, Any]:
    decode = sum(r.decode_s for r in results)
    detect = sum(r.detect_s for r in results)
    decoded = sum(r.frames_decoded for r in results)
    sampled = sum(r.frames_sampled for r in results)

    def rate(frames: int, seconds: float) -> float | None:
        return round(frames / seconds, 2) if seconds > 0 else None

    return {
        "videos": len(results),
        "decode_s": round(decode, 3),
        "detect_s": round(detect, 3),
        "write_s": round(sum(r.write_s for r in results), 3),
        "frames_decoded": decoded,
        "decode_frames_per_s": rate(decoded, decode),
        "sampled_frames_per_decode_s": rate(sampled, decode),
        "detect_frames_per_s": rate(sampled, detect),
        "bound_by": None if not (decode or detect) else ("decoding" if decode >= detect else "detection"),
        "note": "seconds summed over worker processes, this run's videos only",
    }


def prepare_dataset(job: PrepareJob) -> dict[str, Any]:
    """Prepare every video of `job.input` not done yet into `job.output`; returns the summary it writes."""
    listing = list_videos(job.input, job.labels, job.layout, job.subset)
    job.output.mkdir(parents=True, exist_ok=True)
    store = ResumeStore(job.output, job.crop_settings())
    done, removed = _sync_records(store, listing)
    todo = [item for item in listing.items if item.video not in done]
    log.info(
        "prepare: %d videos listed (%s), %d already done, %d to prepare, %d problem line(s)",
        len(listing.items),
        listing.layout,
        len(done),
        len(todo),
        len(listing.problems),
    )
    fresh: list[VideoResult] = []
    unreadable: list[dict[str, str]] = []
    paths = {item.video: str(item.path) for item in todo}
    for result in _progress(_run(todo, job), len(todo), job.progress):
        fresh.append(result)
        if result.status == "done":
            store.save(result)
            done[result.video] = result
        else:
            log.warning("prepare: unreadable video %s", result.reason)
            unreadable.append({"video": result.video, "path": paths[result.video], "reason": result.reason})
    columns, rows = labels_rows(listing, done)
    _write_labels(job.output / LABELS_FILE, columns, rows)
    summary = _summary(job, listing, done, fresh, unreadable, removed, len(rows))
    write_atomic(job.output / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    return summary


def _summary(
    job: PrepareJob,
    listing: Listing,
    done: dict[str, VideoResult],
    fresh: list[VideoResult],
    unreadable: list[dict[str, str]],
    removed: list[str],
    n_rows: int,
) -> dict[str, Any]:
    records = list(done.values())
    return {
        "input": str(job.input),
        "layout": listing.layout,
        "output": str(job.output),
        "settings": job.crop_settings(),
        "videos": {
            "listed": len(listing.items),
            "read": len(records),
            "prepared_this_run": sum(r.status == "done" for r in fresh),
            "skipped_already_done": len(listing.items) - len(fresh),
            "unreadable": len(unreadable),
            "without_any_face": sum(not r.frames for r in records),
            "removed_from_output": len(removed),
            "real": sum(r.label == 0 for r in records),
            "fake": sum(r.label == 1 for r in records),
        },
        "frames": {
            "sampled": sum(r.frames_sampled for r in records),
            "faces_found": sum(len(r.frames) for r in records),
            "no_face": sum(r.no_face for r in records),
        },
        "labels_csv": {"path": str(job.output / LABELS_FILE), "rows": n_rows},
        "unreadable_videos": unreadable,
        "input_problems": listing.problems,
        "removed_videos": removed,
        "timing": _timing([r for r in fresh if r.status == "done"]),
    }


__all__ = ["PrepareJob", "crop_folder", "labels_rows", "prepare_dataset"]
