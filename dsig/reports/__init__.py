"""How results are shown: the HTML audit report, CSV rows, and text made safe to print."""
