"""Study manifests: one signature over a whole study (PS3.17 Annex W).

A manifest is a Key Object Selection Document titled (113035, DCM, "Signed Complete
Acquisition Content") whose Current Requested Procedure Evidence Sequence lists every
instance of one study, each with the MAC of its content (Referenced SOP Instance MAC
Sequence) and, when signed, its intact signatures (Referenced Digital Signature Sequence);
the manifest itself is signed with purpose 14 (Source Signature). Python API::

    from dsig.manifest import create_manifest, save_manifest, verify_manifest
"""

from __future__ import annotations

from dsig.manifest.build import (
    CreatedManifest,
    CreateOptions,
    Skipped,
    StudySelectionError,
    create_manifest,
    save_manifest,
)
from dsig.manifest.check import InstanceCheck, ManifestVerification, Status, verify_manifest
from dsig.manifest.mac import reference_mac, signable_tags
from dsig.manifest.model import (
    Manifest,
    Reference,
    SignatureReference,
    is_manifest,
    read_manifest,
)

__all__ = [
    "CreateOptions",
    "CreatedManifest",
    "InstanceCheck",
    "Manifest",
    "ManifestVerification",
    "Reference",
    "SignatureReference",
    "Skipped",
    "Status",
    "StudySelectionError",
    "create_manifest",
    "is_manifest",
    "read_manifest",
    "reference_mac",
    "save_manifest",
    "signable_tags",
    "verify_manifest",
]
