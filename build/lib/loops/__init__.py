"""The application layer of bfm-stim: offline optimization, closed-loop sessions, benchmarks, CLI."""
