"""The report: report.json / .csv / .md and curve.png from an evaluation record."""
