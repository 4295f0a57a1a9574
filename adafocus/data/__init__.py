"""Data for training and evaluating AdaFocus on streams.

- ``moving_digits``: the synthetic moving-digits scene (also the synthetic
  camera); numpy and scikit-learn only, so producers can import it cheaply.
- ``video_folder``: users' own labelled video folders (PyAV), and their
  validation split by clip.
- ``resize``: the one resize of decoded frames into a model's frame (letterbox
  when the aspect differs), shared with the live pipeline's sources.
- ``export``: scenes written as a labelled folder (H.264 clips + labels.csv).
- ``streams``: causal training sequences from either (torch ``IterableDataset``).

Only the scene is re-exported here, so this package adds no torch or PyAV import
of its own for a producer that only renders frames.
"""

from adafocus.data.moving_digits import CLASS_NAMES, MovingDigitsScene, digit_split, split_indices

__all__ = ["CLASS_NAMES", "MovingDigitsScene", "digit_split", "split_indices"]
