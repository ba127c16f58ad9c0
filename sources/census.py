"""Census-Income (KDD) ingestion: UCI files in, the CSV splits CsvExampleGen reads out.

UCI publishes ``census-income.data`` (199,523 rows) and ``census-income.test``
(99,762 rows): no header, fields separated by ", ", the income label ending in
".". This module verifies their SHA-256 checksums (of the uncompressed content,
so plain and gzipped copies check the same), names the columns after the
dataset spec and writes three splits::

    OUT/train/data.csv  OUT/eval/data.csv  OUT/test/data.csv  OUT/manifest.json

Split protocol (seeded, documented in the README):

* both files: train = all of ``.data``; eval and test = the two halves of a
  seeded permutation of ``.test`` (the MMoE paper's protocol);
* only ``.test`` (or the embedded sample): a seeded permutation cut 80/10/10
  into train, eval and test.

The Trainer reads train and eval; only the Evaluator reads test.

A second ``prepare`` with the same inputs, seed and row limit leaves the files
untouched, so ExampleGen's fingerprint and the pipeline cache stay valid.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import gzip
import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
import urllib.request
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from components.object_store import open_text
from components.spec import SPLIT_NAMES, DatasetSpec

# SHA-256 of the *uncompressed* files, keyed by file name without ".gz".
KNOWN_SHA256: Dict[str, str] = {
    "census-income.data": "3676a81db7d3528f3f8b9f3c699d0f0aa28db45e6e994fa0b8ed38327539ee86",
    "census-income.test": "98402b1ab879573d0a7f38a699a40258080e25e33d3401e7bf9c96d3fa0fab8c",
    # The embedded sample shipped in sources/data (see its README.md).
    "census-income.sample": "b0974333db172fb5897627ad2eee4e83f3288edbb5b36e0cc25de4356071d51d",
}

UCI_BASE_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/census-income-mld"
UCI_FILES = ("census-income.data.gz", "census-income.test.gz")
SPLITS = SPLIT_NAMES  # the pipeline's splits, in order
SINGLE_FILE_FRACTIONS = (0.8, 0.1, 0.1)
SAMPLE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "census-income.sample.gz")
_CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A data file is not the one its name claims to be."""


class IngestionError(ValueError):
    """A data file cannot be read as the spec describes it."""


@dataclasses.dataclass(frozen=True)
class PreparedData:
    """Where the splits were written and how many rows each holds."""

    root: str
    counts: Dict[str, int]
    reused: bool

    def split_dir(self, split: str) -> str:
        return os.path.join(self.root, split)


def known_name(path: str) -> str:
    name = os.path.basename(path)
    return name[: -len(".gz")] if name.endswith(".gz") else name




def classify_inputs(paths: Sequence[str]) -> Tuple[Optional[str], Optional[str]]:
    """(data file, test file) from files or folders holding census-income.data / .test (.gz)."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            found = [f for f in sorted(glob.glob(os.path.join(path, "census-income.*"))) if known_name(f) in KNOWN_SHA256]
            if not found:
                raise IngestionError(f"{path} holds no census-income.data or census-income.test (plain or "
                                     ".gz); run `make data` to download them.")
            files.extend(found)
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise IngestionError(f"{path} does not exist.")
    data = [f for f in files if known_name(f) == "census-income.data"]
    test = [f for f in files if known_name(f) != "census-income.data"]
    if len(data) > 1 or len(test) > 1:
        raise IngestionError(f"expected at most one training file and one test file, received {files}.")
    return (data[0] if data else None), (test[0] if test else None)

def sha256_of(path: str) -> str:
    """SHA-256 of the file's content, decompressed first when it ends in .gz."""
    digest = hashlib.sha256()
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: str) -> str:
    """Checks `path` against KNOWN_SHA256 by its file name; returns the digest."""
    name = known_name(path)
    if name not in KNOWN_SHA256:
        raise ChecksumError(
            f"{path}: no known checksum for a file named {name!r}; expected one of "
            f"{sorted(KNOWN_SHA256)} (optionally .gz). Rename an official UCI file back to its "
            "published name, or pass --skip-checksum for data you changed on purpose."
        )
    actual = sha256_of(path)
    expected = KNOWN_SHA256[name]
    if actual != expected:
        raise ChecksumError(
            f"{path}: SHA-256 of its content is {actual}, expected {expected} for {name}. "
            "The file is truncated, modified or not the UCI release: download it again "
            "(make data), or pass --skip-checksum if you changed it on purpose."
        )
    return actual


UCI_SPEC = ("census", "uci-group1.yaml")  # declares the UCI files' format (schemas/census/)


def uci_format():
    """The UCI files' format, as `schemas/census/uci-group1.yaml` declares it."""
    import schemas
    from components.spec import load_spec

    return load_spec(schemas.path(*UCI_SPEC)).format


def read_uci_rows(path: str, num_columns: int, max_rows: Optional[int] = None) -> Iterator[List[str]]:
    """Yields the fields of each row of a UCI census file, read with the UCI format the pipeline
    uses for any CSV (`components.example_gen.read_numbered_rows`, `data_rows`): stripped, trailing '.'
    removed."""
    from components import example_gen  # TensorFlow and Beam: only once rows are read

    file_format = uci_format()
    rows = example_gen.data_rows(example_gen.read_numbered_rows(path, file_format), num_columns, path,
                                 file_format.separator)
    count = 0
    try:
        for _, fields in rows:
            if max_rows is not None and count >= max_rows:
                return
            count += 1
            yield fields
    except example_gen.RowWidthError as e:
        raise IngestionError(
            f"{path}:{e.line}: {len(e.fields)} fields separated by {file_format.separator!r}, "
            f"expected {num_columns} (the spec's columns). Is this a UCI census file?"
        ) from None


def _write_csv(path: str, header: Sequence[str], rows) -> int:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def _cut(rows: List[List[str]], fractions: Sequence[float], seed: int) -> List[List[List[str]]]:
    """A seeded permutation of `rows` cut into consecutive parts of the given fractions."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    parts, start = [], 0
    for i, fraction in enumerate(fractions):
        end = len(order) if i == len(fractions) - 1 else start + int(round(fraction * len(order)))
        parts.append([rows[j] for j in sorted(order[start:end])])
        start = end
    return parts


def prepare(
    spec: DatasetSpec,
    output_dir: str,
    *,
    data_path: Optional[str] = None,
    test_path: Optional[str] = None,
    seed: int = 42,
    max_rows: Optional[int] = None,
    verify: bool = True,
) -> PreparedData:
    """Writes the train/eval/test CSV splits of the UCI files under `output_dir`."""
    if data_path is None and test_path is None:
        raise IngestionError(
            "no input file: pass census-income.data and/or census-income.test "
            "(plain or .gz), or the embedded sample."
        )
    inputs = {role: p for role, p in (("data", data_path), ("test", test_path)) if p}
    for role, path in inputs.items():
        if not os.path.isfile(path):
            raise IngestionError(f"{role} file {path!r} does not exist.")
    digests = {role: (verify_checksum(p) if verify else sha256_of(p)) for role, p in inputs.items()}
    manifest = {
        "inputs": {role: {"file": os.path.basename(p), "sha256": digests[role]} for role, p in inputs.items()},
        "columns": list(spec.column_names),
        "seed": seed,
        "max_rows": max_rows,
    }
    manifest_path = os.path.join(output_dir, "manifest.json")
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            previous = json.load(f)
        if {k: previous.get(k) for k in manifest} == manifest and all(
            os.path.exists(os.path.join(output_dir, s, "data.csv")) for s in SPLITS
        ):
            logging.info("Splits under %s match the inputs; reusing them.", output_dir)
            return PreparedData(output_dir, previous["counts"], reused=True)

    header = spec.column_names
    n = len(header)
    os.makedirs(output_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".staging-", dir=output_dir)
    try:
        counts: Dict[str, int] = {}
        if data_path and test_path:
            logging.info("Writing train from %s and eval/test halves of %s.", data_path, test_path)
            counts["train"] = _write_csv(
                os.path.join(staging, "train", "data.csv"), header, read_uci_rows(data_path, n, max_rows)
            )
            halves = _cut(list(read_uci_rows(test_path, n, max_rows)), (0.5, 0.5), seed)
            for split, rows in zip(("eval", "test"), halves):
                counts[split] = _write_csv(os.path.join(staging, split, "data.csv"), header, rows)
        else:
            only = data_path or test_path
            logging.info("Writing a seeded %s split of %s.", "/".join(map(str, SINGLE_FILE_FRACTIONS)), only)
            parts = _cut(list(read_uci_rows(only, n, max_rows)), SINGLE_FILE_FRACTIONS, seed)
            for split, rows in zip(SPLITS, parts):
                counts[split] = _write_csv(os.path.join(staging, split, "data.csv"), header, rows)
        for split in SPLITS:
            if counts[split] == 0:
                raise IngestionError(
                    f"split {split!r} is empty ({counts}); give more rows (max_rows={max_rows})."
                )
        manifest["counts"] = counts
        with open(os.path.join(staging, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
        for name in (*SPLITS, "manifest.json"):
            target = os.path.join(output_dir, name)
            if os.path.isdir(target):
                shutil.rmtree(target)
            os.replace(os.path.join(staging, name), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logging.info("Wrote splits %s under %s.", counts, output_dir)
    return PreparedData(output_dir, counts, reused=False)


def download(dest_dir: str, base_url: str = UCI_BASE_URL, files: Sequence[str] = UCI_FILES) -> List[str]:
    """Downloads the official UCI files into `dest_dir` and verifies their checksums."""
    os.makedirs(dest_dir, exist_ok=True)
    paths = []
    for name in files:
        target = os.path.join(dest_dir, name)
        url = f"{base_url.rstrip('/')}/{name}"
        if os.path.exists(target):
            logging.info("%s exists; verifying it instead of downloading.", target)
        else:
            logging.info("Downloading %s", url)
            partial = target + ".partial"
            with urllib.request.urlopen(url) as response, open(partial, "wb") as out:
                shutil.copyfileobj(response, out, _CHUNK)
            os.replace(partial, target)
        try:
            verify_checksum(target)
        except ChecksumError:
            os.replace(target, target + ".bad")
            raise
        paths.append(target)
    return paths


def write_sample(source_test_path: str, output_path: str, rows: int, seed: int = 0) -> str:
    """Writes the embedded sample: `rows` seeded rows of census-income.test, in file order, gzipped."""
    with open_text(source_test_path) as f:
        lines = [line for line in f if line.strip()]
    keep = sorted(random.Random(seed).sample(range(len(lines)), rows))
    with open(output_path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
            for i in keep:
                gz.write(lines[i].encode("utf-8"))
    return sha256_of(output_path)


def write_inputs(spec: DatasetSpec, folder: str, paths: Sequence[str], seed: int = 0, verify: bool = True) -> str:
    """Writes the data as the pipeline reads it into `folder`: the train/eval/test splits of the UCI census
    files or, for a spec that splits in the pipeline (`split: {ratios: ...}`), the files as they are.
    Returns what was written, in words."""
    if spec.split.in_pipeline:
        os.makedirs(folder, exist_ok=True)
        for path in paths:
            shutil.copy(path, folder)
        return f"{len(paths)} file(s), split in the pipeline {dict(spec.split.ratios)}"
    data_file, test_file = classify_inputs(paths)
    return f"splits {prepare(spec, folder, data_path=data_file, test_path=test_file, seed=seed, verify=verify).counts}"
