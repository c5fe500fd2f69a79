"""Developer tools: the demo and helpers shared by the benchmarks."""
