"""Report data (digest, agenda, metrics_page), text (render, templating) and the board overview."""

# The digest's sections cut at ``reports.digest.max_rows`` (keys of ``section_max_rows`` too), in
# order. Here, not in reports/digest.py, so that validating the config imports no report module.
DIGEST_SECTIONS = ("unbreak", "inbox", "review_queue", "moved_to_meeting", "findings")
