"""Runs end to end: convert, the plan and dry pass, the stage chain, derived settings,
the output folder, re-evaluate."""
