"""rosenblatt.save / rosenblatt.load: safetensors checkpoints, round trips, interoperability,
atomic writes (a writer killed mid-save) and clear errors on damaged files."""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import zlib

import numpy as np
import pytest

import rosenblatt
from rosenblatt import nn, optim
from rosenblatt.serialization import CheckpointError
from rosenblatt.tensor import Tensor

safetensors = pytest.importorskip("safetensors")


class TwoLayers(nn.Module):
    """Parameters only (no layer library needed): a 2-layer perceptron's weights."""

    def __init__(self, hidden=4):
        super().__init__()
        self.first = nn.Module()
        self.first.weight = nn.Parameter(np.arange(3 * hidden, dtype=np.float32).reshape(hidden, 3))
        self.first.bias = nn.Parameter(np.ones(hidden, np.float32))
        self.out = nn.Parameter(np.full((2, hidden), 0.5, np.float32))
        self.register_buffer("count", Tensor(np.array(7, np.int64)))


def _equal(a, b):
    """Deep equality of loaded structures, checking types and dtypes."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.data, b.data)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _equal(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _equal(x, y)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def test_round_trip_of_nested_structures(tmp_path, rng):
    obj = {
        "model": {"fc.weight": Tensor(rng.standard_normal((3, 2)).astype(np.float32)),
                  "fc.bias": Tensor(np.zeros(3, np.float32))},
        "ids": np.arange(5, dtype=np.int64), "mask": np.array([True, False]),
        "half": np.ones((2, 2), np.float16), "double": Tensor(np.array(2.5)),  # a 0-d float64
        "empty": np.zeros((0, 4), np.float32),
        "epoch": 3, "loss": 0.25, "best": float("inf"), "worst": float("nan"), "name": "run-1",
        "flag": True, "nothing": None, "betas": (0.9, 0.999), "history": [1.0, [2, {"x": 3}]],
        "by_index": {0: {"step": 2, "buffer": Tensor(np.ones(2, np.float32))}, 10: "ten"},
        "__tensor__": "a key that looks like a tag",
        "numpy_scalar": np.float32(1.5),
    }
    path = tmp_path / "checkpoint.safetensors"
    rosenblatt.save(obj, path)
    loaded = rosenblatt.load(str(path))
    expected = dict(obj, numpy_scalar=1.5)
    _equal(loaded, expected)


def test_a_single_tensor_round_trips(tmp_path):
    rosenblatt.save(Tensor(np.arange(4, dtype=np.float32)), tmp_path / "t")
    _equal(rosenblatt.load(tmp_path / "t"), Tensor(np.arange(4, dtype=np.float32)))


def test_model_and_optimizer_state_round_trip(tmp_path, rng):
    model = TwoLayers()
    optimizer = optim.Adam(model.parameters(), lr=0.01, amsgrad=True)
    for param in model.parameters():
        param.grad = Tensor(rng.standard_normal(param.shape).astype(np.float32))
    optimizer.step()
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=2)
    path = tmp_path / "run.safetensors"
    rosenblatt.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict()}, path)

    restored = TwoLayers(hidden=4)
    for param in restored.parameters():
        param.data[...] = 0
    restored_optimizer = optim.Adam(restored.parameters(), lr=0.5, amsgrad=True)
    checkpoint = rosenblatt.load(path)
    restored.load_state_dict(checkpoint["model"])
    restored_optimizer.load_state_dict(checkpoint["optimizer"])
    for (name, a), (_, b) in zip(model.state_dict().items(), restored.state_dict().items()):
        assert np.array_equal(a.data, b.data), name
    assert restored_optimizer.param_groups[0]["lr"] == 0.01
    assert restored_optimizer.param_groups[0]["betas"] == (0.9, 0.999)
    assert restored_optimizer.state_dict()["state"][2]["step"] == 1
    assert np.array_equal(restored_optimizer.state[restored.out]["exp_avg"].data,
                          optimizer.state[model.out]["exp_avg"].data)
    assert checkpoint["scheduler"]["step_size"] == 2 and checkpoint["scheduler"]["base_lrs"] == [0.01]


def test_safetensors_reads_our_files(tmp_path):
    from safetensors.numpy import load_file
    model = TwoLayers()
    path = tmp_path / "model.safetensors"
    rosenblatt.save(model.state_dict(), path)
    tensors = load_file(str(path))
    assert sorted(tensors) == sorted(model.state_dict())
    assert np.array_equal(tensors["first.weight"], model.first.weight.data)
    with safetensors.safe_open(str(path), framework="np") as f:
        assert f.metadata()["format"] == "pt"
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file as torch_load_file
    assert torch.equal(torch_load_file(str(path))["out"], torch.from_numpy(model.out.data))


def test_we_read_files_written_by_safetensors(tmp_path):
    from safetensors.numpy import save_file
    save_file({"w": np.ones((2, 2), np.float32)}, str(tmp_path / "other.safetensors"))
    loaded = rosenblatt.load(tmp_path / "other.safetensors")
    assert list(loaded) == ["w"] and isinstance(loaded["w"], Tensor)


def test_unsavable_values_raise_type_errors(tmp_path):
    with pytest.raises(TypeError, match="state_dict"):
        rosenblatt.save(TwoLayers(), tmp_path / "m")
    with pytest.raises(TypeError, match="object"):
        rosenblatt.save({"a": object()}, tmp_path / "m")
    with pytest.raises(TypeError, match="keys"):
        rosenblatt.save({(1, 2): 3}, tmp_path / "m")
    with pytest.raises(ValueError, match="same tensor name"):
        rosenblatt.save({"a.b": np.zeros(1), "a": {"b": np.zeros(1)}}, tmp_path / "m")
    with pytest.raises(TypeError):
        rosenblatt.save({"a": np.array(["text", "array"])}, tmp_path / "m")
    with pytest.raises(ValueError, match="nested more than"):
        rosenblatt.save(_nested_lists(150), tmp_path / "m")
    assert not os.listdir(tmp_path)  # failed saves leave no file and no temporary behind


# ---- damaged files ------------------------------------------------------------------------------
@pytest.fixture
def saved_file(tmp_path, rng):
    path = tmp_path / "good.safetensors"
    rosenblatt.save({"w": Tensor(rng.standard_normal((64, 64)).astype(np.float32)), "epoch": 4}, path)
    return path


@pytest.mark.parametrize("keep", [0, 5, 8, 40, -1, -100])
def test_truncated_files_raise_clearly(saved_file, keep):
    content = saved_file.read_bytes()
    saved_file.write_bytes(content[:keep] if keep >= 0 else content[:len(content) + keep])
    with pytest.raises(CheckpointError, match="truncated|corrupt"):
        rosenblatt.load(saved_file)


def test_corrupted_tensor_bytes_are_detected(saved_file):
    content = bytearray(saved_file.read_bytes())
    content[-1000] ^= 0x40
    saved_file.write_bytes(bytes(content))
    with pytest.raises(CheckpointError, match="checksum"):
        rosenblatt.load(saved_file)


def test_corrupted_header_is_detected(saved_file):
    content = bytearray(saved_file.read_bytes())
    content[12] = ord("}")
    saved_file.write_bytes(bytes(content))
    with pytest.raises(CheckpointError, match="corrupt"):
        rosenblatt.load(saved_file)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "text").write_text("hello, this is not a checkpoint at all")
    with pytest.raises(CheckpointError):
        rosenblatt.load(tmp_path / "text")
    with pytest.raises(FileNotFoundError):
        rosenblatt.load(tmp_path / "missing")


def _nested_lists(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


def _replace_header(content: bytes, header: bytes) -> bytes:
    """content with its safetensors header replaced (and the size prefix updated)."""
    size = int.from_bytes(content[:8], "little")
    return len(header).to_bytes(8, "little") + header + content[8 + size:]


def _loads_the_same(path, expected):
    try:
        _equal(rosenblatt.load(path), expected)
    except AssertionError:
        return False
    return True


def test_changed_dtype_or_epoch_in_the_header_is_detected(tmp_path):
    path = tmp_path / "ck.safetensors"
    rosenblatt.save({"w": Tensor(np.ones(3, np.float32)), "epoch": 3}, path)
    good = path.read_bytes()
    for old, new in [(b'"F32"', b'"I32"'), (rb'\"epoch\": 3', rb'\"epoch\": 8')]:
        assert old in good
        path.write_bytes(good.replace(old, new, 1))
        with pytest.raises(CheckpointError, match="header .* does not match its checksum"):
            rosenblatt.load(path)


def test_every_single_byte_change_of_the_header_is_detected(tmp_path):
    """Each byte of the size prefix and the JSON header, replaced by bytes that keep the JSON
    plausible (digits, dtype letters, quotes, space): CheckpointError naming the file, or the same content."""
    path, damaged = tmp_path / "good.safetensors", tmp_path / "damaged.safetensors"
    obj = {"w": Tensor(np.arange(6, dtype=np.float32).reshape(2, 3)), "ids": np.arange(2, dtype=np.int16),
           "epoch": 3, "betas": (0.9, None)}
    rosenblatt.save(obj, path)
    good = path.read_bytes()
    header_end = 8 + int.from_bytes(good[:8], "little")
    undetected = []
    for position in range(header_end):
        for byte in set(b'0123456789IFUB" ') - {good[position]}:
            damaged.write_bytes(good[:position] + bytes([byte]) + good[position + 1:])
            try:
                same = _loads_the_same(damaged, obj)
            except CheckpointError as error:
                assert str(damaged) in str(error)
                continue
            if not same:
                undetected.append((position, good[max(0, position - 10):position + 10], chr(byte)))
    assert not undetected, f"{len(undetected)} changes load different content, e.g. {undetected[:5]}"


def _save_format_1(path, arrays: dict, structure: str):
    """A checkpoint as rosenblatt wrote it before format 2: no header checksum, only a CRC-32
    of the tensor names and bytes; `structure` is the JSON text of the skeleton."""
    from safetensors.numpy import save_file
    crc = 0
    for name in sorted(arrays):
        crc = zlib.crc32(arrays[name].tobytes(), zlib.crc32(name.encode(), crc))
    save_file(arrays, str(path), metadata={"format": "pt", "rosenblatt.format": "1",
                                           "rosenblatt.structure": structure, "rosenblatt.crc32": f"{crc:08x}"})


def test_format_1_files_still_load(tmp_path):
    path = tmp_path / "old.safetensors"
    arrays = {"model.w": np.arange(6, dtype=np.float32).reshape(2, 3), "ids": np.arange(3, dtype=np.int64)}
    structure = {"__dict__": [["model", {"w": {"__tensor__": "model.w"}}], ["ids", {"__ndarray__": "ids"}],
                              [0, {"step": 2, "betas": {"__tuple__": [0.9, 0.999]}}], ["epoch", 4]]}
    _save_format_1(path, arrays, json.dumps(structure))
    _equal(rosenblatt.load(path), {"model": {"w": Tensor(arrays["model.w"])}, "ids": arrays["ids"],
                                   0: {"step": 2, "betas": (0.9, 0.999)}, "epoch": 4})
    content = bytearray(path.read_bytes())
    content[-1] ^= 0x01  # the data checksum still guards format 1
    path.write_bytes(bytes(content))
    with pytest.raises(CheckpointError, match="tensor data does not match"):
        rosenblatt.load(path)


@pytest.mark.parametrize("structure, problem", [
    ('{"__dict__": 5}', "__dict__ holds 5, not a list"),
    ('{"__dict__": [5]}', r"not a \[key, value\] pair"),
    ('{"__dict__": [[1.5, 2]]}', r"not a \[key, value\] pair"),
    ('{"__dict__": [[true, 2]]}', r"not a \[key, value\] pair"),
    ('{"__dict__": [["a", 1, 2]]}', r"not a \[key, value\] pair"),
    ('{"__tuple__": 3}', "__tuple__ holds 3, not a list"),
    ('{"__tuple__": "ab"}', "__tuple__ holds 'ab', not a list"),
    ('{"__tensor__": [1]}', r"__tensor__ holds \[1\], not a tensor name"),
    ('{"x": {"__ndarray__": {"a": 1}}}', "at x: __ndarray__ holds"),
    ('{"__tensor__": "w", "x": 1}', "shares its dict with other keys"),
    pytest.param("[" * 150 + "]" * 150, "nested more than 100 levels", id="150 levels"),
    pytest.param("[" * 100_000 + "]" * 100_000, "unreadable structure .*Recursion", id="100000 levels"),
])
def test_malformed_structures_raise_checkpoint_errors(tmp_path, structure, problem):
    path = tmp_path / "malformed.safetensors"
    _save_format_1(path, {"w": np.ones(2, np.float32)}, structure)  # format 1: no header checksum to fail first
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ".*" + problem):
        rosenblatt.load(path)


def _safetensors_file(path, dtype: str, shape: list, data: bytes):
    """A one-tensor safetensors file named "w", written by hand (for dtypes NumPy lacks)."""
    header = json.dumps({"w": {"dtype": dtype, "shape": shape, "data_offsets": [0, len(data)]}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + data)


def test_bfloat16_tensors_load_as_float32(tmp_path):
    values = np.array([[1.0, -2.5, 3.140625], [np.inf, 0.0, -1.5e-40]], np.float32)
    values = (values.view(np.uint32) & 0xFFFF0000).view(np.float32)  # exactly representable in bfloat16
    bits = (values.view(np.uint32) >> 16).astype("<u2")
    _safetensors_file(tmp_path / "bf16.safetensors", "BF16", [2, 3], bits.tobytes())
    loaded = rosenblatt.load(tmp_path / "bf16.safetensors")
    _equal(loaded, {"w": Tensor(values)})


def test_bfloat16_files_written_by_torch_load(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file
    weight = torch.tensor([[0.1, -2.0], [3.5, 1e30]], dtype=torch.bfloat16)
    save_file({"weight": weight}, str(tmp_path / "torch.safetensors"))
    loaded = rosenblatt.load(tmp_path / "torch.safetensors")
    assert loaded["weight"].dtype == np.float32
    assert np.array_equal(loaded["weight"].data, weight.float().numpy())


def test_dtypes_numpy_lacks_raise_checkpoint_errors(tmp_path):
    _safetensors_file(tmp_path / "f8.safetensors", "F8_E4M3", [4], bytes(4))
    with pytest.raises(CheckpointError, match="f8.safetensors.*'w'.*F8_E4M3"):
        rosenblatt.load(tmp_path / "f8.safetensors")


def test_wrong_keys_or_shapes_at_load_state_dict(tmp_path):
    rosenblatt.save(TwoLayers(hidden=4).state_dict(), tmp_path / "m")
    state = rosenblatt.load(tmp_path / "m")
    with pytest.raises(ValueError, match=r"out.*\(2, 4\).*\(2, 5\)"):
        TwoLayers(hidden=5).load_state_dict(state)
    del state["out"]
    with pytest.raises(KeyError, match="out"):
        TwoLayers(hidden=4).load_state_dict(state)


# ---- atomic write -------------------------------------------------------------------------------
WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    import rosenblatt
    step = 0
    while True:
        step += 1
        block = np.full(1 << 20, step, np.float32)  # 4 MB per tensor, 8 tensors: ~32 MB a save
        rosenblatt.save({"step": step, "blocks": {str(i): block for i in range(8)}}, sys.argv[1])
        print(step, flush=True)
""")


def test_a_writer_killed_during_save_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    package_root = os.path.dirname(os.path.dirname(rosenblatt.__file__))
    rng = np.random.default_rng(0)
    for attempt in range(4):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), package_root],
                                  stdout=subprocess.PIPE, text=True)
        try:
            last_done = int(writer.stdout.readline())  # one complete save on disk
            time.sleep(rng.uniform(0.0, 0.3))  # then kill it somewhere in a later save
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        last_done = max([last_done] + [int(line) for line in writer.stdout.read().split()])
        writer.stdout.close()
        checkpoint = rosenblatt.load(path)
        step = checkpoint["step"]
        assert step >= last_done
        for block in checkpoint["blocks"].values():
            assert np.all(block == step), "a checkpoint mixes two saves"
    leftovers = [name for name in os.listdir(tmp_path) if name != "ckpt.safetensors"]
    assert all(name.startswith(".ckpt.safetensors.") for name in leftovers), leftovers
    assert len(leftovers) <= 1, leftovers  # each writer's first save removed its killed predecessor's


def test_save_removes_the_temporary_of_a_killed_save_and_nothing_else(tmp_path):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = f".ckpt.{finished.pid}.a1b2c3d_.tmp"  # a save killed before its rename
        kept = [f".ckpt.{running.pid}.a1b2c3d_.tmp",  # a save in progress
                f".other.{finished.pid}.a1b2c3d_.tmp", ".ckpt.a1b2c3d_.tmp", f".ckpt.{finished.pid}.tmp",
                f".ckpt.1.{finished.pid}.a1b2c3d_.tmp", "ckpt.backup"]
        for name in [stale] + kept:
            (tmp_path / name).write_bytes(b"partial")
        rosenblatt.save({"epoch": 1}, tmp_path / "ckpt")
        assert sorted(os.listdir(tmp_path)) == sorted(kept + ["ckpt"])
    finally:
        running.kill()
        running.wait()
