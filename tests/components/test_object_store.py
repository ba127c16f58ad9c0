"""components.object_store against a real S3 API server on 127.0.0.1 (tests/s3_server.py)."""

import gzip

from components import object_store


def test_a_remote_file_is_read_in_chunks_not_whole(s3_server, tmp_path):
    """open_text on s3:// (a real S3 API server on 127.0.0.1): the same lines as the local file, plain and
    gzip'd, and the first line needs one chunk of the object, not all of it."""
    lines = [f"{i}, row {i}, {'x' * 90}\r\n" for i in range(60_000)]  # about 6 MB
    plain, packed = tmp_path / "rows.csv", tmp_path / "rows.csv.gz"
    plain.write_text("".join(lines), newline="")
    with gzip.open(packed, "wt", newline="") as f:
        f.writelines(lines)
    bucket = s3_server.create_bucket("chunks")
    assert s3_server.upload_tree(str(tmp_path), "chunks", "in") == 2
    with object_store.open_text(f"{bucket}/in/rows.csv") as f:
        assert f.readline() == lines[0]
        assert f.buffer.raw.consumed <= 2 * object_store.READ_CHUNK < plain.stat().st_size / 2
        assert f.readline() == lines[1] and f.read() == "".join(lines[2:])
    with object_store.open_text(f"{bucket}/in/rows.csv.gz") as f:
        assert list(f) == lines
