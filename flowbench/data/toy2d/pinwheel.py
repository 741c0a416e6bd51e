"""FFJORD's pinwheel (Grathwohl et al. 2019, ``lib/toy_data.py``): sampler and exact oracle.

Arm k in {0..4} uniform, (u, v) ~ N((1, 0), diag(0.3^2, 0.1^2)), the point
``2 (u, v) R(theta_k + 0.25 exp(u))`` with theta_k = 2 pi k / 5 and
R(a) = [[cos a, -sin a], [sin a, cos a]]. FFJORD multiplies the row vector by R, which rotates by
*minus* the angle; we reproduce that exactly. FFJORD draws n // 5 points per arm; we draw arms
i.i.d. The oracle is a change of variables with 1-D root finding (all preimages summed).
"""

from __future__ import annotations

import math

import numpy as np

from ..quadrature import bisect

PINWHEEL_ARMS = 5
PINWHEEL_RADIAL_STD = 0.3
PINWHEEL_TANGENTIAL_STD = 0.1
PINWHEEL_RATE = 0.25
PINWHEEL_SCALE = 2.0
PINWHEEL_MAX_ROOTS = 64  # most probable roots kept per monotone branch (none dropped for |x| <= 14)
PINWHEEL_FAR_RADIUS = 14.0  # |x| / 2 beyond which the angle-averaged limit is used
_CHUNK = 4096  # points per vectorised block (bounds the memory of the root arrays)


def sample_pinwheel(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arms = rng.integers(PINWHEEL_ARMS, size=n)
    feats = rng.standard_normal((n, 2)) * np.array([PINWHEEL_RADIAL_STD, PINWHEEL_TANGENTIAL_STD])
    feats[:, 0] += 1.0
    angles = 2 * np.pi * arms / PINWHEEL_ARMS + PINWHEEL_RATE * np.exp(feats[:, 0])
    c, s = np.cos(angles), np.sin(angles)
    # FFJORD's einsum("ti,tij->tj") with R = [[c, -s], [s, c]] is the row vector times R.
    out = np.stack([feats[:, 0] * c + feats[:, 1] * s, -feats[:, 0] * s + feats[:, 1] * c], axis=1)
    return PINWHEEL_SCALE * out


def log_prob_pinwheel(x: np.ndarray) -> np.ndarray:
    """Pinwheel log-density by change of variables, summing every preimage on every arm.

    Beyond |x| = 2 * PINWHEEL_FAR_RADIUS (density < e^-900) the angle map winds so fast that the
    preimages cannot all be enumerated; there the angle-averaged limit is used instead.
    """
    out = np.empty(x.shape[0])
    far = np.hypot(x[:, 0], x[:, 1]) > PINWHEEL_SCALE * PINWHEEL_FAR_RADIUS
    near_idx = np.nonzero(~far)[0]
    for start in range(0, near_idx.size, _CHUNK):
        idx = near_idx[start : start + _CHUNK]
        out[idx] = _log_pinwheel_near(x[idx])
    if far.any():
        out[far] = _log_pinwheel_far(np.hypot(x[far, 0], x[far, 1]) / PINWHEEL_SCALE)
    return out


def _log_pinwheel_far(r: np.ndarray) -> np.ndarray:
    """Angle-averaged pinwheel log-density at radius r = |x| / 2 (r > PINWHEEL_FAR_RADIUS).

    Far out the preimages are so dense that sum_roots p_uv / |f'| -> (1/2 pi) int p_uv(r, b) db
    (Poisson summation; the neglected stationary-phase terms change log p by ~0.06 at r = 14 and
    fall like e^-r/2). The b-integral is a trapezoid rule on the peak at b = 0, width sigma_v / r.
    """
    su, sv = PINWHEEL_RADIAL_STD, PINWHEEL_TANGENTIAL_STD
    z = np.linspace(-14.0, 14.0, 561)
    out = np.empty(r.size)
    for start in range(0, r.size, _CHUNK):
        rr = r[start : start + _CHUNK, None]
        b = z * (sv / rr)
        u, v = rr * np.cos(b), rr * np.sin(b)
        log_g = -0.5 * ((u - 1) / su) ** 2 - 0.5 * (v / sv) ** 2
        m = log_g.max(1)
        integral = m + np.log(np.exp(log_g - m[:, None]).sum(1) * (b[:, 1] - b[:, 0]))
        out[start : start + _CHUNK] = integral
    log_py = out - math.log(2 * math.pi * su * sv) - math.log(2 * math.pi)
    return log_py - 2 * math.log(PINWHEEL_SCALE)


def _log_pinwheel_near(x: np.ndarray) -> np.ndarray:
    # Work in the convention y = R(theta_k + rate e^u) (u, v) (column vector). FFJORD's sampler
    # rotates the other way, which is this convention mirrored in the second coordinate.
    y = x / PINWHEEL_SCALE
    r = np.hypot(y[:, 0], y[:, 1])
    alpha = np.arctan2(-y[:, 1], y[:, 0])
    rate = PINWHEEL_RATE
    n = x.shape[0]

    # With (u, v) = r (cos b, sin b), the output angle is f(b) = b + rate exp(r cos b) (+ theta_k);
    # f(b + 2 pi) = f(b) + 2 pi, and f'(b) = 1 - q(b) with q(b) = rate r sin b exp(r cos b).
    # q is unimodal on (0, pi) with its peak at b*; if q(b*) > 1, f has a local max at b1 < b*
    # and a local min at b2 > b*, giving an increasing branch [b2, b1 + 2 pi] and a decreasing one
    # [b1, b2]. Otherwise f is increasing and b1 = b2 = b* (empty decreasing branch).
    def f(b: np.ndarray, rr: np.ndarray) -> np.ndarray:
        return b + rate * np.exp(rr * np.cos(b))

    def log_q(b: np.ndarray, rr: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return math.log(rate) + np.log(rr) + np.log(np.sin(b)) + rr * np.cos(b)

    cos_star = 2 * r / (1 + np.sqrt(1 + 4 * r**2))
    b_star = np.arccos(cos_star)
    fold = log_q(b_star, r) > 0
    b1 = b_star.copy()
    b2 = b_star.copy()
    if fold.any():
        rf, bs = r[fold], b_star[fold]
        b1[fold] = bisect(lambda b: log_q(b, rf), np.zeros_like(bs), bs)
        b2[fold] = bisect(lambda b: -log_q(b, rf), bs, np.full_like(bs, np.pi))
    f1, f2 = f(b1, r), f(b2, r)

    two_pi = 2 * np.pi
    arms = np.arange(PINWHEEL_ARMS)
    target = alpha[:, None] - two_pi * arms[None, :] / PINWHEEL_ARMS  # (n, arms)
    # Roots of f(b) = target + 2 pi m. Increasing branch: f2 <= y < f1 + 2 pi (exactly one root
    # when there is no fold); decreasing branch: f2 < y <= f1. Keep the top m values: those roots
    # lie nearest b = 0 (u ~ r, small |v|), where the base density is largest.
    m_inc_low = np.ceil((f2[:, None] - target) / two_pi)
    n_inc = np.ceil((f1[:, None] + two_pi - target) / two_pi) - m_inc_low
    n_inc = np.where(fold[:, None], n_inc, 1.0)  # exactly one root; immune to rounding
    m_inc_top = m_inc_low + n_inc - 1
    m_dec_top = np.floor((f1[:, None] - target) / two_pi)
    n_dec = m_dec_top - np.floor((f2[:, None] - target) / two_pi)
    n_inc = np.clip(n_inc, 0, PINWHEEL_MAX_ROOTS).astype(np.int64)
    n_dec = np.clip(n_dec, 0, PINWHEEL_MAX_ROOTS).astype(np.int64)

    point = np.repeat(np.arange(n), PINWHEEL_ARMS)
    roots_b, roots_point = [], []
    for counts, m_top, increasing in ((n_inc, m_inc_top, True), (n_dec, m_dec_top, False)):
        counts = counts.ravel()
        if counts.sum() == 0:
            continue
        owner = np.repeat(np.arange(counts.size), counts)  # index into the (point, arm) grid
        offset = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
        level = target.ravel()[owner] + two_pi * (m_top.ravel()[owner] - offset)
        p = point[owner]
        rr = r[p]
        if increasing:
            lo, hi = b2[p], b1[p] + two_pi
            b = bisect(lambda bb, rr=rr, level=level: f(bb, rr) - level, lo, hi)
        else:
            lo, hi = b1[p], b2[p]
            b = bisect(lambda bb, rr=rr, level=level: level - f(bb, rr), lo, hi)
        roots_b.append(b)
        roots_point.append(p)
    b = np.concatenate(roots_b)
    p = np.concatenate(roots_point)
    rr = r[p]
    u, v = rr * np.cos(b), rr * np.sin(b)
    jac = np.abs(1 - rate * np.exp(u) * v)
    su, sv = PINWHEEL_RADIAL_STD, PINWHEEL_TANGENTIAL_STD
    log_base = (
        -0.5 * ((u - 1) / su) ** 2
        - 0.5 * (v / sv) ** 2
        - math.log(2 * math.pi * su * sv)
    )
    with np.errstate(divide="ignore"):
        terms = log_base - np.log(jac) - math.log(PINWHEEL_ARMS)
    m = np.full(n, -np.inf)
    np.maximum.at(m, p, terms)
    with np.errstate(invalid="ignore"):
        total = np.bincount(p, weights=np.exp(terms - m[p]), minlength=n)
        log_py = m + np.log(total)
    return log_py - 2 * math.log(PINWHEEL_SCALE)
