"""`auditor report`: a replay's results as one self-contained HTML file that opens offline."""
