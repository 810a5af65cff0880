"""Tables and figures of the study (matplotlib), and later the HTML report."""
