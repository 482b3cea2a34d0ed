import numpy as np
import pytest
import torch

from lexppl.inputs import as_inputs, as_labels


def test_arrays_become_writable_float32_tensors_and_tensors_keep_their_dtype():
    read_only = np.arange(6, dtype=np.float64).reshape(3, 2)
    read_only.setflags(write=False)
    x = as_inputs(read_only)  # no "non-writable" warning (filterwarnings=error)
    assert x.dtype == torch.float32 and x.tolist() == read_only.tolist()
    assert as_inputs(torch.zeros(2, dtype=torch.float64)).dtype == torch.float64
    assert as_inputs(torch.arange(3)).dtype == torch.float32
    with pytest.raises(ValueError, match="x contains NaN"):
        as_inputs([[0.0, np.inf]])
    with pytest.raises(ValueError, match=r"numeric array; got list \(could not convert"):
        as_inputs([["a"]], "X")


def test_labels_are_non_negative_integer_indices_one_per_row():
    assert as_labels(np.array([0.0, 2.0, 1.0]), 3).tolist() == [0, 2, 1]
    assert as_labels(np.array([True, False]), 2).dtype == torch.long
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        as_labels([0, 1], 3)
    with pytest.raises(ValueError, match="integer class indices"):
        as_labels([0.5, 1.0], 2)
    with pytest.raises(ValueError, match=">= 0"):
        as_labels([-1, 0], 2)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_labels_refuse_non_finite_values(bad):
    # The cast to int64 would turn them into -2**63 without an error.
    with pytest.raises(ValueError, match="NaN or infinite"):
        as_labels(np.array([bad, 1.0]), 2)


def test_labels_refuse_values_beyond_the_int64_range():
    with pytest.raises(ValueError, match="beyond the int64 range"):
        as_labels(np.array([1e20, 1.0]), 2)
    with pytest.raises(ValueError, match="beyond the int64 range"):
        as_labels(torch.tensor([2.0**63, 0.0]), 2)
    assert as_labels(np.array([2.0**62, 1.0]), 2).tolist() == [2**62, 1]


def test_inputs_refuse_none_by_name():
    # numpy makes None a NaN: the error blamed the values of data that was never given.
    with pytest.raises(ValueError, match="X must be a numeric array; got None"):
        as_inputs(None, "X")
