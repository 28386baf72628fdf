"""The signature format of PS3.15 Annex C: the MAC byte stream, the parsed signature
attributes, profiles and purposes. Built on :mod:`dsig.encoding`."""
