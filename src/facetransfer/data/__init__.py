"""Datasets: native-format readers, the synthetic benchmark, `prepare`."""

from facetransfer.data import affectnet, ckplus, ferplus, unbc
from facetransfer.data.errors import DatasetFormatError

__all__ = ["affectnet", "ckplus", "ferplus", "unbc", "DatasetFormatError"]
