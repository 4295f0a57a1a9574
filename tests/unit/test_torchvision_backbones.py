"""The paper preset starts from backbone weights in torchvision's state-dict format, from
a local file: a MobileNetV2 / ResNet-50 file made here loads into f_G / f_L and gives
the very features torchvision's own model gives on the same input; a wrong file is
refused naming the problem."""

from __future__ import annotations

import pytest
import torch
import torchvision

from adafocus import AdaFocus, FullFrame, GlanceOnly, preset
from adafocus.models.glance import GlanceNet
from adafocus.models.local import LocalNet
from adafocus.models.pretrained import WeightsError, load_torchvision_backbone
from adafocus.train import parse_train_config
from adafocus.train.start import backbone_weights

PAPER = preset("paper", num_classes=5)


def saved(model: torch.nn.Module, path) -> torch.nn.Module:
    """torch.save(model.state_dict()) as torchvision users do, after giving every
    BatchNorm running statistics of its own (so that a load that missed them shows)."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    torch.save(model.state_dict(), path)
    return model.eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The two files, and torchvision's own models of them (ResNet-50 without its
    ImageNet classifier: its pooled 2048-d features, what f_L gives)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("weights")
    mobilenet = saved(torchvision.models.mobilenet_v2(weights=None), root / "mobilenet_v2.pth")
    resnet = saved(torchvision.models.resnet50(weights=None), root / "resnet50.pth")
    resnet.fc = torch.nn.Identity()
    return root, {"mobilenet_v2": mobilenet.features, "resnet50": resnet}


@pytest.mark.parametrize(("name", "ours", "side"), [
    ("mobilenet_v2", lambda: GlanceNet(PAPER), 224),  # f_G's map: MobileNetV2's features
    ("resnet50", lambda: LocalNet(PAPER), 128),  # f_L on a 128 px patch
])
@torch.no_grad()
def test_a_torchvision_file_gives_torchvisions_own_features(files, name, ours, side):
    root, reference = files
    net = ours()
    load_torchvision_backbone(net, root / f"{name}.pth")
    x = torch.randn(2, 3, side, side)
    out = net.eval()(x)
    features = out[0] if isinstance(out, tuple) else out
    assert torch.allclose(features, reference[name](x), atol=1e-5)


def test_a_wrong_or_foreign_file_is_refused_with_the_reason(files, tmp_path):
    root, _ = files
    with pytest.raises(WeightsError, match=r"not torchvision MobileNetV2 weights \(missing"):
        load_torchvision_backbone(GlanceNet(PAPER), root / "resnet50.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a torch state-dict file"):
        load_torchvision_backbone(LocalNet(PAPER), tmp_path / "junk.pth")


def test_a_run_loads_the_files_into_every_glance_and_local_network(files):
    root, _ = files
    cfg = parse_train_config({"model": {"preset": "paper",
                                        "glance_weights": str(root / "mobilenet_v2.pth"),
                                        "local_weights": str(root / "resnet50.pth")}})
    models = {"v1": AdaFocus(PAPER), "glance_only": GlanceOnly(PAPER),
              "full_frame": FullFrame(PAPER)}
    assert backbone_weights(cfg.model, models) == {
        "glance_weights": str(root / "mobilenet_v2.pth"),
        "local_weights": str(root / "resnet50.pth")}
    expected = torch.load(root / "resnet50.pth", weights_only=True)["layer4.2.bn3.running_var"]
    for net in (models["v1"].local, models["full_frame"].backbone):
        assert torch.equal(net.features.layer4[2].bn3.running_var, expected)
    expected = torch.load(root / "mobilenet_v2.pth", weights_only=True)["features.18.1.weight"]
    for net in (models["v1"].glance, models["glance_only"].backbone):
        assert torch.equal(net.features[18][1].weight, expected)
