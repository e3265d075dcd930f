#!/usr/bin/env python3
"""The Python side of the imaging benchmark: the same work as `benches/imaging.rs`, on the
files it wrote, timed the same way (one warm-up call, then the median and fastest of 15).

- quality: the guide's `assess_image_quality` (NumPy on Pillow's pixels), imported from
  tests/python/quality_reference.py so it is the very code the Rust metrics are checked
  against, plus the guide's score;
- downscale: open, decode, resize to 1024 on the long side with a triangle (bilinear)
  filter, encode JPEG at quality 90 -- what `imaging::accept_input` does. Pillow's
  `draft()` shortcut (decoding at 1/2, 1/4 scale) is not used: it would be other work.

Usage: imaging_reference.py DIR   (prints one JSON line)
"""
import io
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "python"))
from quality_reference import assess_image_quality, quality_score  # noqa: E402

import numpy  # noqa: E402
import PIL  # noqa: E402
from PIL import Image  # noqa: E402

RUNS = 15


def timed(work):
    work()
    runs = []
    for _ in range(RUNS):
        started = time.perf_counter()
        work()
        runs.append((time.perf_counter() - started) * 1000.0)
    return {"median_ms": statistics.median(runs), "min_ms": min(runs), "runs": RUNS}


def downscale(data: bytes) -> bytes:
    image = Image.open(io.BytesIO(data))
    image.load()
    scale = 1024 / max(image.size)
    size = (round(image.width * scale), round(image.height * scale))
    resized = image.resize(size, Image.Resampling.BILINEAR)
    out = io.BytesIO()
    resized.save(out, format="JPEG", quality=90)
    return out.getvalue()


def main(directory: str) -> None:
    with open(os.path.join(directory, "quality_1024.png"), "rb") as f:
        png = f.read()
    with open(os.path.join(directory, "photo_4000x3000.jpg"), "rb") as f:
        photo = f.read()
    assert Image.open(io.BytesIO(downscale(photo))).size == (1024, 768)
    print(json.dumps({
        "quality_png_1024": timed(lambda: quality_score(assess_image_quality(png))),
        "downscale_jpeg_4000x3000": timed(lambda: downscale(photo)),
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
        "python": sys.version.split()[0],
    }))


if __name__ == "__main__":
    main(sys.argv[1])
