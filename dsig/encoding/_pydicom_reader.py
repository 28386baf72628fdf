"""dsig's own instance of pydicom's file reader, so reading strictly changes nothing in pydicom.

pydicom parses a data set with module-level functions that call each other by global name
(``read_dataset`` -> ``data_element_generator`` -> ``read_sequence`` -> ``read_sequence_item``
-> ``read_dataset``) and consult the process-wide ``pydicom.config``. dsig needs other rules
while it reads (UN stays UN, no guessing of the encoding, duplicate tags refused, parser
limits), and must not impose them on a program that uses pydicom next to it, in any thread.
So the reader module is loaded a second time as a private instance (never registered in
``sys.modules``): its globals, and the configuration it sees, are dsig's alone; pydicom's
module, functions and settings stay exactly as they were.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

from pydicom import config
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileDataset

from dsig.encoding.charsets import python_encodings


class _ConfigView:
    """Reads through to ``base`` except for the attributes given (a private override)."""

    def __init__(self, base: Any, **overrides: Any) -> None:
        self._base = base
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)


class StrictDataset(Dataset):
    """A data set (or item) read by dsig, where an element may keep the VR UN as stored, the
    Specific Character Set included."""

    def __setattr__(self, name: str, value: Any) -> None:
        # Python attributes (some fifteen per item, set by Dataset.__init__) skip pydicom's
        # keyword checks, as it would itself decide: an item flood's cost is mostly building
        # items (issue 13). DICOM keywords (capitalised) still take pydicom's path.
        if name.startswith(("_", "is_")):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int):
            raw = self._dict.get(key)  # type: ignore[call-overload]
            if isinstance(raw, RawDataElement) and raw.VR == "UN" and raw.value is not None:
                self._dict[raw.tag] = _kept_un(raw)
        return super().__getitem__(key)

    @property
    def _character_set(self) -> str | list[str]:
        char_set = self.get(0x00080005, None)
        if not char_set:
            return self._parent_encoding
        encodings, notes = python_encodings(char_set.value)
        if notes:  # kept for the verifier to report (pydicom would warn on stderr instead)
            self._dsig_charset_notes = notes
        return encodings


def _kept_un(raw: RawDataElement) -> DataElement:
    """A UN element as stored: verification must see UN (C.12.1.1.3.1.1 excludes it), where
    pydicom's default conversion looks a known tag's VR up in its dictionary."""
    elem = DataElement(raw.tag, "OB", raw.value, raw.value_tell, already_converted=True)
    elem.VR = "UN"  # set after construction: the constructor would look the VR up too
    return elem


class StrictFileDataset(FileDataset, StrictDataset):
    """The top-level data set of a file read by dsig (see :class:`StrictDataset`)."""


def private_filereader() -> ModuleType:
    """A fresh, unregistered instance of ``pydicom.filereader`` reading with dsig's settings:
    VRs exactly as stored (UN stays UN, C.12.1.1.3.1.1 excludes it) and no value "fixed" or
    warned about on read (malformed input is judged by dsig, not by pydicom's validation)."""
    spec = importlib.util.find_spec("pydicom.filereader")
    if spec is None or spec.loader is None:  # pragma: no cover - pydicom is a dependency
        raise ImportError("pydicom.filereader not found")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.Dataset = StrictDataset  # type: ignore[attr-defined]
    module.config = _ConfigView(  # type: ignore[attr-defined]
        config,
        replace_un_with_known_vr=False,
        settings=_ConfigView(config.settings, reading_validation_mode=config.IGNORE),
    )
    return module
