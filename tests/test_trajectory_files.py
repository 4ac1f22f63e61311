"""No trajectory file's declared size is trusted: forged lengths, headers that claim gigabytes, zip bombs, frames of
the wrong type, ragged episodes and odd shapes are one line each naming the file and the field, before anything
is decompressed or allocated; the run directory is never created for them."""

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest
from typer.testing import CliRunner

from fernn.agents.cli import app
from fernn.envs import TrajectoryDataset, TrajectoryFileError
from fernn.envs import trajectory_files


def episode(length=4, size=6, **overrides):
    arrays = {"obs": np.zeros((length + 1, size, size, 1), np.uint8), "actions": np.zeros(length + 1, np.int64),
              "rewards": np.zeros(length + 1, np.float32), "terminated": np.zeros(length + 1, bool),
              "truncated": np.zeros(length + 1, bool), "moves": np.zeros((length + 1, 2), np.int64)}
    arrays.update(overrides)
    return arrays


def write(path, episodes, lengths=None, version=1, meta=None, **extra):
    arrays = {"format": np.array("fernn-trajectories"), "version": np.array(version),
              "lengths": np.array([len(e["obs"]) - 1 for e in episodes] if lengths is None else lengths),
              "meta": np.array(json.dumps(meta or {"moves": "action"}))}
    for index, fields in enumerate(episodes):
        arrays.update({f"{key}_{index:06d}": value for key, value in fields.items()})
    arrays.update(extra)
    np.savez_compressed(path, **arrays)
    return path


def forge_header(path, member, shape, dtype="|u1"):
    """Rewrite one member's .npy header to declare ``shape`` (its data left as it is)."""
    with zipfile.ZipFile(path) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    data = contents[f"{member}.npy"]
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.uint8))
    header.update(shape=shape, descr=dtype)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    length = 10 + int.from_bytes(data[8:10], "little")
    contents[f"{member}.npy"] = buffer.getvalue() + data[length:]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, payload in contents.items():
            archive.writestr(name, payload)
    return path


def refused(path, *words):
    with pytest.raises(TrajectoryFileError) as caught:
        TrajectoryDataset.load(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and all(word in message for word in words), message
    return message


def test_a_valid_file_loads(tmp_path):
    data = TrajectoryDataset.load(write(tmp_path / "ok.npz", [episode(), episode(6)]), window=3)
    assert list(data.lengths) == [4, 6] and data.has_moves


def test_forged_lengths_are_refused_before_any_index_is_built(tmp_path):
    tracemalloc.start()
    refused(write(tmp_path / "forged.npz", [episode()], lengths=[10 ** 12]), "lengths[0]")
    assert tracemalloc.get_traced_memory()[1] < 64 << 20
    tracemalloc.stop()
    refused(write(tmp_path / "negative.npz", [episode()], lengths=[-1]), "lengths")


def test_a_header_declaring_gigabytes_is_refused(tmp_path):
    path = forge_header(write(tmp_path / "huge.npz", [episode()]), "obs_000000", (5, 100_000, 100_000, 2))
    assert path.stat().st_size < 20_000
    tracemalloc.start()
    refused(path, "obs_000000", "GiB")
    assert tracemalloc.get_traced_memory()[1] < 64 << 20
    tracemalloc.stop()
    refused(forge_header(write(tmp_path / "short.npz", [episode()]), "obs_000000", (5, 6, 6, 2)), "holds")


def test_a_zip_bomb_is_refused_by_its_declared_size(tmp_path, monkeypatch):
    monkeypatch.setattr(trajectory_files, "MAX_MEMBER_BYTES", 1 << 20)  # the bound, scaled down for the test
    bomb = write(tmp_path / "bomb.npz", [episode(length=99, size=128)])  # 4.9 MB of zeros in a few KB
    assert bomb.stat().st_size < 100_000
    refused(bomb, "obs_000000", "GiB")


@pytest.mark.parametrize("fields, words", [
    ({"obs": np.zeros((5, 6, 6, 1), np.float32)}, ("obs_000000", "uint8")),
    ({"obs": np.zeros((5, 6, 6, 1), np.int16)}, ("obs_000000", "uint8")),
    ({"obs": np.zeros((5, 6, 6), np.uint8)}, ("obs_000000", "(L + 1, H, W, C)")),
    ({"moves": np.zeros((5, 2), np.float32)}, ("moves_000000", "integer moves")),
    ({"moves": np.zeros((5, 3), np.int64)}, ("moves_000000", "integer moves")),
    ({"rewards": np.zeros(4, np.float32)}, ("rewards_000000", "lengths[0] = 4")),
    ({"terminated": np.zeros(5, np.int8)}, ("terminated_000000", "booleans")),
])
def test_fields_of_the_wrong_kind_are_named(tmp_path, fields, words):
    refused(write(tmp_path / "bad.npz", [episode(**fields)]), *words)


def test_odd_shapes_of_version_and_lengths_and_missing_episodes(tmp_path):
    refused(write(tmp_path / "v.npz", [episode()], version=np.array([1])), "version")
    refused(write(tmp_path / "l.npz", [episode()], lengths=np.array([[4]])), "lengths")
    refused(write(tmp_path / "m.npz", [episode()], lengths=[4, 4]), "episode 1")
    refused(write(tmp_path / "x.npz", [episode()], obs_000003=np.zeros((5, 6, 6, 1), np.uint8)), "beyond")
    refused(write(tmp_path / "size.npz", [episode(), episode(size=8)]), "one image size")
    (tmp_path / "text.npz").write_text("not a zip")
    refused(tmp_path / "text.npz", "not a trajectory file")


def test_a_bad_file_never_creates_the_run_directory(tmp_path):
    path = write(tmp_path / "float.npz", [episode(obs=np.zeros((5, 6, 6, 1), np.float32))])
    result = CliRunner().invoke(app, ["train", "--data", str(path), "--out", str(tmp_path / "runs"), "--epochs", "1"])
    assert result.exit_code == 2 and "uint8" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
