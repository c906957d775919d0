"""Fixtures for the analytics tests: the CDNOW sample shipped in tests/data/cdnow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from clm_hub.analytics.btyd import (
    BgNbdParams,
    CustomerSummary,
    GammaGammaParams,
    fit_bg_nbd,
    fit_gamma_gamma,
    summarise_transactions,
)

CDNOW_DIR = Path(__file__).resolve().parents[1] / "data" / "cdnow"
CALIBRATION_END = "1997-09-30"


@dataclass(frozen=True, eq=False)
class Transactions:
    customer_ids: NDArray[np.int64]
    dates: NDArray[np.datetime64]
    amounts: NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class PublishedSummary:
    customer_ids: NDArray[np.int64]
    x: NDArray[np.float64]
    t_x: NDArray[np.float64]
    T: NDArray[np.float64]
    zbar: NDArray[np.float64]


@pytest.fixture(scope="session")
def cdnow_dir() -> Path:
    return CDNOW_DIR


@pytest.fixture(scope="session")
def cdnow_transactions() -> Transactions:
    """CDNOW_sample.txt: master id, sample id (1-2357), YYYYMMDD, number of CDs, dollars."""
    rows = [line.split() for line in (CDNOW_DIR / "CDNOW_sample.txt").read_text().splitlines()]
    rows = [row for row in rows if row]
    dates = [f"{row[2][:4]}-{row[2][4:6]}-{row[2][6:]}" for row in rows]
    return Transactions(
        customer_ids=np.array([int(row[1]) for row in rows], dtype=np.int64),
        dates=np.array(dates, dtype="datetime64[D]"),
        amounts=np.array([float(row[4]) for row in rows], dtype=np.float64),
    )


@pytest.fixture(scope="session")
def published_summary() -> PublishedSummary:
    path = CDNOW_DIR / "cdnow_customers_summary_with_transactions.csv"
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return PublishedSummary(
        customer_ids=data[:, 0].astype(np.int64),
        x=data[:, 1],
        t_x=data[:, 2],
        T=data[:, 3],
        zbar=data[:, 4],
    )


@pytest.fixture(scope="session")
def cdnow_summary(cdnow_transactions: Transactions) -> CustomerSummary:
    return summarise_transactions(
        cdnow_transactions.customer_ids,
        cdnow_transactions.dates,
        cdnow_transactions.amounts,
        calibration_end=CALIBRATION_END,
    )


@pytest.fixture(scope="session")
def cdnow_summary_days(cdnow_transactions: Transactions) -> CustomerSummary:
    return summarise_transactions(
        cdnow_transactions.customer_ids,
        cdnow_transactions.dates,
        cdnow_transactions.amounts,
        calibration_end=CALIBRATION_END,
        time_unit="days",
    )


@pytest.fixture(scope="session")
def bg_weeks(cdnow_summary: CustomerSummary) -> BgNbdParams:
    s = cdnow_summary
    return fit_bg_nbd(s.frequency, s.recency, s.T, time_unit="weeks")


@pytest.fixture(scope="session")
def bg_days(cdnow_summary_days: CustomerSummary) -> BgNbdParams:
    s = cdnow_summary_days
    return fit_bg_nbd(s.frequency, s.recency, s.T, time_unit="days")


@pytest.fixture(scope="session")
def gg(cdnow_summary: CustomerSummary) -> GammaGammaParams:
    return fit_gamma_gamma(cdnow_summary.frequency, cdnow_summary.monetary_value)
