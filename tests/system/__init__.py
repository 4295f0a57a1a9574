"""The whole pipeline as `adafocus-stream` runs it, driven from outside like a user."""
