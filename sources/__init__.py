"""Data sources: the UCI census files (download, checksums, the embedded sample, the splits the pipeline
reads) and the MMoE paper's synthetic two-task data. Nothing here is a pipeline component."""
