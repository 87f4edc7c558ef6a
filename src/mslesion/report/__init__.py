"""The case report a clinician reads: `report.html` (self-contained), `report.json`, optional PDF.

Use `mslesion.report.write.write_report`; figures are drawn by `mslesion.report.figures`.
"""
