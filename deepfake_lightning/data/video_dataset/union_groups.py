"""Groups as connected components: a fake links the videos (or people) it was made from, and everything linked,
directly or not, must sit in one split. FF++'s `000_003` fake links youtube videos 000 and 003; its
DeepFakeDetection fake `01_02__scene__X` links actors 01 and 02."""

from __future__ import annotations

from collections.abc import Iterable


class UnionGroups:
    """Union-find over string ids; a component is named by its smallest id, so names do not depend on order."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def _find(self, key: str) -> str:
        self._parent.setdefault(key, key)
        root = key
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[key] != root:  # path compression
            self._parent[key], key = root, self._parent[key]
        return root

    def link(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        for key in keys:
            self._find(key)
        for other in keys[1:]:
            a, b = self._find(keys[0]), self._find(other)
            if a != b:
                low, high = sorted((a, b))
                self._parent[high] = low

    def name(self, key: str) -> str:
        return self._find(key)
