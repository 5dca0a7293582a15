"""The pieces of mmkdflow's tools: the benchmark, the demo pipeline, run
reports and feature plots. The scripts in ``tools/`` import them; the
``mmkdflow`` package never does."""
