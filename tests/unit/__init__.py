"""One module at a time, in this process: no child processes, no network."""
