"""The equivalence tests' matcher must fail on a real difference: a moved box, a changed class, a
score off by more than the tolerance, a missing box. It forgives only what a 1e-4 score difference
can do at a cut inside the model: a tie swapped at the bottom of one class's list."""

import numpy as np

from detcore.structures import Detections
from tests.export.conftest import pair_detections


def _dets(boxes, scores, labels):
    return Detections("x", np.asarray(boxes, np.float32), np.asarray(scores, np.float32), np.asarray(labels))


def _grid(n):
    boxes = [[10 * i, 0, 10 * i + 8, 8] for i in range(n)]
    scores = np.linspace(0.9, 0.3, n)
    return boxes, scores, [1] * n


def test_identical_detections_all_pair():
    ref = _dets(*_grid(50))
    pairs, missing, extra = pair_detections(ref, _dets(*_grid(50)))
    assert len(pairs) == 50 and not missing and not extra


def test_a_moved_box_a_new_class_a_far_score_and_a_lost_box_are_each_caught():
    boxes, scores, labels = _grid(50)
    ref = _dets(boxes, scores, labels)
    for change in ("move", "class", "score", "drop"):
        b, s, lab = [list(x) for x in boxes], scores.copy(), list(labels)
        if change == "move":
            b[10] = [b[10][0] + 3, 0, b[10][2] + 3, 8]
        elif change == "class":
            lab[10] = 2
        elif change == "score":
            s[10] += 0.01
        else:
            del b[10], lab[10]
            s = np.delete(s, 10)
        _, missing, extra = pair_detections(ref, _dets(b, s, lab))
        assert missing or extra, change


def test_a_tie_swapped_at_the_bottom_of_a_class_is_forgiven_anywhere_else_it_is_caught():
    boxes, scores, labels = _grid(50)
    ref = _dets(boxes, scores, labels)
    swapped = [list(x) for x in boxes]
    swapped[49] = [500, 100, 520, 120]  # the class's last candidate: another box of (almost) the same score
    _, missing, extra = pair_detections(ref, _dets(swapped, scores + np.float32(1e-4), labels))
    assert not missing and not extra
    swapped[30] = [600, 100, 620, 120]  # the same above the bottom of the list is a real difference
    _, missing, extra = pair_detections(ref, _dets(swapped, scores, labels))
    assert missing == [30] and len(extra) == 1
