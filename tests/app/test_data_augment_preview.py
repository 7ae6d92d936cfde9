"""Data page, "Augmentation preview": off until asked (it loads PyTorch), then N random draws of the
training transforms on an image that has boxes; the Draws control and New draws change the grid."""

from __future__ import annotations

from tests.app.conftest import no_exceptions


def _pictures(at) -> list:
    """The preview's pictures (the Image browser tab's have other captions)."""
    return [img for element in at.get("image") for img in element.proto.imgs if img.caption.startswith("draw ")]


def test_preview_draws_n_augmented_samples(app, demo_dir):
    from detcore.data.detect import load_dataset

    at = app.run()
    no_exceptions(at)
    assert not _pictures(at)  # nothing is drawn (and no torch imported) before the user asks
    at.toggle(key="data_aug_on").set_value(True).run()
    no_exceptions(at)
    chosen = at.selectbox(key="data_aug_image").value
    assert load_dataset(demo_dir).sample_by_id()[chosen].num_objects > 0  # an image with boxes is preselected
    captions = sorted((p.caption for p in _pictures(at)), key=lambda c: int(c.split()[1]))  # in 4 columns
    assert captions == [f"draw {i}" for i in range(1, 9)]
    urls = [p.url for p in _pictures(at)]
    at.select_slider(key="data_aug_n").set_value(4).run()
    assert len(_pictures(at)) == 4
    next(b for b in at.button if b.label == "New draws").click().run()
    no_exceptions(at)
    assert len(_pictures(at)) == 4 and [p.url for p in _pictures(at)] != urls[:4]
