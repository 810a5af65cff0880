"""Datasets: native-format readers, the synthetic benchmark, `prepare`.

Import the reader you need (`from facetransfer.data import affectnet`): this
package loads none of them itself, so a stage that only reads prepared arrays
does not import (and, in dvc.yaml, depend on) the four readers.
"""

from facetransfer.data.errors import DatasetFormatError  # the readers' error (a contract of docs/design.md)

__all__ = ["DatasetFormatError"]
