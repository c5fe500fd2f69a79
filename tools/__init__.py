"""Developer tools: `python -m tools.demo` (make demo)."""
