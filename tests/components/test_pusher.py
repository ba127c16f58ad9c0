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


def test_push_is_atomic_a_version_is_complete_whenever_a_reader_could_look(tmp_path, monkeypatch):
    """After every single file the copy writes (where a reader polling the serving directory could look),
    each version folder there is complete: the copy goes to a temporary folder, renamed at the end."""
    from tfx.dsl.io import fileio

    from components.pusher import TEMPORARY_PREFIX, push_atomically

    model = _model(tmp_path / "model", weights=os.urandom(1 << 16))
    for i in range(30):
        with open(os.path.join(model, "variables", f"shard-{i}"), "wb") as f:
            f.write(os.urandom(1 << 10))
    expected = sorted(os.listdir(os.path.join(model, "variables")))
    serving = str(tmp_path / "serving")
    os.makedirs(os.path.join(serving, f"{TEMPORARY_PREFIX}7-1"))  # left by a killed push
    real_copy, seen = fileio.copy, []

    def copy_and_look(src, dst, overwrite=False):
        real_copy(src, dst, overwrite)
        seen.append({v: (os.path.exists(os.path.join(serving, v, "saved_model.pb")),
                         sorted(os.listdir(os.path.join(serving, v, "variables"))))
                     for v in os.listdir(serving) if v.isdigit()})

    monkeypatch.setattr(fileio, "copy", copy_and_look)
    first = push_atomically(model, serving, version=7)
    second = push_atomically(model, serving, version=7)  # taken: the next number
    assert (os.path.basename(first), os.path.basename(second)) == ("7", "8")
    assert sorted(os.listdir(serving)) == ["7", "8"]  # the leftover temporary folder is gone
    files = 1 + len(expected)  # saved_model.pb and the variables
    assert len(seen) == 2 * files
    assert seen[:files] == [{}] * files  # during the first copy no version is visible
    assert seen[files:] == [{"7": (True, expected)}] * files  # during the second, only the complete first


def test_versions_ignore_temporary_folders(tmp_path):
    candidate = _model(tmp_path / "candidate")
    serving = tmp_path / "serving"
    _model(serving / ".tmp-300-1")
    assert find_pushed_version(candidate, str(serving)) is None


def _push(tmp_path, model_uri, serving, name):
    """One run of the Executor, as TFX calls it, with a blessed model and infra blessing."""
    from tfx.proto import pusher_pb2
    from tfx.types import standard_artifacts, standard_component_specs
    from tfx.utils import proto_utils

    from components.pusher import Executor

    model = standard_artifacts.Model()
    model.uri = model_uri
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / f"blessing-{name}")
    blessing.set_int_custom_property("blessed", 1)
    infra = standard_artifacts.InfraBlessing()
    infra.uri = str(tmp_path / f"infra-{name}")
    infra.set_int_custom_property("blessed", 1)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / f"pushed-{name}")
    os.makedirs(pushed.uri, exist_ok=True)
    destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving))
    Executor().Do({standard_component_specs.MODEL_KEY: [model], standard_component_specs.MODEL_BLESSING_KEY: [blessing],
                   standard_component_specs.INFRA_BLESSING_KEY: [infra]},
                  {standard_component_specs.PUSHED_MODEL_KEY: [pushed]},
                  {standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination)})
    return pushed


def test_a_model_already_served_is_recorded_as_pushed_without_a_copy(tmp_path):
    """The second push of the same model: no new version folder; the PushedModel names the version that
    already holds it. A different model then gets a version of its own."""
    from tfx.utils import path_utils

    serving = str(tmp_path / "serving")
    model_uri = str(tmp_path / "model")
    _model(path_utils.serving_model_path(model_uri))
    first = _push(tmp_path, model_uri, serving, "1")
    [version] = os.listdir(serving)
    assert first.get_int_custom_property("pushed") == 1
    assert first.get_string_custom_property("pushed_destination") == os.path.join(serving, version)
    second = _push(tmp_path, model_uri, serving, "2")
    assert os.listdir(serving) == [version]
    assert second.get_int_custom_property("pushed") == 1
    assert second.get_string_custom_property("pushed_destination") == os.path.join(serving, version)
    assert second.get_string_custom_property("pushed_version") == version
    assert os.listdir(second.uri) == []  # nothing copied for the repeat
    other_uri = str(tmp_path / "other")
    _model(path_utils.serving_model_path(other_uri), weights=b"w2")
    time.sleep(1.1)  # versions are Unix seconds
    third = _push(tmp_path, other_uri, serving, "3")
    assert len(os.listdir(serving)) == 2
    assert third.get_string_custom_property("pushed_destination") != first.get_string_custom_property("pushed_destination")
