"""Role permissions every app reuses (API.md section 2, roles).

`admin` may do everything, `member` everything except what is admin-only, `viewer` only reads.
The role is read from the database on every request (the authentication class loads the user).
"""

from rest_framework.permissions import SAFE_METHODS, BasePermission

ADMIN = "admin"
MEMBER = "member"
VIEWER = "viewer"


def is_organization_user(user) -> bool:
    return bool(
        user is not None and getattr(user, "is_authenticated", False) and getattr(user, "organization_id", None)
    )


class IsOrganizationUser(BasePermission):
    """A person (JWT) of some organization, any role."""

    def has_permission(self, request, view):
        return is_organization_user(request.user)


class _RolePermission(IsOrganizationUser):
    read_roles: frozenset[str] = frozenset({ADMIN, MEMBER, VIEWER})
    write_roles: frozenset[str] = frozenset({ADMIN})

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        roles = self.read_roles if request.method in SAFE_METHODS else self.write_roles
        return request.user.role in roles


class AdminOnly(_RolePermission):
    read_roles = frozenset({ADMIN})


class AdminWrites(_RolePermission):
    """Every role reads; only admins write."""


class MemberWrites(_RolePermission):
    """Every role reads; admins and members write."""

    write_roles = frozenset({ADMIN, MEMBER})
