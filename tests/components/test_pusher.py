import os
import time

from components.pusher import find_pushed_version, saved_model_digest


def _model(path, weights=b"w1"):
    os.makedirs(os.path.join(path, "variables"), exist_ok=True)
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(b"graph")
    with open(os.path.join(path, "variables", "variables.data"), "wb") as f:
        f.write(weights)
    return str(path)


def test_digest_covers_names_and_contents(tmp_path):
    a = _model(tmp_path / "a")
    assert saved_model_digest(a) == saved_model_digest(_model(tmp_path / "b"))
    assert saved_model_digest(a) != saved_model_digest(_model(tmp_path / "c", weights=b"w2"))


def test_finds_the_version_that_holds_the_same_model(tmp_path):
    candidate = _model(tmp_path / "candidate")
    serving = tmp_path / "serving"
    _model(serving / "100", weights=b"old")
    same = _model(serving / "200")
    _model(serving / "300", weights=b"other")
    assert find_pushed_version(candidate, str(serving)) == same
    assert find_pushed_version(_model(tmp_path / "new", weights=b"new"), str(serving)) is None
    assert find_pushed_version(candidate, str(tmp_path / "missing")) is None


def test_push_is_atomic_for_a_reader_polling_the_serving_directory(tmp_path):
    import threading

    from components.pusher import TEMPORARY_PREFIX, push_atomically

    model = _model(tmp_path / "model", weights=os.urandom(1 << 20))
    for i in range(30):  # many small files make a half-copied version likely to be seen
        with open(os.path.join(model, "variables", f"shard-{i}"), "wb") as f:
            f.write(os.urandom(1 << 14))
    expected = sorted(os.listdir(os.path.join(model, "variables")))
    serving = str(tmp_path / "serving")
    os.makedirs(os.path.join(serving, f"{TEMPORARY_PREFIX}7-1"))  # left by a killed push
    seen, done = [], threading.Event()

    def poll():
        while not done.is_set():
            for version in os.listdir(serving) if os.path.isdir(serving) else []:
                if version.isdigit():
                    path = os.path.join(serving, version)
                    seen.append((os.path.exists(os.path.join(path, "saved_model.pb")),
                                 sorted(os.listdir(os.path.join(path, "variables")))))

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        first = push_atomically(model, serving, version=7)
        second = push_atomically(model, serving, version=7)  # taken: the next number
        deadline = time.monotonic() + 10  # on a busy machine the reader may not have looked yet
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        done.set()
        reader.join()
    assert (os.path.basename(first), os.path.basename(second)) == ("7", "8")
    assert sorted(os.listdir(serving)) == ["7", "8"]  # the leftover temporary folder is gone
    assert seen and all(has_graph and variables == expected for has_graph, variables in seen)


def test_versions_ignore_temporary_folders(tmp_path):
    candidate = _model(tmp_path / "candidate")
    serving = tmp_path / "serving"
    _model(serving / ".tmp-300-1")
    assert find_pushed_version(candidate, str(serving)) is None
