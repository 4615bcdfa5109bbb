"""Personal and service-account API tokens: shown once, stored hashed, scoped, revocable."""
