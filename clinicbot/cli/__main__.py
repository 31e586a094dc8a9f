"""`python -m clinicbot.cli`: the same entry point as the `clinicbot` script."""

from clinicbot.cli import main

main()
