"""Published test log-likelihoods on the five datasets, as :class:`PublishedResult` rows.

Papers report the average test log-likelihood L in nats (higher is better); flowbench stores
``nll = -L``. The MAF and FFJORD rows agree with the compilation in the README of
github.com/lupalab/tan (Oliva et al. 2018), which cites those tables; the neural spline flow rows
could not be checked against the paper's text when they were entered, and their source says so.
"""

from __future__ import annotations

from ...specs import PublishedResult

#: the datasets, in the papers' column order
ORDER = ("power", "gas", "hepmass", "miniboone", "bsds300")

MAF = "Papamakarios et al. 2017 (MAF), Table 1"
FFJORD = "Grathwohl et al. 2019 (FFJORD), Table 2"
NSF = "Durkan et al. 2019 (neural spline flows), Table 1 (not checked against the paper here)"

#: method -> (source, test log-likelihood per dataset in ORDER)
TEST_LOG_LIKELIHOOD: dict[str, tuple[str, tuple[float, float, float, float, float]]] = {
    "Real NVP (5)": (MAF, (-0.02, 4.78, -19.62, -13.55, 152.97)),
    "Real NVP (10)": (MAF, (0.17, 8.33, -18.71, -13.84, 153.28)),
    "MAF (5)": (MAF, (0.14, 9.07, -17.70, -11.75, 155.69)),
    "MAF (10)": (MAF, (0.24, 10.08, -17.73, -12.24, 154.93)),
    "MAF MoG (5)": (MAF, (0.30, 9.59, -17.39, -11.68, 156.36)),
    "FFJORD": (FFJORD, (0.46, 8.59, -14.92, -10.43, 157.40)),
    # Glow on these datasets is not in the Glow paper; this row is the Glow baseline the neural
    # spline flow authors trained (FFJORD's Table 2 Glow row differs and was not verified here)
    "Glow": (NSF, (0.42, 12.24, -16.99, -10.55, 156.95)),
    "RQ-NSF (C)": (NSF, (0.64, 13.09, -14.75, -9.67, 157.54)),
    "RQ-NSF (AR)": (NSF, (0.66, 13.09, -14.01, -9.22, 157.31)),
}


def published(dataset: str) -> tuple[PublishedResult, ...]:
    """The rows for one dataset, NLL = -L."""
    column = ORDER.index(dataset)
    return tuple(PublishedResult(method=method, nll=-values[column], source=source)
                 for method, (source, values) in TEST_LOG_LIKELIHOOD.items())
