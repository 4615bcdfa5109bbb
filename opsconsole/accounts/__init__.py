"""Where each console account comes from: a local password, the company's OIDC
provider, or a service account that only holds API tokens."""
