"""adafocus-stream's serving side: ingestion, frame rings, the inference worker,
publishing, metrics and the command line. Uses `adafocus` only through its
public online API."""
