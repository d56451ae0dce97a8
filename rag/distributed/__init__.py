"""Running the pipeline's steps on a cluster: ingestion on Ray (`ray_ingest`)."""
