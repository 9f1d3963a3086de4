"""The scale searches behind ggml's K-quants, vectorised over sub-blocks.

ggml picks each sub-block's scale (and minimum) by trying a ladder of candidate scales and keeping
the one with the least weighted error. These functions run that ladder for every sub-block of a
tensor at once. Data is laid out ``(n, blocks)``: axis 0 runs over a sub-block's ``n`` values,
so the sums that ggml accumulates left to right stay in that order (see ``floats.ordered_sum``).
Names and steps follow ggml-quants.c (``make_qkx2_quants``, ``make_qx_quants``,
``make_q3_quants``) for the case without an importance matrix.
"""

from __future__ import annotations

import numpy as np

from .floats import F32, first_abs_max, ordered_sum, rounded

GROUP_MAX_EPS = F32(1e-15)  # below this largest |x| a sub-block counts as all zeros


def _errstate():
    return np.errstate(divide="ignore", invalid="ignore", over="ignore")


def scale_and_min(
    x: np.ndarray,
    weights: np.ndarray,
    nmax: int,
    rmin: float,
    rdelta: float,
    nstep: int,
    use_mad: bool,
):
    """``make_qkx2_quants``: levels 0..nmax with a scale and a (non-positive) minimum.

    Returns (scale, -minimum, levels) with levels ``(n, blocks)`` uint8.
    """
    with _errstate():
        low = np.min(x, axis=0)
        low = np.where(low > 0, F32(0), low)
        high = np.max(x, axis=0)
        flat = high == low
        sum_w = ordered_sum(weights)
        sum_x = ordered_sum(weights * x)

        iscale = F32(nmax) / (high - low)
        scale = F32(1) / iscale
        levels = rounded(iscale * (x - low), 0, nmax)
        best = ordered_sum(weights * _error(scale * levels + low - x, use_mad))

        for step in range(nstep + 1):
            iscale = (F32(rmin) + F32(rdelta) * F32(step) + F32(nmax)) / (high - low)
            trial = rounded(iscale * (x - low), 0, nmax)
            weighted = weights * trial
            sum_l = ordered_sum(weighted)
            sum_l2 = ordered_sum(weighted * trial)
            sum_xl = ordered_sum(weighted * x)
            det = sum_w * sum_l2 - sum_l * sum_l
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / det
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det
            clipped = this_min > 0
            this_min = np.where(clipped, F32(0), this_min)
            this_scale = np.where(clipped, sum_xl / sum_l2, this_scale)
            error = ordered_sum(weights * _error(this_scale * trial + this_min - x, use_mad))
            better = (det > 0) & (error < best)
            if better.any():
                levels = np.where(better, trial, levels)
                best = np.where(better, error, best)
                scale = np.where(better, this_scale, scale)
                low = np.where(better, this_min, low)

    levels = np.where(flat, F32(0), levels).astype(np.uint8)
    return np.where(flat, F32(0), scale).astype(F32), (-low).astype(F32), levels


def _error(diff: np.ndarray, use_mad: bool) -> np.ndarray:
    return np.abs(diff) if use_mad else diff * diff


def signed_scale(x: np.ndarray, nmax: int):
    """``make_qx_quants`` with rmse_type 1 and no importance: symmetric levels -nmax..nmax-1,
    weighted by x², over 19 candidate scales. Returns (scale, levels + nmax as uint8)."""
    amax, signed = first_abs_max(x)
    zero = amax < GROUP_MAX_EPS
    weights = x * x
    weighted_x = weights * x
    with _errstate():

        def attempt(iscale):
            level = rounded(iscale * x, -nmax, nmax - 1)
            return level, ordered_sum(weighted_x * level), ordered_sum(weights * level * level)

        levels, sum_lx, sum_l2 = attempt(F32(-nmax) / signed)
        scale = np.where(sum_l2 != 0, sum_lx / sum_l2, F32(0)).astype(F32)
        best = scale * sum_lx
        for step in range(-9, 10):
            if step == 0:
                continue
            trial, sum_lx, sum_l2 = attempt(-(F32(nmax) + F32(0.1) * F32(step)) / signed)
            better = (sum_l2 > 0) & (sum_lx * sum_lx > best * sum_l2)
            if better.any():
                levels = np.where(better, trial, levels)
                scale = np.where(better, sum_lx / sum_l2, scale)
                best = np.where(better, scale * sum_lx, best)
    levels = np.where(zero, 0, levels + nmax).astype(np.uint8)
    return np.where(zero, F32(0), scale).astype(F32), levels


def refined_signed_scale(x: np.ndarray, nmax: int):
    """``make_q3_quants`` with rmse: symmetric levels, then up to five passes that move single
    values to another level when that lowers the x²-weighted error. Returns (scale, levels + nmax)."""
    amax, signed = first_abs_max(x)
    zero = amax < GROUP_MAX_EPS
    weights = x * x
    weighted_x = weights * x
    with _errstate():
        levels = rounded(F32(-nmax) / signed * x, -nmax, nmax - 1)
        sum_lx = ordered_sum(weighted_x * levels)
        sum_l2 = ordered_sum(weights * levels * levels)
        # ggml stops a block's passes once one changes nothing; such a block would never change
        # again, so each pass only needs to revisit the blocks the previous pass moved.
        active = np.arange(x.shape[1])
        for _ in range(5):
            lv, slx_all, sl2_all, moved = _refine_pass(
                x[:, active],
                weights[:, active],
                weighted_x[:, active],
                levels[:, active],
                sum_lx[active],
                sum_l2[active],
                nmax,
            )
            levels[:, active], sum_lx[active], sum_l2[active] = lv, slx_all, sl2_all
            active = active[moved]
            if not active.size:
                break
        scale = np.where(sum_l2 > 0, sum_lx / sum_l2, F32(0)).astype(F32)
    levels = np.where(zero, 0, levels + nmax).astype(np.uint8)
    return np.where(zero, F32(0), scale).astype(F32), levels


def _refine_pass(x, weights, weighted_x, levels, sum_lx, sum_l2, nmax):
    """One pass of make_q3_quants' refinement over the values of each block, in order.

    Most values keep their level, so the acceptance test runs only on the few that would move.
    """
    moved = np.zeros(x.shape[1], dtype=bool)
    for i in range(x.shape[0]):
        w, wx, level = weights[i], weighted_x[i], levels[i]  # level is a view: updated in place
        without_lx = sum_lx - wx * level
        without_l2 = sum_l2 - w * level * level
        new = rounded(x[i] * without_l2 / without_lx, -nmax, nmax - 1)
        candidates = np.flatnonzero((new != level) & (without_lx > 0))
        if not candidates.size:
            continue
        new = new[candidates]
        slx = without_lx[candidates] + wx[candidates] * new
        sl2 = without_l2[candidates] + w[candidates] * new * new
        old_lx, old_l2 = sum_lx[candidates], sum_l2[candidates]
        take = (sl2 > 0) & (slx * slx * old_l2 > old_lx * old_lx * sl2)
        chosen = candidates[take]
        level[chosen] = new[take]
        sum_lx[chosen] = slx[take]
        sum_l2[chosen] = sl2[take]
        moved[chosen] = True
    return levels, sum_lx, sum_l2, moved
