"""Report data (build), text (render, templating) and the board overview."""
