"""Archive audits: fsspec sources, resumable JSONL journals, Dask distribution."""
