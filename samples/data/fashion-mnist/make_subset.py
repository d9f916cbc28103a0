"""Builds the class-balanced Fashion-MNIST subset shipped as the README main job's embedded default.

Source: Debian's dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist), the original Zalando IDX files.
Run once with /usr/bin/python3 (standard library only); the outputs are committed, so nothing needs Python at run time.
"""
import gzip, struct, sys

SRC = "/usr/share/datasets/fashion-mnist"
PER_CLASS = {"train": 300, "t10k": 100}

def read(prefix):
    with gzip.open(f"{SRC}/{prefix}-images-idx3-ubyte.gz") as f:
        magic, n, h, w = struct.unpack(">IIII", f.read(16)); assert magic == 2051
        images = [f.read(h * w) for _ in range(n)]
    with gzip.open(f"{SRC}/{prefix}-labels-idx1-ubyte.gz") as f:
        magic, n2 = struct.unpack(">II", f.read(8)); assert magic == 2049 and n2 == n
        labels = list(f.read(n))
    return images, labels, h, w

for prefix, per in PER_CLASS.items():
    images, labels, h, w = read(prefix)
    taken, counts = [], [0] * 10
    for i, y in enumerate(labels):  # first `per` of each class, in file order
        if counts[y] < per:
            counts[y] += 1; taken.append(i)
    with gzip.GzipFile(f"{prefix}-images-idx3-ubyte.gz", "wb", mtime=0) as f:
        f.write(struct.pack(">IIII", 2051, len(taken), h, w))
        for i in taken: f.write(images[i])
    with gzip.GzipFile(f"{prefix}-labels-idx1-ubyte.gz", "wb", mtime=0) as f:
        f.write(struct.pack(">II", 2049, len(taken)))
        f.write(bytes(labels[i] for i in taken))
    print(prefix, len(taken), file=sys.stderr)
