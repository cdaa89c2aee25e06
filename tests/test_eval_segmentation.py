"""mIoU / pixel accuracy on hand-made masks, the segmenter network, and segmenters loaded by path."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spadekit import SpadekitError
from spadekit.eval.segmentation import (
    FeatureSegmenter,
    SegmenterNet,
    confusion_matrix,
    iou_per_class,
    load_segmenter,
    mean_iou,
    photometric_jitter,
    pixel_accuracy,
    segmentation_confusion,
    segmentation_scores,
    train_segmenter,
)

IGNORE = 255
TARGET = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, IGNORE]])
PREDICTION = np.array([[0, 1, 1, 1], [0, 0, 1, 2], [2, 2, 0, 0]])


def test_metrics_on_hand_made_masks():
    conf = confusion_matrix(TARGET, PREDICTION, num_classes=4, ignore_index=IGNORE)
    # By hand, ignoring the bottom-right pixel (11 pixels counted):
    # class 0: TP 3, FP 1 (GT 2 -> 0), FN 1 (-> 1): 3/5.  class 1: TP 3, FP 1, FN 1: 3/5.
    # class 2: TP 2, FP 1 (GT 1 -> 2), FN 1 (-> 0): 2/4.  class 3: in neither, left out.
    assert conf.sum() == 11
    assert conf[0].tolist() == [3, 1, 0, 0] and conf[2].tolist() == [1, 0, 2, 0]
    assert mean_iou(conf) == pytest.approx((3 / 5 + 3 / 5 + 2 / 4) / 3)
    assert pixel_accuracy(conf) == pytest.approx(8 / 11)
    ious = iou_per_class(conf)
    assert np.isnan(ious[3])
    scores = segmentation_scores(conf, ["sky", "sea", "grass", "tree"])
    assert scores["iou_per_class"] == pytest.approx({"sky": 0.6, "sea": 0.6, "grass": 0.5})


def test_a_class_only_predicted_counts_with_iou_zero():
    prediction = PREDICTION.copy()
    prediction[0, 1] = 3  # was a wrong "1" on a GT-0 pixel; now a wrong "3"
    conf = confusion_matrix(TARGET, prediction, num_classes=4, ignore_index=IGNORE)
    # class 0 unchanged 3/5; class 1 loses its FP: 3/4; class 2: 2/4; class 3: 0/1.
    assert mean_iou(conf) == pytest.approx((3 / 5 + 3 / 4 + 2 / 4 + 0) / 4)
    assert pixel_accuracy(conf) == pytest.approx(8 / 11)


def test_perfect_prediction_and_errors():
    conf = confusion_matrix(TARGET, np.where(TARGET == IGNORE, 0, TARGET), 3, ignore_index=IGNORE)
    assert mean_iou(conf) == 1.0 and pixel_accuracy(conf) == 1.0
    with pytest.raises(SpadekitError, match="outside 0..2"):
        confusion_matrix(TARGET, PREDICTION, 3)  # 255 without ignore_index
    with pytest.raises(SpadekitError, match="differ in size"):
        confusion_matrix(TARGET, PREDICTION[:2], 3, IGNORE)


def test_segmenter_shapes_and_save_reload(tmp_path):
    model = SegmenterNet(num_classes=5, width=8, depth=2, class_names=list("abcde")).eval()
    images = torch.rand(2, 3, 30, 44) * 2 - 1  # sizes that do not divide by 4
    logits = model(images)
    assert logits.shape == (2, 5, 30, 44)
    model.save_pretrained(tmp_path / "seg")
    assert sorted(p.name for p in (tmp_path / "seg").iterdir()) == ["config.json", "model.safetensors"]
    again = load_segmenter(tmp_path / "seg")
    assert isinstance(again, SegmenterNet) and again.config.class_names == list("abcde")
    torch.testing.assert_close(again(images), logits)


def test_feature_segmenter_trains_and_saves_only_its_head(tmp_path):
    """A head on frozen VGG16 features: logits at the input size, gradients reach the head and not
    the backbone, the folder holds the head alone and loads back (backbone from the weight cache)."""
    from spadekit.weights import vgg16_weights_path

    torch.manual_seed(0)
    model = FeatureSegmenter(num_classes=4, width=8, class_names=list("abcd"), input_size=32)
    images = torch.rand(2, 3, 30, 44) * 2 - 1
    logits = model(images)
    assert logits.shape == (2, 4, 30, 44)
    logits.square().mean().backward()
    head = [p for name, p in model.named_parameters() if not name.startswith("backbone.")]
    assert head and all(p.grad is not None and p.grad.abs().sum() > 0 for p in head)
    assert all(p.grad is None and not p.requires_grad for p in model.backbone.parameters())
    # the backbone is the cached ImageNet VGG16, not random
    from spadekit.models.vgg import load_state_dict_file

    torch.testing.assert_close(model.backbone.features[0].weight, load_state_dict_file(vgg16_weights_path())["features.0.weight"].float())
    model.save_pretrained(tmp_path / "seg")
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "seg" / "model.safetensors"))
    assert saved and not any(k.startswith("backbone.") for k in saved)
    again = load_segmenter(tmp_path / "seg")
    assert isinstance(again, FeatureSegmenter) and again.config.backbone == "vgg16" and again.config.input_size == 32
    torch.testing.assert_close(again(images), model.eval()(images))
    assert torch.equal(again.predict(images), model.predict(images))


def test_feature_segmenter_learns_a_colour_rule():
    def item(i):
        image = -torch.ones(3, 32, 32) * 0.5
        label = torch.zeros(32, 32, dtype=torch.long)
        cols = slice(0, 16) if i % 2 else slice(16, 32)
        image[0, :, cols] = 0.8
        label[:, cols] = 1
        return {"image": image, "label": label[None]}

    dataset = [item(i) for i in range(4)]
    model = train_segmenter(dataset, num_classes=2, steps=30, batch_size=2, lr=1e-2, width=8, backbone="vgg16", progress=False)
    images = torch.stack([d["image"] for d in dataset])
    labels = torch.stack([d["label"][0] for d in dataset])
    assert pixel_accuracy(segmentation_confusion(model, images, labels, num_classes=2)) > 0.9


def test_segmenter_runs_at_its_training_width(tmp_path):
    """config.input_size: predict() resizes images to the training width and the labels back."""
    torch.manual_seed(0)
    model = SegmenterNet(num_classes=4, width=8, depth=2, input_size=32).eval()
    images = torch.rand(2, 3, 48, 64) * 2 - 1
    labels = model.predict(images)
    assert labels.shape == (2, 48, 64)
    small = F.interpolate(images, size=(24, 32), mode="bilinear", align_corners=False, antialias=True)
    expected = F.interpolate(model(small), size=(48, 64), mode="bilinear", align_corners=False).argmax(1)
    assert torch.equal(labels, expected)
    assert not torch.equal(labels, model(images).argmax(1))  # not the same as running at full size
    model.save_pretrained(tmp_path / "seg")
    assert load_segmenter(tmp_path / "seg").config.input_size == 32
    # folders written before input_size existed still load, and run at the size they are given
    config = json.loads((tmp_path / "seg" / "config.json").read_text())
    del config["input_size"]
    (tmp_path / "seg" / "config.json").write_text(json.dumps(config))
    old = load_segmenter(tmp_path / "seg")
    assert old.config.input_size is None and torch.equal(old.predict(images), model(images).argmax(1))


def test_train_segmenter_learns_a_colour_rule():
    # Class = which half of the image is red: a segmenter must learn colour -> class.
    def item(i):
        image = -torch.ones(3, 16, 16)
        label = torch.zeros(16, 16, dtype=torch.long)
        cols = slice(0, 8) if i % 2 else slice(8, 16)
        image[0, :, cols] = 1.0
        label[:, cols] = 1
        label[0, 0] = 2  # a dontcare pixel, ignored by the loss
        return {"image": image, "label": label[None]}

    dataset = [item(i) for i in range(8)]
    model = train_segmenter(dataset, num_classes=2, steps=60, batch_size=4, lr=3e-3, width=8, depth=1, ignore_index=2, progress=False)
    images = torch.stack([d["image"] for d in dataset])
    labels = torch.stack([d["label"][0] for d in dataset])
    conf = segmentation_confusion(model, images, labels, num_classes=2, ignore_index=2)
    assert pixel_accuracy(conf) > 0.95
    with pytest.raises(SpadekitError, match="holds class 2"):
        train_segmenter(dataset, num_classes=2, steps=1, width=8, depth=1, progress=False)


def test_photometric_jitter_changes_exposure_within_its_strength():
    images = torch.rand(64, 3, 8, 8) * 1.6 - 0.8
    assert torch.equal(photometric_jitter(images, 0.0, torch.Generator().manual_seed(0)), images)
    out = photometric_jitter(images, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(out, photometric_jitter(images, 0.5, torch.Generator().manual_seed(0)))  # seeded
    assert out.shape == images.shape and out.min() >= -1 and out.max() <= 1
    # mean brightness ratios spread out, but within exp(+-(s + s/4)) and the gamma of exp(+-s/2)
    ratio = ((out + 1) / 2).mean(dim=(1, 2, 3)) / ((images + 1) / 2).mean(dim=(1, 2, 3))
    assert ratio.std() > 0.1 and ratio.min() > 0.25 and ratio.max() < 3.5
    # the picture stays the same picture: pixel order within each image is (nearly) kept
    corr = [np.corrcoef(a.flatten(), b.flatten())[0, 1] for a, b in zip(images[:, 0], out[:, 0])]
    assert min(corr) > 0.8


def test_train_segmenter_with_jitter_still_learns_a_colour_rule():
    def item(i):
        image = -torch.ones(3, 16, 16) * 0.5
        label = torch.zeros(16, 16, dtype=torch.long)
        cols = slice(0, 8) if i % 2 else slice(8, 16)
        image[0, :, cols] = 0.8
        label[:, cols] = 1
        return {"image": image, "label": label[None]}

    dataset = [item(i) for i in range(8)]
    model = train_segmenter(dataset, num_classes=2, steps=60, batch_size=4, lr=3e-3, width=8, depth=1, progress=False, color_jitter=0.5)
    images = torch.stack([d["image"] for d in dataset])
    darker = images * 0.5 - 0.5  # half the brightness
    labels = torch.stack([d["label"][0] for d in dataset])
    assert pixel_accuracy(segmentation_confusion(model, darker, labels, num_classes=2)) > 0.9


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_torchscript_segmenter_by_path(tmp_path):
    model = SegmenterNet(num_classes=3, width=8, depth=1).eval()
    images = torch.rand(1, 3, 16, 16) * 2 - 1
    torch.jit.trace(model, images).save(str(tmp_path / "seg.pt"))
    loaded = load_segmenter(tmp_path / "seg.pt")
    assert torch.equal(loaded.predict(images), model.predict(images))


def test_onnx_segmenter_by_path_upsamples_logits(tmp_path):
    onnx = pytest.importorskip("onnx")  # part of the [onnx] extra that `make setup` installs
    from onnx import TensorProto, helper, numpy_helper

    # A hand-built graph: 1x1 conv picking channel c as the logit of class c, at half resolution.
    weight = numpy_helper.from_array(np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1), "w")
    graph = helper.make_graph(
        [helper.make_node("AveragePool", ["images"], ["half"], kernel_shape=[2, 2], strides=[2, 2]), helper.make_node("Conv", ["half", "w"], ["logits"])],
        "seg",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["b", 3, "h", "w"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 3, "h2", "w2"])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "seg.onnx")
    images = -torch.ones(1, 3, 8, 8)
    images[0, 2, :, :4] = 1  # left half: class 2
    images[0, 0, :, 4:] = 1  # right half: class 0
    labels = load_segmenter(tmp_path / "seg.onnx").predict(images)
    assert labels.shape == (1, 8, 8)
    assert (labels[0, :, :4] == 2).all() and (labels[0, :, 4:] == 0).all()


def test_load_segmenter_errors(tmp_path):
    with pytest.raises(SpadekitError, match="does not exist"):
        load_segmenter(tmp_path / "missing.pt")
    (tmp_path / "seg.h5").write_bytes(b"x")
    with pytest.raises(SpadekitError, match="unknown file type"):
        load_segmenter(tmp_path / "seg.h5")
    (tmp_path / "bad.pt").write_bytes(b"x")
    with pytest.raises(SpadekitError, match="bad.pt"):
        load_segmenter(tmp_path / "bad.pt")
    (tmp_path / "folder").mkdir()
    with pytest.raises(SpadekitError, match="train-segmenter"):
        load_segmenter(tmp_path / "folder")


def test_segmenter_with_too_many_classes_is_reported():
    model = SegmenterNet(num_classes=6, width=8, depth=1).eval()
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([0, 0, 0, 0, 0, 100.0]))
    with pytest.raises(SpadekitError, match="label set has 3 classes"):
        segmentation_confusion(model, torch.zeros(1, 3, 8, 8), torch.zeros(1, 8, 8, dtype=torch.long), num_classes=3)
