"""What every data module shares about samples: the split names, the class targets (1 = fake), a sample and an
index, and the layout error. Its own module so that the indexing (`index.py`), the labels CSV (`labels_csv.py`)
and the group split (`group_split.py`) all build on it without importing one another in a loop."""

from __future__ import annotations

SPLITS = ("train", "valid", "test")
CLASS_TARGETS = {"real": 0, "fake": 1}

Sample = tuple[str, int]
Index = dict[str, list[Sample]]


class DatasetLayoutError(ValueError):
    """The data root does not have the layout the config asks for."""
