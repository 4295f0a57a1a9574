"""A training run small enough for a test: every stage of the moving-digits recipe
(the scene's own boxes, float32) runs, for a few steps."""

TINY_RUN = {
    "data": {"train_scenes": 4, "val_scenes": 2, "seq_len": 4, "batch_size": 2},
    "pretrain": {"steps": 2, "batch_size": 4},
    "precision": "float32",
    "boxes": {"source": "truth", "glance_steps": 2, "steps": 2, "batch_size": 2},
    "baselines": {"glance": {"steps": 2}, "full": {"steps": 2}},
    "v1": {"warmup": {"steps": 4}, "ppo": {"steps": 2}, "finetune": {"steps": 2}},
    "v2": {"train": {"steps": 2}},
    "calibration": {"sequences": 2, "seq_len": 8},
    "output": {"save_every": 2},
    "model": {"overrides": {"local_channels": [8, 16], "local_strides": [2, 2],
                            "glance_channels": [8, 16], "glance_strides": [2, 2]}},
}
