"""batchlog's benchmark scripts: each measures contenders side by side and writes JSON."""
