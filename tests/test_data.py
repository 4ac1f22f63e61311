"""Data sources: full MNIST from IDX files, checksummed resumable downloads, KTH archives -> cache,
and the clear errors when data is missing or corrupt."""

import gzip
import hashlib
import http.server
import json
import threading
from functools import partial

import numpy as np
import pytest
import torch

from fernn.envs import DataMissingError, KTHCameraDataset, load_kth, load_mnist
from fernn.envs.kth import KTH_URL, parse_sequences
from fernn.envs.mnist import MNIST_FILES, MNIST_URL
from fernn.envs.storage import download
from fernn.io import atomic_write


def write_idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def fake_mnist(root, train=60, test=10):
    folder = root / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("t10k", test)):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28)), 2051)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", np.arange(count) % 10, 2049)
    return folder


def test_full_mnist_from_idx_files_and_auto_choice(tmp_path):
    fake_mnist(tmp_path)
    full = load_mnist("test", source="full", data_dir=tmp_path)
    assert full.source == "full" and full.images.shape == (10, 28, 28) and full.labels.tolist() == list(range(10))
    assert load_mnist("train", data_dir=tmp_path).source == "full"  # auto: the full set when present
    assert load_mnist("train", data_dir=tmp_path / "empty").source == "embedded"


def test_full_mnist_missing_is_a_clear_error(tmp_path):
    with pytest.raises(DataMissingError) as error:
        load_mnist("train", source="full", data_dir=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "mnist") in message and "train-images-idx3-ubyte.gz" in message
    assert MNIST_URL in message and "download=True" in message


def test_env_variable_sets_the_data_dir(tmp_path, monkeypatch):
    fake_mnist(tmp_path)
    monkeypatch.setenv("FERNN_DATA", str(tmp_path))
    assert load_mnist("test", source="full").source == "full"


def test_corrupt_mnist_is_detected(tmp_path):
    folder = fake_mnist(tmp_path)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"not a gzip file")
    with pytest.raises(ValueError, match="corrupt MNIST file .*download again"):
        load_mnist("test", source="full", data_dir=tmp_path)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28)), 2049)
    with pytest.raises(ValueError, match="magic number"):
        load_mnist("test", source="full", data_dir=tmp_path)


@pytest.fixture()
def http_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_atomic_write_gives_the_permissions_of_a_plain_open(tmp_path):
    import os

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic_write(tmp_path / "atomic.txt", lambda tmp: tmp.write_text("x"))
    assert os.stat(tmp_path / "atomic.txt").st_mode == os.stat(plain).st_mode
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left behind


def test_download_is_checksummed_and_atomic(tmp_path, http_server):
    served, url = http_server
    payload = bytes(range(256)) * 1000
    (served / "blob.bin").write_bytes(payload)
    target = tmp_path / "out" / "blob.bin"
    download(url + "blob.bin", target, digests={"sha256": hashlib.sha256(payload).hexdigest(),
                                                "md5": hashlib.md5(payload).hexdigest()})
    assert target.read_bytes() == payload
    for digests in ({"sha256": "0" * 64}, {"sha256": hashlib.sha256(payload).hexdigest(), "md5": "0" * 32},
                    {"sha1": "0" * 40}):
        with pytest.raises(OSError, match="checksum mismatch.*the download was deleted"):
            download(url + "blob.bin", tmp_path / "bad.bin", digests=digests)
    assert not (tmp_path / "bad.bin").exists() and not (tmp_path / "bad.bin.part").exists()
    with pytest.raises(OSError, match="could not download"):
        download(url + "missing.bin", tmp_path / "missing.bin")
    assert not (tmp_path / "missing.bin").exists()


def test_download_mnist_through_a_mirror(tmp_path, http_server, monkeypatch):
    served, url = http_server
    fake_mnist(served)
    checksums = {name: {"sha256": hashlib.sha256((served / "mnist" / name).read_bytes()).hexdigest()}
                 for name in MNIST_FILES}
    monkeypatch.setattr("fernn.envs.mnist.MNIST_URL", url + "mnist/")
    monkeypatch.setattr("fernn.envs.mnist.MNIST_FILES", checksums)
    digits = load_mnist("train", source="full", data_dir=tmp_path, download=True)
    assert digits.source == "full" and len(digits) == 60


def test_kth_sequences_file_parsing():
    text = "intro\nperson01_boxing_d1\t\tframes\t1-95, 96-185\nperson13_handclapping_d3 frames 2-5,\n"
    assert parse_sequences(text) == {"person01_boxing_d1": [(0, 95), (95, 185)],
                                     "person13_handclapping_d3": [(1, 5)]}


def test_kth_missing_is_a_clear_error(tmp_path):
    with pytest.raises(DataMissingError) as error:
        load_kth("train", data_dir=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "kth") in message and "walking.zip" in message and KTH_URL in message
    assert "--download" in message


def test_kth_archives_are_decoded_cached_and_split_by_person(kth_root):
    train = load_kth("train", data_dir=kth_root)
    assert {s.person for s in train.segments} == {1, 2}
    assert {s.person for s in load_kth("val", data_dir=kth_root).segments} == {17}
    assert {s.person for s in load_kth("test", data_dir=kth_root).segments} == {21}
    assert train.frames.dtype == np.uint8 and train.frames.shape[1:] == (64, 64)
    assert len(train.segments) == 2 * 6 * 2 and train.segments[0].stop - train.segments[0].start == 36
    index = json.loads((kth_root / "kth" / "cache_64" / "index.json").read_text())
    assert len(index["videos"]) == 4 * 6
    small = load_kth("train", data_dir=kth_root, frame_size=32)
    assert small.frames.shape[1:] == (32, 32)
    # walking, jogging and running cross the frame at 1, 2, 3 px/frame: more change between frames
    change = {}
    for s in train.segments:
        first = train.offsets[s.video][0] + s.start
        clip = train.frames[first:first + 8].astype(float)
        change.setdefault(s.label, []).append(np.abs(np.diff(clip, axis=0)).mean())
    assert np.mean(change[0]) < np.mean(change[1]) < np.mean(change[2])


def test_kth_corrupt_cache_is_rebuilt(kth_root):
    cache = kth_root / "kth" / "cache_64"
    victim = sorted(cache.glob("person01_*.npy"))[0]
    victim.write_bytes(b"truncated")
    frames = load_kth("train", data_dir=kth_root).frames
    assert np.load(victim).shape[1:] == (64, 64) and len(frames) > 0


def test_kth_camera_dataset_moves_whole_clips(kth_root):
    still = KTHCameraDataset("test", data_dir=kth_root, seq_len=4, step=2, velocities=[(0, 0)], flip=False, seed=1)
    moving = KTHCameraDataset("test", data_dir=kth_root, seq_len=4, step=2, velocities=[(3, -2)], flip=False, seed=1)
    a, b = still.sample_batch(5), moving.sample_batch(5)
    assert a["frames"].shape == (5, 4, 1, 32, 32) and torch.equal(a["labels"], b["labels"])
    for t in range(4):
        assert torch.equal(b["frames"][:, t], torch.roll(a["frames"][:, t], shifts=(-2 * t, 3 * t), dims=(-2, -1)))
    assert (b["velocities"] == torch.tensor([3, -2])).all()
    with pytest.raises(ValueError, match="seq_len \\* step"):
        KTHCameraDataset("test", data_dir=kth_root, seq_len=40, step=2)
