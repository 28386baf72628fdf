"""The Orthanc plugin script (package data, run by Orthanc, never imported by dsig)."""
