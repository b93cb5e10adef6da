"""Published reference scores (planet/data/published_scores.csv) and the paper's task order.

The paper's Table 1 rows (A3C, D4PG, PlaNet, CEM + true simulator; Hafner et al. 2019) are the reference of the
table, the curves' dashed lines and the aggregate; PlaNet at 100k and 500k env steps as later papers report it
(CURL, Laskin et al. 2020, Table 1) follows them in Table 1.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from planet.report.runs import finite
from planet.tasks import TASKS as TASK_TABLE

log = logging.getLogger(__name__)

PUBLISHED_SCORES = Path(__file__).parent.parent / "data" / "published_scores.csv"
# The paper's task order (Table 1; planet/tasks.py, whose names are published_scores.csv's task columns); tasks found
# in the results but not here are appended.
TASKS = tuple(TASK_TABLE)
PAPER_TABLE_SOURCE = "PlaNet Table 1"  # rows of published_scores.csv whose source starts with this are Table 1
PAPER_METHODS = ("A3C", "D4PG", "PlaNet", "CEM + true simulator")
PLANET_BUDGET_SOURCE = "CURL (ICML 2020)"  # PlaNet at 100k and 500k env steps (Laskin et al. 2020, Table 1)


def load_published(path: Path = PUBLISHED_SCORES) -> pd.DataFrame:
    """published_scores.csv; an absent file gives an empty frame (the report then has no reference rows)."""
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        log.warning("%s not found: no reference rows", path)
        return pd.DataFrame(columns=["method", "modality", "budget_env_steps", "source", *TASKS, "note"])


def paper_rows(published: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1 rows (A3C, D4PG, PlaNet, CEM + true simulator), in that order."""
    rows = published[published["source"].astype(str).str.startswith(PAPER_TABLE_SOURCE)
                     & published["method"].isin(PAPER_METHODS)]
    order = {m: i for i, m in enumerate(PAPER_METHODS)}
    return rows.sort_values("method", key=lambda s: s.map(order), ignore_index=True)


def budget_rows(published: pd.DataFrame) -> pd.DataFrame:
    """PlaNet at 100k and 500k env steps as later papers report it (CURL, Laskin et al. 2020, Table 1), by budget."""
    return published[published["source"].astype(str).str.startswith(PLANET_BUDGET_SOURCE)
                     & (published["method"] == "PlaNet")].sort_values("budget_env_steps", ignore_index=True)


def table_reference_rows(published: pd.DataFrame) -> pd.DataFrame:
    """Table 1's reference rows: the paper's four, then PlaNet at 100k and 500k env steps as later papers report it
    (the budgets a CPU can reach; issue 10's campaign compares with them)."""
    return pd.concat([paper_rows(published), budget_rows(published)], ignore_index=True)


def paper_value(published: pd.DataFrame, method: str, task: str) -> float | None:
    """One method's score on one task in the paper's Table 1, or None."""
    refs = paper_rows(published)
    value = refs.loc[refs["method"] == method, task] if task in refs.columns else pd.Series(dtype=float)
    return finite(value.iloc[0]) if len(value) else None


def later_rows(published: pd.DataFrame) -> pd.DataFrame:
    """Published rows that are not the paper's Table 1 (later papers' pixel agents at 100k / 500k env steps)."""
    return published[~published["source"].astype(str).str.startswith(PAPER_TABLE_SOURCE)]
