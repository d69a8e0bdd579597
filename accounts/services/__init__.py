"""Everything in accounts that writes or has side effects, by concern: audit, sessions, registration,
passwords, the organization and its members. Import from here."""

from accounts.services.audit import audit_record
from accounts.services.organization import (
    member_delete,
    member_invite,
    member_update,
    organization_quota_check,
    organization_update,
)
from accounts.services.passwords import (
    password_change,
    password_reset_confirm,
    password_reset_request,
    password_token_email,
    password_token_purpose,
)
from accounts.services.registration import (
    email_taken,
    organization_register,
    user_login,
    user_logout,
    user_logout_everywhere,
    user_update_profile,
)
from accounts.services.sessions import (
    SESSION_ENDED,
    auth_session_standing,
    session_authenticate,
    session_end,
    session_open,
    session_refresh,
    session_standing,
    session_start,
    sessions_end_all,
)

__all__ = [
    "SESSION_ENDED",
    "audit_record",
    "auth_session_standing",
    "email_taken",
    "member_delete",
    "member_invite",
    "member_update",
    "organization_quota_check",
    "organization_register",
    "organization_update",
    "password_change",
    "password_reset_confirm",
    "password_reset_request",
    "password_token_email",
    "password_token_purpose",
    "session_authenticate",
    "session_end",
    "session_open",
    "session_refresh",
    "session_standing",
    "session_start",
    "sessions_end_all",
    "user_login",
    "user_logout",
    "user_logout_everywhere",
    "user_update_profile",
]
