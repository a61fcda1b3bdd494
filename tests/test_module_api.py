"""Module's registration rules, state_dict layout, dtype casts and load_state_dict, checked against
torch.nn.Module where torch behaves the same (regressions from a fuzzing pass: /work/fuzz3)."""
import numpy as np
import pytest

import rosenblatt
from rosenblatt import nn


def _names(module):
    return [name for name, _ in module.named_parameters()]


def _values(module):
    return {key: np.array(value.data) for key, value in module.state_dict().items()}


def _assert_unchanged(module, before):
    after = _values(module)
    assert list(after) == list(before)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)


# ---- 1. assignment to a registered name -------------------------------------------------------
def test_assigning_a_tensor_to_a_parameter_raises_and_keeps_it():
    torch = pytest.importorskip("torch")
    lin = nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"Linear.*'Tensor'.*parameter 'weight'"):
        lin.weight = rosenblatt.zeros(2, 2)
    assert _names(lin) == ["weight", "bias"] and list(lin.state_dict()) == ["weight", "bias"]
    with pytest.raises(TypeError, match="parameter 'weight'"):
        torch.nn.Linear(2, 2).weight = torch.zeros(2, 2)


@pytest.mark.parametrize("value", [np.zeros(2), 0, [0.0, 0.0]], ids=["ndarray", "int", "list"])
def test_assigning_a_non_tensor_to_a_buffer_raises_and_keeps_it(value):
    torch = pytest.importorskip("torch")
    bn = nn.BatchNorm1d(2)
    keys = list(bn.state_dict())
    with pytest.raises(TypeError, match=r"BatchNorm1d.*buffer 'running_mean'"):
        bn.running_mean = value
    assert list(bn.state_dict()) == keys
    with pytest.raises(TypeError, match="buffer 'running_mean'"):
        torch.nn.BatchNorm1d(2).running_mean = value


def test_assigning_a_tensor_to_a_buffer_replaces_it_in_place():
    bn = nn.BatchNorm1d(2)
    keys = list(bn.state_dict())
    bn.running_mean = rosenblatt.ones(2)
    assert list(bn.state_dict()) == keys
    np.testing.assert_array_equal(bn.state_dict()["running_mean"].data, np.ones(2))
    assert "running_mean" not in bn.__dict__


def test_reassigning_a_parameter_keeps_its_place_in_the_order():
    torch = pytest.importorskip("torch")
    ours, theirs = nn.Linear(2, 2), torch.nn.Linear(2, 2)
    ours.weight = nn.Parameter(rosenblatt.zeros(2, 2))
    theirs.weight = torch.nn.Parameter(torch.zeros(2, 2))
    assert _names(ours) == [n for n, _ in theirs.named_parameters()] == ["weight", "bias"]
    # None keeps the slot too; a Parameter assigned later fills it again
    ours.weight, theirs.weight = None, None
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["bias"]
    ours.weight = nn.Parameter(rosenblatt.zeros(2, 2))
    theirs.weight = torch.nn.Parameter(torch.zeros(2, 2))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight", "bias"]


def test_assigning_a_non_module_to_a_child_module_raises():
    torch = pytest.importorskip("torch")
    seq = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(TypeError, match=r"Sequential.*child module '0'"):
        setattr(seq, "0", 3)
    assert isinstance(seq[0], nn.Linear)
    with pytest.raises(TypeError, match="child module '0'"):
        setattr(torch.nn.Sequential(torch.nn.Linear(2, 2)), "0", 3)


def test_a_parameter_assigned_over_a_buffer_becomes_a_parameter():
    torch = pytest.importorskip("torch")
    ours, theirs = nn.Module(), torch.nn.Module()
    ours.register_buffer("x", rosenblatt.zeros(2), persistent=False)
    theirs.register_buffer("x", torch.zeros(2), persistent=False)
    ours.x = nn.Parameter(rosenblatt.zeros(2))
    theirs.x = torch.nn.Parameter(torch.zeros(2))
    assert _names(ours) == ["x"] and list(ours.buffers()) == []
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["x"]


# ---- 2. register_* validation -------------------------------------------------------------------
REGISTER = {
    "buffer": (lambda m, name, rb: m.register_buffer(name, rb.zeros(1)),
               lambda m, name, torch: m.register_buffer(name, torch.zeros(1))),
    "parameter": (lambda m, name, rb: m.register_parameter(name, nn.Parameter(rb.zeros(1))),
                  lambda m, name, torch: m.register_parameter(name, torch.nn.Parameter(torch.zeros(1)))),
    "module": (lambda m, name, rb: m.add_module(name, nn.ReLU()),
               lambda m, name, torch: m.add_module(name, torch.nn.ReLU())),
}


@pytest.mark.parametrize("kind", list(REGISTER))
@pytest.mark.parametrize("name, error", [(1, TypeError), ("a.b", KeyError), ("", KeyError),
                                         ("training", KeyError), ("forward", KeyError)])
def test_register_rejects_bad_names_as_torch(kind, name, error):
    torch = pytest.importorskip("torch")
    ours, theirs = REGISTER[kind]
    module = nn.Module()
    with pytest.raises(error, match="Module"):
        ours(module, name, rosenblatt)
    assert module.state_dict() == {} and list(module.children()) == [] and module.training is True
    with pytest.raises(error):
        theirs(torch.nn.Module(), name, torch)


@pytest.mark.parametrize("kind, name", [("buffer", "weight"), ("module", "weight"), ("parameter", "running_mean"),
                                        ("module", "running_mean"), ("buffer", "inner"), ("parameter", "inner")])
def test_register_rejects_a_name_in_another_registry(kind, name):
    torch = pytest.importorskip("torch")
    ours, theirs = REGISTER[kind]

    def build(lib, tensors):
        module = lib.Module()
        module.weight = lib.Parameter(tensors.zeros(2))
        module.register_buffer("running_mean", tensors.zeros(2))
        module.inner = lib.ReLU()
        return module

    module = build(nn, rosenblatt)
    keys = list(module.state_dict())
    with pytest.raises(KeyError, match=f"Module.*attribute '{name}' already exists"):
        ours(module, name, rosenblatt)
    assert list(module.state_dict()) == keys and module.weight.shape == (2,)
    assert isinstance(module.inner, nn.ReLU)
    with pytest.raises(KeyError, match="already exists"):
        theirs(build(torch.nn, torch), name, torch)


def test_register_refuses_a_plain_attribute_of_the_same_name():
    """As torch: a plain attribute (None included) is not silently turned into a registered one."""
    module = nn.Module()
    module.x = None
    with pytest.raises(KeyError, match="attribute 'x' already exists"):
        module.register_parameter("x", None)
    module.y = 3
    with pytest.raises(KeyError, match="attribute 'y' already exists"):
        module.register_buffer("y", rosenblatt.zeros(1))
    assert module.y == 3
    assert list(nn.Conv2d(1, 1, 1, bias=False).state_dict()) == ["weight"]
    assert nn.Conv2d(1, 1, 1, bias=False).bias is None


def test_register_same_registry_again_replaces():
    module = nn.Linear(2, 2)
    module.register_parameter("weight", nn.Parameter(rosenblatt.zeros(3)))
    module.register_parameter("bias", None)
    assert _names(module) == ["weight"] and module.weight.shape == (3,)
    module.register_buffer("b", rosenblatt.zeros(1))
    module.register_buffer("b", None)
    assert "b" not in module.state_dict()


def test_register_rejects_values_of_the_wrong_kind():
    torch = pytest.importorskip("torch")
    module = nn.Module()
    with pytest.raises(TypeError, match=r"Module.*'list'.*buffer 'x'"):
        module.register_buffer("x", [1, 2])
    with pytest.raises(TypeError, match=r"Module.*'Tensor'.*parameter 'w'"):
        module.register_parameter("w", rosenblatt.zeros(2))
    with pytest.raises(TypeError, match=r"Module.*int is not a Module subclass"):
        module.add_module("m", 3)
    assert module.state_dict() == {} and list(module.children()) == []
    with pytest.raises(TypeError):
        torch.nn.Module().register_buffer("x", [1, 2])
    with pytest.raises(TypeError):
        torch.nn.Module().register_parameter("w", torch.zeros(2))
    with pytest.raises(TypeError):
        torch.nn.Module().add_module("m", 3)


def test_module_dict_key_cannot_shadow_an_attribute():
    torch = pytest.importorskip("torch")
    with pytest.raises(KeyError, match="ModuleDict.*'training'"):
        nn.ModuleDict({"training": nn.ReLU()})
    with pytest.raises(KeyError):
        torch.nn.ModuleDict({"training": torch.nn.ReLU()})


def test_re_registering_a_buffer_sets_its_persistence():
    torch = pytest.importorskip("torch")
    ours, theirs = nn.Module(), torch.nn.Module()
    ours.register_buffer("b", rosenblatt.zeros(2), persistent=False)
    theirs.register_buffer("b", torch.zeros(2), persistent=False)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == []
    ours.register_buffer("b", rosenblatt.ones(2), persistent=True)
    theirs.register_buffer("b", torch.ones(2), persistent=True)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["b"]
    ours.register_buffer("b", rosenblatt.ones(2), persistent=False)
    theirs.register_buffer("b", torch.ones(2), persistent=False)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == []


def test_deleting_a_non_persistent_buffer_forgets_it():
    module = nn.Module()
    module.register_buffer("b", rosenblatt.zeros(2), persistent=False)
    del module.b
    module.register_buffer("b", rosenblatt.zeros(2))
    assert list(module.state_dict()) == ["b"]


# ---- 3. a sub-module registered under two names ----------------------------------------------------
def _shared(lib):
    class Shared(lib.Module):
        def __init__(self):
            super().__init__()
            layer = lib.Linear(2, 2)
            self.a, self.b, self.c = layer, lib.ReLU(), layer
    return Shared()


def test_shared_module_state_dict_lists_both_prefixes_as_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = _shared(nn), _shared(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["a.weight", "a.bias", "c.weight", "c.bias"]
    assert _names(ours) == [n for n, _ in theirs.named_parameters()] == ["a.weight", "a.bias"]
    assert len(list(ours.parameters())) == 2


def test_shared_module_loads_torch_checkpoint_strictly_and_back():
    torch = pytest.importorskip("torch")
    ours, theirs = _shared(nn), _shared(torch.nn)
    missing, unexpected = ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert missing == [] and unexpected == []
    np.testing.assert_array_equal(ours.a.weight.data, theirs.a.weight.detach().numpy())
    assert ours.a is ours.c
    fresh = _shared(torch.nn)
    fresh.load_state_dict({k: torch.tensor(np.array(v.data)) for k, v in ours.state_dict().items()})
    np.testing.assert_array_equal(fresh.c.bias.detach().numpy(), ours.c.bias.data)


def test_module_cycle_state_dict_is_a_clear_error():
    outer = nn.Sequential(nn.Linear(2, 2))
    inner = nn.Sequential()
    outer.add_module("1", inner)
    inner.add_module("back", outer)
    assert len(list(outer.modules())) == 3
    with pytest.raises(ValueError, match="contains itself"):
        outer.state_dict()


# ---- 4. dtype casts -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [rosenblatt.int64, "long", "bool", np.int32])
def test_to_integer_or_bool_dtype_raises_as_torch(dtype):
    torch = pytest.importorskip("torch")
    lin = nn.Linear(2, 2)
    before = _values(lin)
    with pytest.raises(TypeError, match="Linear.to only accepts floating point"):
        lin.to(dtype)
    assert lin.weight.dtype == np.float32
    _assert_unchanged(lin, before)
    with pytest.raises(TypeError, match="only accepts floating point"):
        torch.nn.Linear(2, 2).to(torch.int64)


def test_to_an_integer_tensor_raises():
    lin = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="floating point"):
        lin.to(rosenblatt.tensor([1, 2]))
    assert lin.weight.dtype == np.float32


def test_float_and_double_cast_floating_tensors_only_as_torch():
    torch = pytest.importorskip("torch")
    ours = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    theirs = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ours(rosenblatt.ones(3, 2)).sum().backward()
    assert ours.double() is ours
    theirs.double()
    for (key, value), (their_key, their_value) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert key == their_key
        assert str(value.dtype) == str(their_value.dtype).replace("torch.", ""), key
    assert ours[0].weight.grad.dtype == np.float64
    assert ours.float() is ours
    assert ours[0].weight.dtype == ours[1].running_var.dtype == ours[0].weight.grad.dtype == np.float32
    assert ours[1].num_batches_tracked.dtype == np.int64


# ---- 5. load_state_dict is all or nothing ----------------------------------------------------------
def _checkpoint(model, fill=7.0):
    return {key: np.full(value.shape, fill) for key, value in model.state_dict().items()}


def test_shape_mismatches_all_listed_and_nothing_loaded():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4), nn.Linear(4, 1))
    before = _values(model)
    state = _checkpoint(model)
    state["1.weight"] = np.zeros((5, 5))
    state["2.bias"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"Sequential.*1\.weight.*\(5, 5\).*\(4, 3\).*2\.bias.*\(3,\).*\(1,\)"):
        model.load_state_dict(state)
    _assert_unchanged(model, before)
    with pytest.raises(ValueError, match=r"2\.bias"):
        model.load_state_dict(state, strict=False)
    _assert_unchanged(model, before)


def test_strict_key_errors_listed_with_shape_errors():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4))
    before = _values(model)
    state = _checkpoint(model)
    state["1.weight"] = np.zeros((5, 5))
    del state["1.bias"]
    state["extra"] = np.zeros(1)
    with pytest.raises(ValueError, match=r"1\.weight.*missing keys \['1\.bias'\].*unexpected keys \['extra'\]"):
        model.load_state_dict(state)
    _assert_unchanged(model, before)


def test_strict_key_errors_alone_load_nothing():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4))
    before = _values(model)
    state = _checkpoint(model)
    state["extra"] = np.zeros(1)
    with pytest.raises(KeyError, match=r"Sequential.*unexpected keys \['extra'\]"):
        model.load_state_dict(state)
    _assert_unchanged(model, before)


def test_non_strict_loads_the_keys_present():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4))
    before = _values(model)
    state = _checkpoint(model)
    del state["1.bias"]
    state["extra"] = np.zeros(1)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == ["1.bias"] and unexpected == ["extra"]
    after = _values(model)
    assert all((after[key] == 7.0).all() for key in ("0.weight", "0.bias", "1.weight"))
    np.testing.assert_array_equal(after["1.bias"], before["1.bias"])


def test_unconvertible_value_loads_nothing():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    before = _values(model)
    state = _checkpoint(model)
    state["1.bias"] = np.array(["x"])
    with pytest.raises(ValueError, match=r"Sequential.*1\.bias"):
        model.load_state_dict(state)
    _assert_unchanged(model, before)
