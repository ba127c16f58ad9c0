import os

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
