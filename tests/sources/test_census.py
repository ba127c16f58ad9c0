import gzip
import hashlib
import json
import os

import pytest

from components.spec import DatasetSpec
from sources import census

SPEC = DatasetSpec.from_dict({
    "name": "mini",
    "columns": [{"name": "age", "kind": "numeric"}, {"name": "job", "kind": "categorical"},
                {"name": "income", "kind": "categorical"}],
    "tasks": [{"name": "rich", "label_column": "income", "positive_values": ["50000+"]}],
})


def _uci_lines(n, start=0):
    return "".join(
        f"{start + i}, Handlers equip cleaners etc , {'50000+' if i % 3 == 0 else '- 50000'}.\n" for i in range(n)
    )


def _write(path, text, gz=False):
    opener = gzip.open if gz else open
    with opener(path, "wt") as f:
        f.write(text)
    return str(path)


def _csv_rows(path):
    with open(path) as f:
        return [line.rstrip("\n") for line in f]


def test_rows_are_split_on_comma_space_and_stripped(tmp_path):
    path = _write(tmp_path / "x.test.gz", "38, Private, - 50000.\n44, Self-employed , 50000+.\n\n", gz=True)
    assert list(census.read_uci_rows(path, 3)) == [
        ["38", "Private", "- 50000"],
        ["44", "Self-employed", "50000+"],
    ]


def test_wrong_field_count_names_file_and_line(tmp_path):
    path = _write(tmp_path / "x.test", "38, Private, - 50000.\n44, 50000+.\n")
    with pytest.raises(census.IngestionError, match=r"x.test:2: 2 fields separated by ',', expected 3"):
        list(census.read_uci_rows(path, 3))


def test_checksum_is_of_uncompressed_content(tmp_path):
    text = _uci_lines(5)
    plain = _write(tmp_path / "a", text)
    packed = _write(tmp_path / "b.gz", text, gz=True)
    expected = hashlib.sha256(text.encode()).hexdigest()
    assert census.sha256_of(plain) == census.sha256_of(packed) == expected


def test_checksum_mismatch_names_file_digests_and_fix(tmp_path):
    path = _write(tmp_path / "census-income.test.gz", _uci_lines(4), gz=True)
    actual = census.sha256_of(path)
    with pytest.raises(census.ChecksumError) as error:
        census.verify_checksum(path)
    message = str(error.value)
    assert path in message and actual in message
    assert census.KNOWN_SHA256["census-income.test"] in message
    assert "make data" in message and "--skip-checksum" in message


def test_unknown_file_name_is_refused(tmp_path):
    path = _write(tmp_path / "my.csv", _uci_lines(2))
    with pytest.raises(census.ChecksumError, match=r"no known checksum for a file named 'my.csv'"):
        census.verify_checksum(path)


def test_embedded_sample_passes_its_checksum():
    assert census.verify_checksum(census.SAMPLE_PATH) == census.KNOWN_SHA256["census-income.sample"]
    assert os.path.getsize(census.SAMPLE_PATH) < 1_000_000


def test_single_file_is_cut_80_10_10_with_header(tmp_path):
    path = _write(tmp_path / "t.test", _uci_lines(50))
    out = census.prepare(SPEC, str(tmp_path / "out"), test_path=path, verify=False, seed=1)
    assert out.counts == {"train": 40, "eval": 5, "test": 5}
    rows = {s: _csv_rows(os.path.join(out.split_dir(s), "data.csv")) for s in census.SPLITS}
    assert all(r[0] == "age,job,income" for r in rows.values())
    ages = sorted(int(line.split(",")[0]) for s in rows for line in rows[s][1:])
    assert ages == list(range(50))  # every row once, none lost or repeated
    first = rows["train"][1].split(",")
    assert first[1] == "Handlers equip cleaners etc"
    assert first[2] in ("50000+", "- 50000")  # trailing '.' removed


def test_both_files_train_on_data_and_halve_test(tmp_path):
    data = _write(tmp_path / "d.data", _uci_lines(30, start=1000))
    test = _write(tmp_path / "t.test", _uci_lines(20))
    out = census.prepare(SPEC, str(tmp_path / "out"), data_path=data, test_path=test, verify=False)
    assert out.counts == {"train": 30, "eval": 10, "test": 10}
    train_ages = [int(r.split(",")[0]) for r in _csv_rows(os.path.join(out.split_dir("train"), "data.csv"))[1:]]
    assert train_ages == list(range(1000, 1030))
    held_out = [int(r.split(",")[0]) for s in ("eval", "test")
                for r in _csv_rows(os.path.join(out.split_dir(s), "data.csv"))[1:]]
    assert sorted(held_out) == list(range(20))


def test_split_depends_on_seed_only(tmp_path):
    path = _write(tmp_path / "t.test", _uci_lines(40))
    a = census.prepare(SPEC, str(tmp_path / "a"), test_path=path, verify=False, seed=7)
    b = census.prepare(SPEC, str(tmp_path / "b"), test_path=path, verify=False, seed=7)
    c = census.prepare(SPEC, str(tmp_path / "c"), test_path=path, verify=False, seed=8)
    read = lambda p: _csv_rows(os.path.join(p.split_dir("test"), "data.csv"))  # noqa: E731
    assert read(a) == read(b) != read(c)


def test_second_prepare_reuses_files_untouched(tmp_path):
    path = _write(tmp_path / "t.test", _uci_lines(30))
    first = census.prepare(SPEC, str(tmp_path / "out"), test_path=path, verify=False)
    train = os.path.join(first.split_dir("train"), "data.csv")
    mtime = os.stat(train).st_mtime_ns
    second = census.prepare(SPEC, str(tmp_path / "out"), test_path=path, verify=False)
    assert second.reused and not first.reused
    assert os.stat(train).st_mtime_ns == mtime
    third = census.prepare(SPEC, str(tmp_path / "out"), test_path=path, verify=False, max_rows=20)
    assert not third.reused and third.counts == {"train": 16, "eval": 2, "test": 2}
    with open(os.path.join(tmp_path, "out", "manifest.json")) as f:
        assert json.load(f)["max_rows"] == 20


def test_no_input_is_an_error(tmp_path):
    with pytest.raises(census.IngestionError, match="no input file"):
        census.prepare(SPEC, str(tmp_path))


def test_download_from_file_url_verifies_checksum(tmp_path, monkeypatch):
    source = tmp_path / "mirror"
    source.mkdir()
    text = _uci_lines(6)
    _write(source / "census-income.test.gz", text, gz=True)
    monkeypatch.setitem(census.KNOWN_SHA256, "census-income.test", hashlib.sha256(text.encode()).hexdigest())
    paths = census.download(str(tmp_path / "dest"), base_url=source.as_uri(), files=["census-income.test.gz"])
    assert paths == [str(tmp_path / "dest" / "census-income.test.gz")]
    assert list(census.read_uci_rows(paths[0], 3))[0] == ["0", "Handlers equip cleaners etc", "50000+"]


def test_download_of_a_corrupt_file_fails_and_keeps_it_aside(tmp_path):
    source = tmp_path / "mirror"
    source.mkdir()
    _write(source / "census-income.test.gz", _uci_lines(3), gz=True)
    with pytest.raises(census.ChecksumError, match="SHA-256 of its content"):
        census.download(str(tmp_path / "dest"), base_url=source.as_uri(), files=["census-income.test.gz"])
    assert os.listdir(tmp_path / "dest") == ["census-income.test.gz.bad"]
