"""Writes docs/suite-keys.md, the reference of every suite key, from the schema (bench.suite_keys).

    python scripts/suite_keys_doc.py            # rewrite the page
    python scripts/suite_keys_doc.py --check    # exit 1 when the committed page differs

tests/test_show.py fails while the committed page differs from what this writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.suite_keys import keys_markdown  # noqa: E402

PAGE = ROOT / "docs" / "suite-keys.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    args = parser.parse_args()
    text = keys_markdown()
    if args.check:
        same = PAGE.is_file() and PAGE.read_text(encoding="utf-8") == text
        print(f"{PAGE}: {'up to date' if same else 'differs; run python scripts/suite_keys_doc.py'}")
        return 0 if same else 1
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
