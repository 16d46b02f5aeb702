"""Signatures over mlgate's records: keys (PEM or Azure Key Vault), DSSE envelopes, Sigstore bundles.

Importing this package imports nothing heavy: ``cryptography`` and the Azure SDKs load only when a
key is loaded or a signature made or checked, so the unsigned paths of ``mlgate seal`` stay fast.
"""
