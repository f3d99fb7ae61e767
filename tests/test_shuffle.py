"""Training batches are shuffled every epoch, seeded, as the authors' DataLoader(shuffle=True)."""
import numpy as np
import pytest

from raylatent.config import ConfigError, GeneratorsConfig
from raylatent.train.shuffle import epoch_batches

pytestmark = pytest.mark.ray

PATIENTS, SLICES, BATCH = 6, 20, 8


@pytest.fixture(scope="module")
def ordered(ray_session):
    """Rows as the shards hold them: patient by patient, in z order. Pixel [0, 0] is the
    patient, [0, 1] the slice."""
    rows = []
    for p in range(PATIENTS):
        for s in range(SLICES):
            img = np.zeros((4, 4), np.float32)
            img[0, 0], img[0, 1] = p, s
            rows.append({"image": img})
    return ray_session.data.from_items(rows, override_num_blocks=3).materialize()


def _epoch(ds, buffer, seed, epoch, rank=0):
    it = epoch_batches(ds.iterator(), BATCH, buffer, seed, epoch, rank)
    return [b["image"][:, 0, :2].numpy().astype(int) for b in it]  # per batch: (patient, slice) rows


def test_unshuffled_batches_are_one_patients_adjacent_slices(ordered):
    """What the loop did before: every batch a run of one patient (this is what shuffling fixes)."""
    batches = _epoch(ordered, 0, 0, 0)
    assert sum(len(set(b[:, 0])) == 1 for b in batches) >= len(batches) - PATIENTS


def test_batches_mix_patients_differ_by_epoch_and_reproduce_by_seed(ordered):
    e0, e1, again = _epoch(ordered, 2048, 0, 0), _epoch(ordered, 2048, 0, 1), _epoch(ordered, 2048, 0, 0)
    n = PATIENTS * SLICES // BATCH
    assert len(e0) == len(e1) == n  # drop_last: full batches only, every row seen once
    assert len({tuple(r) for b in e0 for r in b}) == n * BATCH
    assert min(len(set(b[:, 0])) for b in e0) >= 2 and np.mean([len(set(b[:, 0])) for b in e0]) >= 3.5
    order = lambda e: [tuple(r) for b in e for r in b]  # noqa: E731
    assert order(e0) != order(e1)  # a new order every epoch
    assert order(e0) == order(again)  # and the same one for the same seed and epoch
    assert order(_epoch(ordered, 2048, 1, 0)) != order(e0)  # another run seed, another order
    assert order(_epoch(ordered, 2048, 0, 0, rank=1)) != order(e0)  # workers draw independently


def test_shuffle_buffer_is_validated():
    with pytest.raises(ConfigError, match="generators.shuffle_buffer 4: 0 \\(off\\) or at least batch_size"):
        GeneratorsConfig(batch_size=16, shuffle_buffer=4)
    assert GeneratorsConfig(batch_size=16, shuffle_buffer=0).shuffle_buffer == 0
