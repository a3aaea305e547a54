"""Magnitude masks, entry-wise aggregation and bit counts, worked out by hand."""

import torch

from fl.pruning import aggregate_kept_entries, magnitude_masks, sent_bits


def test_magnitude_masks_keep_the_largest_entries_per_device():
    state = {"w": torch.tensor([[3.0, -1.0], [0.5, -4.0]]), "b": torch.tensor([0.1, -0.2, 0.3])}
    masks = magnitude_masks(state, torch.tensor([0.0, 0.5, 0.75]))
    # device 0 keeps all; device 1 keeps the 2 largest |w| (-4, 3) and floor(1.5) = 1 of b
    assert masks["w"][0].all()
    assert masks["w"][1].tolist() == [[True, False], [False, True]]
    assert masks["b"][1].tolist() == [False, False, True]
    # device 2: floor(0.25 * 4) = 1 entry of w, floor(0.25 * 3) = 0 of b (never above budget)
    assert masks["w"][2].tolist() == [[False, False], [False, True]]
    assert masks["b"][2].tolist() == [False, False, False]


def test_ties_are_broken_by_position():
    masks = magnitude_masks({"w": torch.tensor([1.0, -1.0, 1.0, 0.5])}, torch.tensor([0.5]))
    assert masks["w"][0].tolist() == [True, True, False, False]


def test_entry_wise_aggregation_by_hand():
    old = {"w": torch.tensor([10.0, 20.0, 30.0])}
    stacked = {"w": torch.tensor([[1.0, 2.0, 0.0], [5.0, 0.0, 0.0]])}
    masks = {"w": torch.tensor([[True, True, False], [True, False, False]])}
    weights = torch.tensor([1.0, 3.0])
    new = aggregate_kept_entries(old, stacked, masks, weights)
    # entry 0 kept by both: (1*1 + 3*5) / 4 = 4; entry 1 only by device 0: 2;
    # entry 2 by nobody: the old 30 stays
    torch.testing.assert_close(new["w"], torch.tensor([4.0, 2.0, 30.0]))
    zero = aggregate_kept_entries(old, stacked, masks, weights, zero_filled=True)
    # zero-filled: (1*1 + 3*5)/4 = 4, (1*2 + 0)/4 = 0.5, 0
    torch.testing.assert_close(zero["w"], torch.tensor([4.0, 0.5, 0.0]))


def test_sent_bits_count_kept_entries():
    masks = {
        "w": torch.tensor([[True, False, True], [False, False, True]]),
        "b": torch.tensor([[True], [False]]),
    }
    assert sent_bits(masks).tolist() == [3 * 32, 1 * 32]
    assert sent_bits(masks, 16, bitmap=True).tolist() == [3 * 16 + 4, 16 + 4]
