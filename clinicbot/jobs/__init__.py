"""What the CLI and the scheduler both call: plain functions taking one Context."""

# Every config section's validator registers with clinicbot.config, so whatever loads a config for a job
# (the CLI, the scheduler, the demo) refuses a bad section at load, whatever the command.
from clinicbot.jobs import sections as _sections  # noqa: E402,F401
