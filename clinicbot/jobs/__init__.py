"""What the CLI and the scheduler both call: plain functions taking one Context."""
