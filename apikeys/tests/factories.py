from apikeys import services


def make_key(organization, permissions=("edge:register", "edge:heartbeat", "edge:metrics", "edge:stream"), **kwargs):
    """A key and its raw value, created through the service as the shell would."""
    return services.api_key_create(
        organization=organization,
        name=kwargs.pop("name", "test key"),
        permissions=list(permissions),
        actor=services.Actor(),
        **kwargs,
    )
