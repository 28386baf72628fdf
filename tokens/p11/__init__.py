"""The PKCS#11 backend, one module per job: :mod:`.uri` (RFC 7512), :mod:`.modules` (finding
and loading modules), :mod:`.session` (login, PINs), :mod:`.select` (token and key choice),
:mod:`.provider` (signing), :mod:`.listing` (``dsig tokens list``).

Use the public names through :mod:`tokens.pkcs11`. Only these modules import python-pkcs11,
and only inside functions, so parsing URIs and finding modules work without it.
"""
