"""Verifying DICOM signatures inside Orthanc: the plugin script and the verifier it talks to.

``import dsig.orthanc`` loads nothing heavy: the names load on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pki._lazy import lazy_exports

if TYPE_CHECKING:
    from dsig.orthanc.service import ServiceConfig, VerifierService, plugin_path

__getattr__ = lazy_exports(__name__)

__all__ = ["ServiceConfig", "VerifierService", "plugin_path"]
