"""The residual-based rate uncertainty matches the spread of the estimate over noise draws."""

import numpy as np
from scipy import ndimage as ndi

from chromarate.fit.prior import windowed_ratio
from chromarate.fit.uncertainty import windowed_rate_std


def _draw(rng, den, lam, corr_px, sigma):
    noise = ndi.gaussian_filter(rng.normal(size=den.shape), corr_px)
    noise *= sigma / noise.std()
    return lam * den + noise


def test_sandwich_std_matches_the_spread_over_noise_draws():
    rng = np.random.default_rng(3)
    n = 96
    y, x = np.mgrid[:n, :n]
    den = 0.3 + 0.1 * np.cos(2 * np.pi * x / 40)
    lam = 1.5 + 0.3 * np.sin(2 * np.pi * y / 90)
    weight = np.zeros((n, n))
    weight[8:-8, 8:-8] = 1.0
    window = 6.0
    ests, preds = [], []
    for _ in range(60):
        num = _draw(rng, den, lam, 2.0, 0.05)
        est = windowed_ratio(num, den, weight, window)
        ests.append(est)
        preds.append(windowed_rate_std(num, den, weight, window, est))
    centre = (slice(30, 66), slice(30, 66))
    empirical = np.std(np.array(ests), axis=0)[centre]
    predicted = np.nanmean(np.array(preds), axis=0)[centre]
    ratio = float(np.median(predicted / empirical))
    assert 0.75 < ratio < 1.3, ratio
    # nominal 90 % intervals cover the truth on most pixels (the smoothing bias, about a third
    # of the noise here, is not in the interval)
    z = np.abs(np.array(ests) - lam)[:, 30:66, 30:66] / np.array(preds)[:, 30:66, 30:66]
    assert 0.75 < float(np.mean(z <= 1.645)) < 0.98


def test_variation_inside_the_window_widens_the_interval():
    n = 96
    y, x = np.mgrid[:n, :n]
    den = np.full((n, n), 0.3)
    weight = np.ones((n, n))
    flat = windowed_rate_std(1.5 * den, den, weight, 6.0, np.full((n, n), 1.5))
    wavy_lam = 1.5 + 0.3 * np.sin(2 * np.pi * x / 8)
    wavy = windowed_rate_std(wavy_lam * den, den, weight, 6.0, np.full((n, n), 1.5))
    assert np.nanmax(flat) < 1e-9 < np.nanmedian(wavy)


def _bump(n, width):
    y, x = np.mgrid[:n, :n]
    return 1.0 + 0.8 * np.exp(-((x - n / 2) ** 2 + (y - n / 2) ** 2) / (2 * width**2))


def test_smoothing_bias_predicts_the_error_of_a_windowed_estimate():
    """A noise-free rate seen through the window once (closed form) or twice (PINN): the
    predicted bias, from the estimate alone, is within 35 % of the actual error where the
    map curves most, and the interval with it covers what the sandwich alone misses."""
    from chromarate.fit.uncertainty import interval_std, smoothing_bias

    n, window = 128, 5.0
    truth = _bump(n, 12.0)
    support = np.zeros((n, n), bool)
    support[16:-16, 16:-16] = True
    centre = (n // 2, n // 2)
    for passes in (1, 2):
        est = ndi.gaussian_filter(truth, window * np.sqrt(passes), mode="nearest")
        predicted = smoothing_bias(est, support, window, passes=passes)
        actual = abs(est - truth)[centre]
        assert 0.65 * actual < predicted[centre] < 1.35 * actual
        # without the bias term a zero-noise interval covers nothing off the flat parts
        sd = interval_std(np.zeros((n, n)), predicted)
        inside = support & (abs(est - truth) > 1e-3)
        covered = np.mean(abs(est - truth)[inside] <= 1.645 * sd[inside])
        assert covered > 0.8


def test_split_half_std_gives_the_whole_maps_interval():
    """Two halves, each with twice the whole's noise variance (correlated noise, as after
    the kernels): the whole map (their mean) lies within 1.645 std of the truth on about
    90 % of pixels. Without the halving, or with the halves' own std, it would be 99-100 %;
    with the std of one half's difference alone, below 70 %."""
    from chromarate.fit.uncertainty import split_half_std

    rng = np.random.default_rng(3)
    shape = (256, 256)
    y, x = np.mgrid[:256, :256]
    truth = 1.5 + 0.5 * np.sin(x / 30.0) * np.cos(y / 40.0)
    sigma = 0.1 * (1.0 + x / 256.0)  # noise grows left to right: the std must follow

    def half():
        n = ndi.gaussian_filter(rng.normal(size=shape), 2.0)
        return truth + np.sqrt(2.0) * sigma * n / n.std()

    covs = []
    for _ in range(4):
        a, b = half(), half()
        std = split_half_std(a, b, np.ones(shape, bool), 16.0)
        whole = 0.5 * (a + b)
        inner = (slice(24, -24), slice(24, -24))
        covs.append(np.mean(np.abs(whole - truth)[inner] <= 1.645 * std[inner]))
        left, right = std[inner][:, :60].mean(), std[inner][:, -60:].mean()
        assert right > 1.3 * left  # the truth: 1.47
    assert 0.85 <= np.mean(covs) <= 0.95


def test_split_half_std_is_nan_outside_the_support_and_where_no_halves_map():
    from chromarate.fit.uncertainty import split_half_std

    a = np.ones((40, 40))
    b = a + 0.1
    a[:, :20] = np.nan  # the halves give no map on the left
    support = np.zeros((40, 40), bool)
    support[5:35, 5:35] = True
    std = split_half_std(a, b, support, 2.0)
    assert np.all(np.isnan(std[~support]))
    assert np.allclose(std[10:30, 25:35], 0.05)
    assert np.all(np.isnan(std[10:30, 5:10]))
