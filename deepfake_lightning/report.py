"""`python -m deepfake_lightning.report RUN_DIR`: regenerate RUN_DIR/REPORT.md from the files in the run."""

from __future__ import annotations

import sys

from deepfake_lightning.evaluation.report import write_report


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(__doc__)
        return 2
    try:
        path = write_report(args[0])
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
