"""Digital Signature Profiles (PS3.15 Annex C) as rules for creating and judging signatures.

A profile fixes the signature algorithm, the MAC algorithms, the MAC calculation transfer
syntax and the attributes a signature must cover. This module knows those rules; it does not
build MAC streams or sign anything.

Attribute lists come from PS3.15 C.2-C.4 and the module tables of PS3.3, as transcribed by
DCMTK's ``dcmsign`` (``sicreapr.cc``, ``siautopr.cc``, ``sisrpr.cc``, ``sisrvpr.cc``; DICOM
2019c). Where the standard and DCMTK differ we follow the standard for what we *require* and
say so next to the rule. Known consequences of the 2019c freeze: modules added to C.2/C.3 after
2019c, and attributes added later to the listed modules, are not required.

Terminology: "required" tags must be signed and must be present (an absent one is an error);
"required if present" tags must be signed when the level contains them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID

from dsig.errors import DsigError
from tokens.api import SignatureScheme
from tokens.digest import HashAlgorithm
from tokens.faults import BadInputError

__all__ = [
    "AUTHORIZATION_REQUIRED",
    "AUTHORIZATION_REQUIRED_IF_PRESENT",
    "CREATOR_REQUIRED",
    "CREATOR_REQUIRED_IF_PRESENT",
    "PROFILE_MACS",
    "SR_REQUIRED",
    "SR_REQUIRED_IF_PRESENT",
    "SR_VERIFICATION_REQUIRED",
    "SR_VERIFICATION_REQUIRED_IF_PRESENT",
    "VERIFICATION_SIGNATURE_PURPOSE",
    "Profile",
    "ProfileError",
    "check_creation",
    "satisfied_profiles",
    "tags_to_sign",
]


class ProfileError(DsigError, BadInputError):
    """A signature cannot be created (or a rule is broken) under the chosen profile.

    The message is one line meant for the user.
    """


class Profile(enum.Enum):
    """The PS3.15 Annex C object-signature profiles, plus "none" (no profile rules)."""

    NONE = "none"
    BASE = "base"  # C.1 Base RSA
    CREATOR = "creator"  # C.2 Creator RSA
    AUTHORIZATION = "authorization"  # C.3 Authorization RSA
    SR = "sr"  # C.4 Structured Report RSA
    SR_VERIFICATION = "sr-verification"  # C.4, the verification signature of a VERIFIED SR


#: CID 7007 code 5, "Verification Signature" (ASTM-sigpurpose).
VERIFICATION_SIGNATURE_PURPOSE = 5

#: MAC algorithms every profile allows (C.1, restated by C.2-C.4; SHA-2 via CP 1059).
PROFILE_MACS: frozenset[HashAlgorithm] = frozenset(
    {
        HashAlgorithm.RIPEMD160,
        HashAlgorithm.MD5,
        HashAlgorithm.SHA1,
        HashAlgorithm.SHA256,
        HashAlgorithm.SHA384,
        HashAlgorithm.SHA512,
    }
)


def _tags(*keywords: str) -> frozenset[int]:
    """Tags for dictionary keywords; a misspelt keyword fails at import, not silently."""
    out: set[int] = set()
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise ValueError(f"unknown DICOM keyword {keyword!r}")
        out.add(tag)
    return frozenset(out)


def _repeating(groups: range, elements: Iterable[int]) -> frozenset[int]:
    """Expand a repeating-group attribute list (50xx, 60xx) to every even group in range."""
    elems = tuple(elements)
    return frozenset((g << 16) | e for g in groups for e in elems)


_REPEATING_GROUPS_50 = range(0x5000, 0x5020, 2)
_REPEATING_GROUPS_60 = range(0x6000, 0x6020, 2)

# ---------------------------------------------------------------------------------------------
# Module attribute lists (PS3.3 module tables, DICOM 2019c as in DCMTK). An attribute belonging
# to several modules is listed once, in the first block that names it.
# ---------------------------------------------------------------------------------------------

# SOP Common: the identity of the instance and its creation date/time (C.2 item list).
_SOP_UIDS = _tags("SOPClassUID", "SOPInstanceUID")
_SOP_CREATION = _tags("InstanceCreationDate", "InstanceCreationTime")
_STUDY_SERIES_UIDS = _tags("StudyInstanceUID", "SeriesInstanceUID")

# General Equipment Module (C.7.5.1).
GENERAL_EQUIPMENT = _tags(
    "Manufacturer", "InstitutionName", "InstitutionAddress", "StationName",
    "InstitutionalDepartmentName", "InstitutionalDepartmentTypeCodeSequence",
    "ManufacturerModelName", "DeviceSerialNumber", "SoftwareVersions", "GantryID",
    "UDISequence", "DeviceUID", "SpatialResolution", "DateOfLastCalibration",
    "TimeOfLastCalibration", "PixelPaddingValue",
)  # fmt: skip

# Overlay Plane Module (C.9.2), repeating group 60xx. DCMTK matches only group 6000 (it compares
# against the 6000-based dictionary tags); the standard's "any attributes of the Overlay Plane
# Module" covers all 16 overlay groups, so we require every group.
OVERLAY_PLANE = _repeating(
    _REPEATING_GROUPS_60,
    (
        0x0010,  # Overlay Rows
        0x0011,  # Overlay Columns
        0x0022,  # Overlay Description
        0x0040,  # Overlay Type
        0x0045,  # Overlay Subtype
        0x0050,  # Overlay Origin
        0x0100,  # Overlay Bits Allocated
        0x0102,  # Overlay Bit Position
        0x1301,  # ROI Area
        0x1302,  # ROI Mean
        0x1303,  # ROI Standard Deviation
        0x1500,  # Overlay Label
        0x3000,  # Overlay Data
    ),
)

# Curve Module (retired, C.10.2 of older editions), repeating group 50xx (DCMTK: all groups).
CURVE = _repeating(
    _REPEATING_GROUPS_50,
    (
        0x0005,  # Curve Dimensions
        0x0010,  # Number of Points
        0x0022,  # Curve Description
        0x0030,  # Axis Units
        0x0040,  # Axis Labels
        0x0103,  # Data Value Representation
        0x0104,  # Minimum Coordinate Value
        0x0105,  # Maximum Coordinate Value
        0x0106,  # Curve Range
        0x0110,  # Curve Data Descriptor
        0x0112,  # Coordinate Start Value
        0x0114,  # Coordinate Step Value
        0x2500,  # Curve Label
        0x2600,  # Curve Referenced Overlay Sequence
        0x3000,  # Curve Data
    ),
)

# Graphic Annotation Module (C.10.5).
GRAPHIC_ANNOTATION = _tags("GraphicAnnotationSequence")

# General Image Module (C.7.6.1).
GENERAL_IMAGE = _tags(
    "InstanceNumber", "PatientOrientation", "ContentDate", "ContentTime", "ImageType",
    "AcquisitionNumber", "AcquisitionDate", "AcquisitionTime", "AcquisitionDateTime",
    "ImagesInAcquisition", "ImageComments", "QualityControlImage", "BurnedInAnnotation",
    "RecognizableVisualFeatures", "LossyImageCompression", "LossyImageCompressionRatio",
    "LossyImageCompressionMethod", "IconImageSequence", "PresentationLUTShape",
    "IrradiationEventUID", "RealWorldValueMappingSequence", "ImageLaterality",
    "AnatomicRegionSequence", "PrimaryAnatomicStructureSequence",
)  # fmt: skip

# Image Pixel Module (C.7.6.3).
IMAGE_PIXEL = _tags(
    "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated",
    "BitsStored", "HighBit", "PixelRepresentation", "PlanarConfiguration", "PixelAspectRatio",
    "SmallestImagePixelValue", "LargestImagePixelValue",
    "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData", "ICCProfile",
    "ColorSpace", "PixelData", "PixelDataProviderURL", "PixelPaddingRangeLimit",
    "ExtendedOffsetTable", "ExtendedOffsetTableLengths",
)  # fmt: skip

# SR Document General Module (C.17.2).
SR_DOCUMENT_GENERAL = _tags(
    "PreliminaryFlag", "CompletionFlag", "CompletionFlagDescription", "VerificationFlag",
    "VerifyingObserverSequence", "AuthorObserverSequence", "ParticipantSequence",
    "CustodialOrganizationSequence", "PredecessorDocumentsSequence",
    "IdenticalDocumentsSequence", "ReferencedRequestSequence",
    "PerformedProcedureCodeSequence", "CurrentRequestedProcedureEvidenceSequence",
    "PertinentOtherEvidenceSequence", "ReferencedInstanceSequence",
)  # fmt: skip

# SR Document Content Module (C.17.3); the root content item is a CONTAINER.
SR_DOCUMENT_CONTENT = _tags(
    "ValueType", "ConceptNameCodeSequence", "ContinuityOfContent", "ContentTemplateSequence",
    "ObservationDateTime", "ObservationUID", "ContentSequence",
)  # fmt: skip

# Waveform Module (C.10.9) and Waveform Annotation Module (C.10.10).
WAVEFORM = _tags(
    "WaveformSequence", "WaveformDataDisplayScale", "WaveformDisplayBackgroundCIELabValue",
    "WaveformPresentationGroupSequence",
)  # fmt: skip
WAVEFORM_ANNOTATION = _tags("WaveformAnnotationSequence")

# Multi-frame Functional Groups Module (C.7.6.16).
MULTIFRAME_FUNCTIONAL_GROUPS = _tags(
    "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence", "NumberOfFrames",
    "StereoPairsPresent", "ConcatenationFrameOffsetNumber", "RepresentativeFrameNumber",
    "ConcatenationUID", "SOPInstanceUIDOfConcatenationSource", "InConcatenationNumber",
    "InConcatenationTotalNumber",
)  # fmt: skip

# Enhanced MR Image Module (C.8.13.1).
ENHANCED_MR_IMAGE = _tags(
    "AcquisitionDuration", "ReferencedRawDataSequence", "ReferencedWaveformSequence",
    "ReferencedImageEvidenceSequence", "SourceImageEvidenceSequence",
    "ReferencedPresentationStateSequence", "ContentQualification", "ResonantNucleus",
    "KSpaceFiltering", "MagneticFieldStrength", "ApplicableSafetyStandardAgency",
    "ApplicableSafetyStandardDescription", "IsocenterPosition", "B1rms", "PixelPresentation",
    "VolumetricProperties", "VolumeBasedCalculationTechnique", "ComplexImageComponent",
    "AcquisitionContrast", "FunctionalSettlingPhaseFramesPresent", "ViewCodeSequence",
    "SliceProgressionDirection",
)  # fmt: skip

# MR Spectroscopy Module (C.8.14.1).
MR_SPECTROSCOPY = _tags(
    "TransmitterFrequency", "SpectralWidth", "ChemicalShiftReference",
    "VolumeLocalizationTechnique", "VolumeLocalizationSequence", "Decoupling",
    "DecoupledNucleus", "DecouplingFrequency", "DecouplingMethod",
    "DecouplingChemicalShiftReference", "TimeDomainFiltering", "NumberOfZeroFills",
    "BaselineCorrection", "FrequencyCorrection", "FirstOrderPhaseCorrection",
    "WaterReferencedPhaseCorrection", "WaterReferenceAcquisition",
)  # fmt: skip

# Raw Data Module (C.19.1). Its raw data proper lives in private attributes: see
# _private_tags_if_raw_data().
CREATOR_VERSION_UID: int = Tag("CreatorVersionUID")
RAW_DATA = _tags("ContentLabel", "ContentDescription", "CreatorVersionUID")

# Enhanced CT Image (C.8.15.2), Enhanced XA/XRF Image (C.8.19.2), Segmentation Image (C.8.20.2).
ENHANCED_CT_IMAGE = _tags("MultienergyCTAcquisition")
ENHANCED_XA_XRF_IMAGE = _tags(
    "PlanesInAcquisition", "PlaneIdentification", "AcquisitionProtocolName",
    "AcquisitionProtocolDescription", "ScanOptions", "PatientGantryRelationshipCodeSequence",
    "ExaminedBodyThickness", "ReferencedOtherPlaneSequence",
)  # fmt: skip
SEGMENTATION_IMAGE = _tags(
    "ImageOrientationSlide", "SegmentationType", "SegmentationFractionalType",
    "MaximumFractionalValue", "SegmentsOverlap", "SegmentSequence",
)  # fmt: skip

# Encapsulated Document Module (C.24.2).
ENCAPSULATED_DOCUMENT = _tags(
    "SourceInstanceSequence", "DocumentTitle", "DocumentClassCodeSequence",
    "HL7InstanceIdentifier", "MIMETypeOfEncapsulatedDocument", "ListOfMIMETypes",
    "EncapsulatedDocument", "EncapsulatedDocumentLength",
)  # fmt: skip

# X-Ray 3D Image Module (C.8.21.1); Enhanced PET Image (C.8.22.3) adds nothing new.
XRAY_3D_IMAGE = _tags("SourceIrradiationEventSequence")

# Enhanced US Image Module (C.8.24.2).
ENHANCED_US_IMAGE = _tags(
    "DimensionOrganizationType", "PositionMeasuringDeviceUsed", "RescaleIntercept",
    "RescaleSlope", "SourceImageSequence", "ReferencedImageSequence", "NumberOfStages",
    "StageNumber", "StageCodeSequence", "EventTimerSequence", "TransducerData",
    "TransducerGeometryCodeSequence", "TransducerBeamSteeringCodeSequence",
    "TransducerApplicationCodeSequence", "ProcessingFunction", "MechanicalIndex",
    "BoneThermalIndex", "CranialThermalIndex", "SoftTissueThermalIndex", "DepthsOfFocus",
    "DepthOfScanField",
)  # fmt: skip

# Surface Segmentation (C.8.23.1) and Surface Mesh (C.27.1) Modules.
SURFACE_SEGMENTATION = _tags(
    "AlternateContentDescriptionSequence", "ContentCreatorName",
    "ContentCreatorIdentificationCodeSequence",
)  # fmt: skip
SURFACE_MESH = _tags("NumberOfSurfaces", "SurfaceSequence")

# Structured Display, Structured Display Annotation, Structured Display Image Box (C.11.15-17).
STRUCTURED_DISPLAY = _tags(
    "PresentationCreationDate", "PresentationCreationTime", "NumberOfScreens",
    "NominalScreenDefinitionSequence", "StructuredDisplayBackgroundCIELabValue",
    "EmptyImageBoxCIELabValue", "HangingProtocolName", "HangingProtocolCreator",
    "StructuredDisplayTextBoxSequence", "StructuredDisplayImageBoxSequence",
    "ImageBoxSynchronizationSequence",
)  # fmt: skip

# Implant Template Module (C.29.1.1); Manufacturer is listed here too because the Authorization
# profile includes this module but not General Equipment.
IMPLANT_TEMPLATE = _tags(
    "Manufacturer", "FrameOfReferenceUID", "ImplantName", "ImplantSize", "ImplantPartNumber",
    "ImplantTemplateVersion", "ReplacedImplantTemplateSequence", "ImplantType",
    "OriginalImplantTemplateSequence", "DerivationImplantTemplateSequence",
    "EffectiveDateTime", "ImplantTargetAnatomySequence",
    "NotificationFromManufacturerSequence", "InformationFromManufacturerSequence",
    "ImplantRegulatoryDisapprovalCodeSequence", "OverallTemplateSpatialTolerance",
    "MaterialsCodeSequence", "CoatingMaterialsCodeSequence", "ImplantTypeCodeSequence",
    "FixationMethodCodeSequence",
)  # fmt: skip

# Implant Assembly Template Module (C.29.2.1).
IMPLANT_ASSEMBLY_TEMPLATE = _tags(
    "ImplantAssemblyTemplateName", "ImplantAssemblyTemplateIssuer",
    "ImplantAssemblyTemplateVersion", "ReplacedImplantAssemblyTemplateSequence",
    "ImplantAssemblyTemplateType", "OriginalImplantAssemblyTemplateSequence",
    "DerivationImplantAssemblyTemplateSequence",
    "ImplantAssemblyTemplateTargetAnatomySequence", "ProcedureTypeCodeSequence",
    "SurgicalTechnique", "ComponentTypesSequence", "ComponentAssemblySequence",
)  # fmt: skip

# Implant Template Group Module (C.29.3.1).
IMPLANT_TEMPLATE_GROUP = _tags(
    "ImplantTemplateGroupName", "ImplantTemplateGroupDescription",
    "ImplantTemplateGroupIssuer", "ImplantTemplateGroupVersion",
    "ReplacedImplantTemplateGroupSequence", "ImplantTemplateGroupTargetAnatomySequence",
    "ImplantTemplateGroupMembersSequence", "ImplantTemplateGroupVariationDimensionSequence",
)  # fmt: skip

# Point Cloud Module (C.8.28.1).
POINT_CLOUD = _tags(
    "SurfacePointsSequence", "SurfacePointPresentationValueData",
    "SurfacePointColorCIELabValueData",
)  # fmt: skip

# Enhanced Mammography Image Module (C.8.31.2).
ENHANCED_MAMMOGRAPHY_IMAGE = _tags(
    "PositionerMotion", "PositionerType", "KVP", "XRayTubeCurrentInmA", "ExposureTimeInms",
    "ExposureInmAs", "FocalSpots", "AnodeTargetMaterial", "BodyPartThickness",
    "CompressionForce", "CompressionPressure", "CompressionContactArea", "PaddleDescription",
    "ExposureControlMode", "ExposureControlModeDescription", "PatientOrientation",
    "OrganDose", "EntranceDoseInmGy", "EntranceDoseDerivation", "TypeOfDetectorMotion",
)  # fmt: skip

# Tractography Results Module (C.8.33.2) and Volumetric Graphic Annotation Module (C.11.28).
TRACTOGRAPHY_RESULTS = _tags("TrackSetSequence")
VOLUMETRIC_GRAPHIC_ANNOTATION = _tags(
    "VolumetricAnnotationSequence", "VolumetricPresentationInputAnnotationSequence"
)

# Modules shared by C.2 and C.3 (C.3 = C.2 without General Equipment and Tractography Results).
_CREATOR_AND_AUTHORIZATION_MODULES: frozenset[int] = (
    OVERLAY_PLANE | CURVE | GRAPHIC_ANNOTATION | GENERAL_IMAGE | IMAGE_PIXEL
    | SR_DOCUMENT_GENERAL | SR_DOCUMENT_CONTENT | WAVEFORM | WAVEFORM_ANNOTATION
    | MULTIFRAME_FUNCTIONAL_GROUPS | ENHANCED_MR_IMAGE | MR_SPECTROSCOPY | RAW_DATA
    | ENHANCED_CT_IMAGE | ENHANCED_XA_XRF_IMAGE | SEGMENTATION_IMAGE | ENCAPSULATED_DOCUMENT
    | XRAY_3D_IMAGE | ENHANCED_US_IMAGE | SURFACE_SEGMENTATION | SURFACE_MESH
    | STRUCTURED_DISPLAY | IMPLANT_TEMPLATE | IMPLANT_ASSEMBLY_TEMPLATE | IMPLANT_TEMPLATE_GROUP
    | POINT_CLOUD | ENHANCED_MAMMOGRAPHY_IMAGE | VOLUMETRIC_GRAPHIC_ANNOTATION
)  # fmt: skip

# ---------------------------------------------------------------------------------------------
# Per-profile rules
# ---------------------------------------------------------------------------------------------

#: C.2 Creator RSA: unconditionally required (absent -> error). Study/Series UIDs are listed
#: without "if present" by the standard and DCMTK alike, so objects without them (e.g. implant
#: templates) cannot follow this profile.
CREATOR_REQUIRED: frozenset[int] = _SOP_UIDS | _STUDY_SERIES_UIDS
#: C.2 Creator RSA: required when present.
CREATOR_REQUIRED_IF_PRESENT: frozenset[int] = (
    _SOP_UIDS | _SOP_CREATION | _STUDY_SERIES_UIDS | GENERAL_EQUIPMENT
    | _CREATOR_AND_AUTHORIZATION_MODULES | TRACTOGRAPHY_RESULTS
)  # fmt: skip

#: C.3 Authorization RSA: unconditionally required. "Any attribute the approver could see" is
#: application dependent and has to come from the caller's explicit tag list.
AUTHORIZATION_REQUIRED: frozenset[int] = _SOP_UIDS | _STUDY_SERIES_UIDS
#: C.3 Authorization RSA: required when present.
AUTHORIZATION_REQUIRED_IF_PRESENT: frozenset[int] = (
    _SOP_UIDS | _STUDY_SERIES_UIDS | _CREATOR_AND_AUTHORIZATION_MODULES
)

#: C.4 Structured Report RSA: unconditionally required. The standard also lists the evidence
#: and predecessor sequences and Observation DateTime without "if present", but they are
#: Type 1C/3 in the SR IODs and cannot be signed when absent, so (like DCMTK) we require them
#: only when present. SOP Instance UID is not in C.4's general list (only the verification
#: signature needs it).
SR_REQUIRED: frozenset[int] = _tags("SOPClassUID") | _STUDY_SERIES_UIDS
#: C.4 Structured Report RSA: required when present.
SR_REQUIRED_IF_PRESENT: frozenset[int] = (
    SR_REQUIRED
    | GENERAL_EQUIPMENT
    | _tags(
        "CurrentRequestedProcedureEvidenceSequence",
        "PertinentOtherEvidenceSequence",
        "PredecessorDocumentsSequence",
        "ObservationDateTime",
    )
    | SR_DOCUMENT_CONTENT
)

_VERIFICATION_DATETIME: int = Tag("VerificationDateTime")
_VERIFYING_OBSERVER_SEQUENCE: int = Tag("VerifyingObserverSequence")

#: C.4 verification signature of a VERIFIED SR: unconditionally required. Verification
#: DateTime lives inside the Verifying Observer Sequence items in the SR IODs, so signing the
#: sequence covers it (DCMTK reasons the same way); if a level carries it directly it is
#: required there too.
SR_VERIFICATION_REQUIRED: frozenset[int] = SR_REQUIRED | _tags(
    "SOPInstanceUID", "VerificationFlag", "VerifyingObserverSequence"
)
#: C.4 verification signature: required when present.
SR_VERIFICATION_REQUIRED_IF_PRESENT: frozenset[int] = (
    SR_REQUIRED_IF_PRESENT | SR_VERIFICATION_REQUIRED | frozenset({_VERIFICATION_DATETIME})
)

_RULES: dict[Profile, tuple[frozenset[int], frozenset[int]]] = {
    Profile.NONE: (frozenset(), frozenset()),
    Profile.BASE: (frozenset(), frozenset()),
    Profile.CREATOR: (CREATOR_REQUIRED, CREATOR_REQUIRED_IF_PRESENT),
    Profile.AUTHORIZATION: (AUTHORIZATION_REQUIRED, AUTHORIZATION_REQUIRED_IF_PRESENT),
    Profile.SR: (SR_REQUIRED, SR_REQUIRED_IF_PRESENT),
    Profile.SR_VERIFICATION: (SR_VERIFICATION_REQUIRED, SR_VERIFICATION_REQUIRED_IF_PRESENT),
}

# Profiles whose attributes only exist in the main data set (DCMTK: mainDatasetRequired()).
_TOP_LEVEL_ONLY = frozenset(
    {Profile.CREATOR, Profile.AUTHORIZATION, Profile.SR, Profile.SR_VERIFICATION}
)
_SR_PROFILES = frozenset({Profile.SR, Profile.SR_VERIFICATION})

_SR_MARKERS = _tags("ValueType", "ConceptNameCodeSequence", "ContentSequence")


def _keyword(tag: int) -> str:
    """Keyword for messages, or (gggg,eeee) when the dictionary has none."""
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _signable_tag(tag: int) -> bool:
    """Tag-level exclusions of PS3.3 C.12.1.1.3.1.1 (VR-dependent ones are the MAC builder's)."""
    group, element = tag >> 16, tag & 0xFFFF
    if group < 0x0008 or element == 0x0000 or tag == 0x00080001:  # lengths, meta, command
        return False
    if group in (0xFFFA, 0xFFFE) or tag in (0x4FFE0001, 0xFFFCFFFC):
        return False
    return True


def _private_tags_if_raw_data(level: Dataset) -> set[int]:
    """All private tags when the level holds the Raw Data Module (Creator Version UID present).

    The Raw Data Module carries the raw data itself in private attributes, so "any attributes
    of the Raw Data Module that are present" (C.2/C.3) includes them. Same rule as DCMTK.
    Private elements with VR UN cannot be signed; the signer must then refuse, as DCMTK does.
    """
    if CREATOR_VERSION_UID not in level:
        return set()
    return {int(t) for t in level.keys() if (t >> 16) & 1 and _signable_tag(int(t))}


def _is_sr(level: Dataset) -> bool:
    """DCMTK's test for an SR document: Value Type, Concept Name and Content Sequence present."""
    return all(t in level for t in _SR_MARKERS)


def _verification_flag(level: Dataset) -> str:
    value = level.get("VerificationFlag", "")
    return str(value).strip().upper() if value is not None else ""


def _verifying_observers(level: Dataset) -> int:
    seq = level.get("VerifyingObserverSequence")
    return len(seq) if seq is not None else 0


def _verification_datetime_present(level: Dataset) -> bool:
    """Verification DateTime at this level or in every Verifying Observer item."""
    if _VERIFICATION_DATETIME in level:
        return True
    seq = level.get("VerifyingObserverSequence")
    return bool(seq) and all(_VERIFICATION_DATETIME in item for item in seq)


def _level_rule_error(profile: Profile, level: Dataset, *, top_level: bool) -> str | None:
    """Why the profile cannot apply to this data-set level, or None."""
    name = profile.value
    if profile in _TOP_LEVEL_ONLY and not top_level:
        return f"profile {name} applies to the top-level data set only, not to sequence items"
    if profile in _SR_PROFILES:
        if not _is_sr(level):
            return (
                f"profile {name} needs a Structured Report "
                "(ValueType, ConceptNameCodeSequence and ContentSequence missing)"
            )
        # C.4 is defined for SR/KOS documents with at most one Verifying Observer.
        if _verifying_observers(level) > 1:
            return f"profile {name} applies to SR documents with at most one verifying observer"
    if profile is Profile.SR_VERIFICATION:
        flag = _verification_flag(level)
        if flag != "VERIFIED":
            return (
                f"profile {name} needs VerificationFlag VERIFIED "
                f"(the document is {flag or 'without VerificationFlag'})"
            )
        if not _verification_datetime_present(level):
            return f"profile {name} needs VerificationDateTime in VerifyingObserverSequence"
    return None


def _transfer_syntax_ok(transfer_syntax: str) -> bool:
    """MAC calculation transfer syntax: a known explicit-VR little-endian one.

    The MAC stream is always explicit VR little endian (PS3.3 C.12.1.1.3.1.1); implicit VR LE
    and explicit VR BE are refused by every DCMTK profile, the null profile included
    (``isAllowableTransferSyntax``), and DCMTK refuses unknown UIDs on verification. Deflated
    and encapsulated transfer syntaxes are fine.
    """
    uid = UID(transfer_syntax.strip().rstrip("\x00"))
    return bool(uid.is_transfer_syntax and not uid.is_implicit_VR and uid.is_little_endian)


def tags_to_sign(profile: Profile, level: Dataset, *, top_level: bool) -> set[BaseTag]:
    """Tags the profile requires to be signed at this data-set level.

    Returns the unconditionally required tags plus the required-if-present tags that the level
    contains (for Creator/Authorization also every private tag when the Raw Data Module is
    present). The caller adds its own explicit tags. Signability by VR (UN, sequences holding
    UN) is not checked here: the MAC builder must refuse a required element it cannot sign.

    Raises:
        ProfileError: an unconditionally required attribute is absent (message names its
            keyword), or the profile cannot apply to this level (item level, not an SR, ...).
    """
    reason = _level_rule_error(profile, level, top_level=top_level)
    if reason is not None:
        raise ProfileError(reason)
    required, if_present = _RULES[profile]
    missing = sorted(t for t in required if t not in level)
    if missing:
        names = ", ".join(_keyword(t) for t in missing)
        raise ProfileError(f"profile {profile.value} requires {names}, which is absent")
    present = {int(t) for t in level.keys() if int(t) in if_present}
    if profile in (Profile.CREATOR, Profile.AUTHORIZATION):
        present |= _private_tags_if_raw_data(level)
    return {Tag(t) for t in (set(required) | present)}


def check_creation(
    profile: Profile,
    level: Dataset,
    *,
    top_level: bool,
    scheme: SignatureScheme,
    mac: HashAlgorithm,
    purpose: int | None,
    transfer_syntax: str,
) -> int | None:
    """Check that a signature with these parameters may be created under the profile.

    ``transfer_syntax`` is the MAC Calculation Transfer Syntax UID (the signer makes it explicit
    VR LE, or keeps a deflated/encapsulated file's UID); implicit VR LE, explicit VR BE and
    unknown UIDs are refused for every profile, including NONE, because no MAC stream can be
    encoded in them (DCMTK's null profile refuses them too).

    Returns:
        The signature purpose code (CID 7007) to write: ``purpose`` unchanged, except that
        SR-verification forces 5.

    Raises:
        ProfileError: RSA required but another scheme given; MAC not allowed; bad transfer
            syntax; profile not applicable to this level/object; SR without a purpose
            (C.4 requires a purpose on every SR-profile signature, which dcmsign ``+pr``
            forgets); SR-verification with a purpose other than 5.
    """
    if not _transfer_syntax_ok(transfer_syntax):
        raise ProfileError(
            f"MAC calculation transfer syntax {transfer_syntax} is not an explicit VR "
            "little endian transfer syntax"
        )
    if profile is Profile.NONE:
        return purpose
    if scheme is not SignatureScheme.RSA_PKCS1V15:
        raise ProfileError(f"profile {profile.value} requires an RSA key")
    if mac not in PROFILE_MACS:
        raise ProfileError(f"profile {profile.value} does not allow MAC algorithm {mac.value}")
    reason = _level_rule_error(profile, level, top_level=top_level)
    if reason is not None:
        raise ProfileError(reason)
    if profile is Profile.SR_VERIFICATION:
        if purpose is not None and purpose != VERIFICATION_SIGNATURE_PURPOSE:
            raise ProfileError(
                f"profile {profile.value} signs with purpose 5 (Verification Signature), "
                f"not {purpose}"
            )
        return VERIFICATION_SIGNATURE_PURPOSE
    if profile is Profile.SR and purpose is None:
        raise ProfileError(f"profile {profile.value} requires a signature purpose")
    return purpose


def satisfied_profiles(
    level: Dataset,
    *,
    signed_tags: set[int],
    top_level: bool,
    scheme: SignatureScheme,
    mac: HashAlgorithm,
    purpose: int | None,
    mac_transfer_syntax: str,
) -> list[str]:
    """Names of the profiles (Profile values except "none") an existing signature meets.

    Checks, per profile: RSA scheme, one of the six MACs, an explicit-VR-LE MAC transfer
    syntax; every unconditionally required tag in ``signed_tags``; every required-if-present
    tag that the level contains (and that can be signed at all) in ``signed_tags``; the level
    rules (top level only, SR-ness, VERIFIED, at most one verifying observer); SR: a purpose;
    SR-verification: purpose 5. ``level`` is the data set as verified (the signature's level).
    Returned in Profile declaration order.
    """
    if scheme is not SignatureScheme.RSA_PKCS1V15 or mac not in PROFILE_MACS:
        return []
    if not _transfer_syntax_ok(mac_transfer_syntax):
        return []
    signed = {int(t) for t in signed_tags}
    present = {int(t) for t in level.keys()}
    out: list[str] = []
    for profile in Profile:
        if profile is Profile.NONE:
            continue
        if _level_rule_error(profile, level, top_level=top_level) is not None:
            continue
        if profile is Profile.SR and purpose is None:
            continue
        if profile is Profile.SR_VERIFICATION and purpose != VERIFICATION_SIGNATURE_PURPOSE:
            continue
        required, if_present = _RULES[profile]
        needed = set(required) | {t for t in present & if_present if _signable_tag(t)}
        if profile in (Profile.CREATOR, Profile.AUTHORIZATION):
            needed |= _private_tags_if_raw_data(level)
        if needed <= signed:
            out.append(profile.value)
    return out
