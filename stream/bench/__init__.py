"""`adafocus-stream bench`: the real pipeline's real-time capacity, latency,
compute and accuracy with AdaFocus against the full-frame network.

Modules: main (the subcommand), media (encoded clips + label sidecars), models
(the variants' model files), probe (one pipeline run, measured), analysis (the
rules), search (capacity), costs and procstat (CPU accounting), report (outputs).
"""
