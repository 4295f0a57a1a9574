"""AdaFocus, its components and the baselines it is compared with (plain nn.Modules
configured by one AdaFocusConfig)."""

from adafocus.models.adafocus import AdaFocus, ClipOutput, Focus
from adafocus.models.baselines import FullFrame, GlanceOnly, RecurrentBaseline
from adafocus.models.classifier import RecurrentClassifier
from adafocus.models.crop import crop_bilinear, crop_exact, grid_origins, patch_boxes
from adafocus.models.glance import GlanceNet
from adafocus.models.local import LocalNet
from adafocus.models.policy import ContinuousPolicy, GridPolicy, PolicyOutput

__all__ = [
    "AdaFocus", "ClipOutput", "Focus", "FullFrame", "GlanceOnly", "RecurrentBaseline",
    "GlanceNet", "LocalNet", "GridPolicy",
    "ContinuousPolicy", "PolicyOutput", "RecurrentClassifier", "crop_exact",
    "crop_bilinear", "grid_origins", "patch_boxes",
]
