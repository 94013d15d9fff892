"""The Gradio web UI: queue, smart batching, runners, history and results tabs."""
