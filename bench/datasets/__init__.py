"""Data sets as uint8 arrays: found locally or downloaded, verified, parsed once, cached.

    from bench.datasets import ArrayDataset, load_dataset, cache_dir, DATASET_NAMES
    from bench.datasets import imagefolder_files     # an ImageFolder as files on disk (file loaders)

Modules: `registry` (names, where each set comes from, the cache in front), `download`
(fetch + md5), `checksums`, `cache` (cache_dir and prepared .npz files), and one reader
per format: `cifar` (python pickles), `idx` (MNIST family), `imagefolder` (folders, tars);
`files` keeps an ImageFolder as files (extracted once) for loaders that decode themselves.
"""

from bench.datasets.arrays import ArrayDataset
from bench.datasets.cache import cache_dir
from bench.datasets.files import imagefolder_files
from bench.datasets.registry import DATASET_NAMES, FILE_DATASETS, load_dataset

__all__ = ["ArrayDataset", "DATASET_NAMES", "FILE_DATASETS", "cache_dir", "imagefolder_files", "load_dataset"]
