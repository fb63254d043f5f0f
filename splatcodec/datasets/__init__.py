"""Dataset-scale encoding: WebDataset shards (img2dataset / DataComp layout) or image folders in,
WebDataset shards of ``.gsplat`` samples out, on local processes or a Ray cluster (docs/datasets.md).

    >>> from splatcodec import datasets
    >>> datasets.encode_dataset("shards/", "gsplat_shards/", num_gaussians=400)   # or the CLI:
    $ splatcodec encode-dataset shards/ gsplat_shards/ --gaussians 400
    >>> for key, splats, entries in datasets.iter_gsplat("gsplat_shards/"):
    ...     caption = entries["txt"].decode()

Importing this package is cheap: webdataset and ray are imported when a shard is read or an engine runs.
"""
from ._wds import MissingDependencyError
from .engines import run_job
from .images import decode_image
from .layout import Job, plan
from .reader import gsplat_handler, iter_gsplat, shard_paths
from .run import encode_dataset
from .shard import FolderShard, ShardError, encode_shard, is_done, stats_path

__all__ = [
    "FolderShard", "Job", "MissingDependencyError", "ShardError", "decode_image", "encode_dataset", "encode_shard",
    "gsplat_handler", "is_done", "iter_gsplat", "plan", "run_job", "shard_paths", "stats_path",
]
