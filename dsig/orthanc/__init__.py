"""Verifying DICOM signatures inside Orthanc: the plugin script and the verifier it talks to."""
