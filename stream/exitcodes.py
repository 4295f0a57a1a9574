"""Exit statuses with a meaning, shared by every process of the pipeline.

The supervisor decides from a child's status whether to restart it (gunicorn's
boot-failure codes work the same way): a crash is restarted, a configuration
problem or a source that can never work is not, because restarting it would
only repeat the failure.
"""

EXIT_OK = 0  # stopped by a signal, or a file source ended (after `ended`)
EXIT_CRASH = 1  # an unexpected exception: restarted with backoff
EXIT_USAGE = 2  # a bad command line, config or model: one line on stderr, never restarted
EXIT_PERMANENT = 3  # a producer's source failed permanently (after `down`): not restarted
EXIT_HUNG = 4  # a producer process with a stream stuck inside libav: restarted at once
EXIT_MODEL_ERROR = EXIT_USAGE  # a worker that cannot load its model: the pipeline stops
