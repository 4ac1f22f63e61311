"""Opening a run, checkpoint, archive or cache someone else made never runs their code; downloads and archive
members are verified. Every planted file below would create a marker file if it were unpickled."""

import base64
import io
import json
import shutil
import zipfile

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fernn.agents.cli import app

runner = CliRunner()
TINY_FLAGS = ["--env", "flowing-mnist", "--vmax", "1", "--data-vmax", "1", "--eval-vmax", "1", "--hidden", "2",
              "--decoder-layers", "1", "--context", "2", "--predict", "2", "--epochs", "1", "--steps-per-epoch", "2",
              "--batch-size", "2", "--val-batches", "1", "--eval-sequences", "2", "--source", "embedded",
              "--device", "cpu", "--quiet"]


class Plant:
    """Unpickling this creates ``path`` (what arbitrary code could do instead)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.output.count("error:") == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


@pytest.fixture(scope="module")
def supervised_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert runner.invoke(app, ["train", *TINY_FLAGS, "--out", str(out), "--name", "mine"]).exit_code == 0
    return out / "mine"


def test_a_malicious_checkpoint_is_refused_by_eval_rollout_and_resume(supervised_run, tmp_path):
    theirs = tmp_path / "theirs"
    shutil.copytree(supervised_run, theirs)
    marker = tmp_path / "marker"
    for name in ("best.pt", "last.pt"):
        torch.save({"model": Plant(marker), "note": "a shared checkpoint"}, theirs / "checkpoints" / name)
    one_line_error(runner.invoke(app, ["eval", str(theirs)]), "best.pt", "not loaded")
    one_line_error(runner.invoke(app, ["rollout", str(theirs)]), "best.pt")
    one_line_error(runner.invoke(app, ["train", *TINY_FLAGS, "--out", str(tmp_path), "--name", "theirs",
                                       "--resume"]), "last.pt")
    assert not marker.exists()


def test_an_empty_checkpoint_is_one_line_and_no_error_repeats_torchs_advice_to_unpickle(supervised_run, tmp_path):
    theirs = tmp_path / "theirs"
    shutil.copytree(supervised_run, theirs)
    (theirs / "checkpoints" / "best.pt").write_bytes(b"")
    one_line_error(runner.invoke(app, ["eval", str(theirs)]), "best.pt", "is empty")
    one_line_error(runner.invoke(app, ["rollout", str(theirs)]), "best.pt", "is empty")
    torch.save({"model": Plant(tmp_path / "marker")}, theirs / "checkpoints" / "best.pt")
    result = runner.invoke(app, ["eval", str(theirs)])
    one_line_error(result, "best.pt", "not loaded")
    assert "weights_only" not in result.output and "asks for the global io.open" in " ".join(result.output.split())


def test_a_truncated_checkpoint_or_config_is_one_line(supervised_run, tmp_path):
    theirs = tmp_path / "theirs"
    shutil.copytree(supervised_run, theirs)
    best, last = theirs / "checkpoints" / "best.pt", theirs / "checkpoints" / "last.pt"
    best.write_bytes(best.read_bytes()[:100])
    last.write_bytes(last.read_bytes()[:2000])
    one_line_error(runner.invoke(app, ["eval", str(theirs)]), "best.pt", "damaged")
    one_line_error(runner.invoke(app, ["eval", str(theirs), "--checkpoint", "last"]), "last.pt", "damaged")
    one_line_error(runner.invoke(app, ["train", *TINY_FLAGS, "--out", str(tmp_path), "--name", "theirs",
                                       "--resume"]), "last.pt", "damaged")
    (theirs / "config.json").write_text('{"env": "flowing-mnist",\x01')
    one_line_error(runner.invoke(app, ["eval", str(theirs)]), "config.json", "not valid JSON")
    one_line_error(runner.invoke(app, ["rollout", str(theirs)]), "config.json")
    one_line_error(runner.invoke(app, ["train", *TINY_FLAGS, "--out", str(tmp_path), "--name", "theirs",
                                       "--resume"]), "config.json")


def test_this_projects_checkpoints_load_as_data(supervised_run):
    from fernn.agents.runs import RunDir

    checkpoint = RunDir(supervised_run).load_checkpoint("last.pt")
    assert set(checkpoint) == {"model", "optimizer", "state", "rngs", "config", "model_spec"}


def test_an_rl_archive_is_loaded_without_unpickling(tmp_path):
    """SB3's own load would deserialise the cloudpickled entry planted in ``data``; the run's loader reads the
    weights only, so the run still re-evaluates and the marker is never created."""
    import cloudpickle

    args = ["train", "--env", "mnist-world-track", "--algo", "recurrent-ppo", "--policy", "cnn-lstm", "--n-envs", "2",
            "--n-steps", "8", "--batch-size", "8", "--eval-every", "16", "--eval-episodes", "1", "--timesteps", "16",
            "--device", "cpu", "--quiet", "--out", str(tmp_path), "--name", "rl"]
    assert runner.invoke(app, args).exit_code == 0
    marker = tmp_path / "marker"
    archive = tmp_path / "rl" / "model.zip"
    with zipfile.ZipFile(archive) as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    data = json.loads(entries["data"])
    data["policy_class"] = {":type:": "<class 'type'>",
                            ":serialized:": base64.b64encode(cloudpickle.dumps(Plant(marker))).decode()}
    entries["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(archive, "w") as zf:
        for name, payload in entries.items():
            zf.writestr(name, payload)
    result = runner.invoke(app, ["eval", str(tmp_path / "rl"), "--episodes", "1"])
    assert result.exit_code == 0, result.output
    assert not marker.exists()
    buffer = io.BytesIO()
    torch.save({"weights": Plant(marker)}, buffer)
    entries["policy.pth"] = buffer.getvalue()
    with zipfile.ZipFile(archive, "w") as zf:
        for name, payload in entries.items():
            zf.writestr(name, payload)
    one_line_error(runner.invoke(app, ["rollout", str(tmp_path / "rl")]), "model.zip", "not loaded")
    (tmp_path / "rl" / "model.zip").write_bytes(b"PK\x03\x04 truncated")
    one_line_error(runner.invoke(app, ["rollout", str(tmp_path / "rl")]), "model.zip")
    assert not marker.exists()


def test_a_pickled_array_in_a_data_cache_is_never_unpickled(tmp_path, kth_root):
    """A KTH cache from elsewhere with an object array: treated as damaged and rebuilt from the archives."""
    from fernn.envs import load_kth

    data = tmp_path / "data"
    shutil.copytree(kth_root, data)
    load_kth("train", data_dir=data)  # builds the cache
    marker = tmp_path / "marker"
    cache = data / "kth" / "cache_64"
    victim = sorted(cache.glob("*.npy"))[0]
    np.save(victim, np.array([Plant(marker)], dtype=object), allow_pickle=True)
    load_kth("train", data_dir=data)
    assert not marker.exists()
    assert np.load(victim, allow_pickle=False).dtype == np.uint8  # rebuilt


def _zip_with(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)


@pytest.mark.parametrize("member", ["../evil_uncomp.avi", "/abs/person01_walking_d1_uncomp.avi", "notes.txt",
                                    "person01_walking_d1_uncomp.avi/../../x"])
def test_kth_archive_members_are_validated_before_decoding(tmp_path, kth_root, member):
    from fernn.envs import DataMissingError, load_kth

    data = tmp_path / "data"
    shutil.copytree(kth_root, data, ignore=shutil.ignore_patterns("cache_*"))  # the archives are read to decode
    _zip_with(data / "kth" / "walking.zip", {member: b"x"})
    with pytest.raises(DataMissingError, match="unexpected member"):
        load_kth("train", data_dir=data)
    assert not (tmp_path / "evil_uncomp.avi").exists()


def test_kth_archive_members_are_size_bounded(tmp_path, kth_root, monkeypatch):
    from fernn.envs import DataMissingError, load_kth

    data = tmp_path / "data"
    shutil.copytree(kth_root, data, ignore=shutil.ignore_patterns("cache_*"))
    monkeypatch.setattr("fernn.envs.kth.MAX_MEMBER_BYTES", 16)
    with pytest.raises(DataMissingError, match="unpacks to"):
        load_kth("train", data_dir=data)


def test_pinned_digests_are_sha256_for_every_download():
    from fernn.envs.kth import KTH_DIGESTS
    from fernn.envs.mnist import MNIST_FILES

    assert all(len(d["sha256"]) == 64 for d in MNIST_FILES.values())
    assert set(KTH_DIGESTS) == {f"{a}.zip" for a in ("walking", "jogging", "running", "boxing", "handwaving",
                                                     "handclapping")}
