"""GFLOPs accounting (GMACs, the papers' convention) matches published counts."""

import pytest

from adafocus import component_gflops, preset

# Independent numbers: MobileNetV2 at 224 (AdaFocus papers: 0.2995; torchvision: 0.30)
# and ResNet-50 at 224 (torchvision: 4.09 GMACs); ResNet-50 halves its input exactly
# at every stage for 96/128/160 inputs, so its cost scales with the pixel count
# (Uni-AdaFocus quotes 1.335 at 128).
MOBILENET_V2_224 = 0.2995
RESNET50_224 = 4.09


@pytest.mark.parametrize("patch", [96, 128, 160])
def test_paper_preset_gflops_match_published_mobilenet_v2_and_resnet50(patch):
    table = component_gflops(preset("paper", patch_size=patch))
    assert table.glance == pytest.approx(MOBILENET_V2_224, rel=0.05)
    assert table.local == pytest.approx(RESNET50_224 * (patch / 224) ** 2, rel=0.05)
    assert table.local_full == pytest.approx(RESNET50_224, rel=0.05)
    parts = table.glance + table.policy + table.local + table.classifier
    assert table.full_step == pytest.approx(parts)
    # the recurrent parts are small next to the backbones
    assert table.policy + table.classifier < 0.05 * table.full_step
    print(f"paper P={patch}: " + ", ".join(f"{k}={v:.4f}" for k, v in table.as_dict().items()))


def test_resnet50_at_128_matches_the_uni_adafocus_figure():
    assert component_gflops(preset("paper")).local == pytest.approx(1.335, rel=0.01)


def test_tiny_preset_focus_step_costs_a_fraction_of_the_full_frame_network():
    table = component_gflops(preset("tiny"))
    assert 0 < table.skip_signal < 0.05 * table.glance
    assert table.full_step < 0.25 * table.local_full
