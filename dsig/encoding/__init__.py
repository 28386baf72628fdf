"""The DICOM encoding layer: strict reading, writing, string normalisation, parser limits, tags
and DER lengths. Nothing here knows about signatures."""
