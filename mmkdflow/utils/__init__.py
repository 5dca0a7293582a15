"""Process-level settings of mmkdflow's tools (the CPU allocator)."""
