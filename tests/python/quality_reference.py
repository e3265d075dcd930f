#!/usr/bin/env python3
"""NumPy reference for src/quality.rs: the guide's `assess_image_quality`, verbatim.

Usage: quality_reference.py IMAGE...
Prints a JSON list with one object per image, in argument order: the guide's metrics plus
`quality_score`. Floats are printed with repr, so they round-trip exactly.

Exits with 77 (the conventional "skipped" status) when numpy or Pillow is missing, so the
Rust test can tell "not installed" apart from a real failure.
"""
import io
import json
import sys

try:
    import numpy as np
    from PIL import Image
except ImportError as missing:
    print(missing, file=sys.stderr)
    sys.exit(77)


# Copied from the guide ("Quality Scoring"); do not "improve" it, it is the reference.
def assess_image_quality(image_data: bytes) -> dict:
    """Basic image quality metrics."""
    image = Image.open(io.BytesIO(image_data))
    array = np.array(image)

    # Calculate basic metrics
    brightness = np.mean(array)
    contrast = np.std(array)
    sharpness = np.var(np.gradient(np.mean(array, axis=2)))

    # Color diversity
    unique_colors = len(np.unique(array.reshape(-1, array.shape[-1]), axis=0))
    color_diversity = unique_colors / (array.shape[0] * array.shape[1])

    return {
        'brightness': float(brightness),
        'contrast': float(contrast),
        'sharpness': float(sharpness),
        'color_diversity': float(color_diversity),
        'resolution': f"{image.size[0]}x{image.size[1]}",
        'file_size': len(image_data)
    }


# The guide's score, from `generate_with_quality_check`.
def quality_score(quality: dict) -> float:
    return (
        quality['contrast'] / 255 * 0.3 +
        quality['sharpness'] / 1000 * 0.3 +
        quality['color_diversity'] * 0.4
    )


def main(paths: list[str]) -> None:
    results = []
    for path in paths:
        with open(path, "rb") as file:
            quality = assess_image_quality(file.read())
        quality["quality_score"] = quality_score(quality)
        results.append(quality)
    json.dump(results, sys.stdout)
    print()


if __name__ == "__main__":
    main(sys.argv[1:])
