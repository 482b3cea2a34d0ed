"""Shared by the reproductions' tests: one torch thread (two pytest workers share two cores), and
reading the CSV files they write."""

import csv

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def read_csv():
    """A function: the rows of a CSV file, as dicts of strings."""

    def read(path):
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))

    return read
