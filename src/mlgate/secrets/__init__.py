"""Key Vault secrets through managed or federated identity: which credential, how to fetch, how to name."""
