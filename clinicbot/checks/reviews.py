"""Review checks: work handed over for review must not be forgotten.

- ``review-needed``: a task in a ``review_needed`` column has had no response from the team
  for ``days`` since it entered the column (a response, not a move: someone has to look).
- ``waiting-for-review``: a task has sat in a ``waiting_for_review`` column for ``days``
  (waiting on someone outside the team; a nudge to chase it, so only "info").
"""

from __future__ import annotations

from clinicbot.checks.dwell import ColumnDwellCheck


class ReviewNeededCheck(ColumnDwellCheck, slug="review-needed", roles=("review_needed",), severity="warning",
                        unanswered=True):
    """A task in a review-needed column has waited `days` for the team's first response."""


class WaitingForReviewCheck(ColumnDwellCheck, slug="waiting-for-review", roles=("waiting_for_review",)):
    """A task has been in a waiting-for-review column for `days`."""


__all__ = ["ReviewNeededCheck", "WaitingForReviewCheck"]
