from oauth2_provider.oauth2_validators import OAuth2Validator


class GroupsClaimValidator(OAuth2Validator):
    """Adds what company providers send: e-mail, username and a `groups` claim."""

    oidc_claim_scope = {
        **OAuth2Validator.oidc_claim_scope,
        "groups": "groups",
        "preferred_username": "profile",
        "email": "email",
    }

    def get_additional_claims(self, request):
        return {
            "email": request.user.email,
            "preferred_username": request.user.username,
            "groups": sorted(request.user.groups.values_list("name", flat=True)),
        }
