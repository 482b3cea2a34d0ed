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
