"""A large text corpus made deterministically from this Python's own standard library, for timing and testing
data preparation at scale (nothing of it is committed: it is written where asked, at the size asked).

    python -m benchmarks.big_corpus big.txt --mb 200
    /usr/bin/time -v orchestrator validate --data big.txt      # "Maximum resident set size": the driver's peak

The text is the standard library's `.py` files in sorted order, repeated until the size is reached (cut at a
character boundary): real source text with its real vocabulary, the same bytes on every run on the same Python.
"""

from __future__ import annotations

import argparse
import sysconfig
from pathlib import Path

BLOCK = 1 << 20  # bytes written at once


def stdlib_sources() -> list[Path]:
    """This Python's standard library `.py` files (its site-packages left out), in a stable order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts and p.is_file())


def write_corpus(path: Path, size_bytes: int) -> Path:
    """Writes `size_bytes` (a few bytes fewer, to end on a whole UTF-8 character) of standard library source to
    `path`; returns it."""
    texts = []
    for source in stdlib_sources():
        try:
            texts.append(source.read_bytes().decode("utf-8"))
        except UnicodeDecodeError:
            continue  # a file in another encoding (the test suite keeps a few on purpose): not UTF-8 text
    block = "\n".join(texts).encode("utf-8")
    with path.open("wb") as f:
        written = 0
        while written < size_bytes:
            part = block[: size_bytes - written]
            part = part.decode("utf-8", errors="ignore").encode("utf-8")  # a cut character dropped
            f.write(part)
            written += len(part)
            if len(part) < len(block):
                break
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--mb", type=float, default=200.0, help="size in MB (10^6 bytes)")
    args = parser.parse_args(argv)
    write_corpus(args.out, int(args.mb * 1e6))
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
