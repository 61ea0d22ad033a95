"""The auth context's errors.

Two families live here. The token endpoint answers in RFC 6749 §5.2 form (``{"error", "error_description"}``),
not as a problem, so its errors are ``OAuthError`` (not GatewayError: they never reach the problem renderer).
Everything else is a GatewayError rendered as ``application/problem+json``.

Hierarchy::

    OAuthError                           token endpoint only, RFC 6749 §5.2
    ├── InvalidRequest                   400 invalid_request
    ├── InvalidClient                    401 invalid_client        (+ WWW-Authenticate: Basic when Basic was used)
    ├── InvalidScope                     400 invalid_scope
    ├── UnsupportedGrantType             400 unsupported_grant_type
    └── TemporarilyUnavailable           503 temporarily_unavailable (the jti replay store is down)

    GatewayError
    ├── NotFound
    │   └── ClientNotFound               404 not_found
    ├── Conflict                         409 conflict
    │   ├── PurposeExists                409 conflict
    │   ├── AdminExists                  409 conflict (bootstrap-admin when an admin client exists)
    │   └── NoKeysRegistered             409 conflict (secret authentication off without registered keys)
    └── ServiceUnavailable
        └── ReplayStoreUnavailable       503 service_unavailable (internal; the token endpoint says 503 above)

    KeyConfigurationError (ValueError)   the key settings cannot be used (at start-up and in the CLI)
"""

from __future__ import annotations

from typing import ClassVar

from app.errors import GatewayError, NotFound, ServiceUnavailable

# --- the token endpoint (RFC 6749 §5.2) --------------------------------------------------------------------


class OAuthError(Exception):
    """An error of ``POST /oauth2/token``; ``description`` is English and names no secret or value."""

    status: ClassVar[int] = 400
    error: ClassVar[str] = "invalid_request"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """Client authentication failed: unknown client, bad secret or assertion, suspended or expired client."""

    status = 401
    error = "invalid_client"

    def __init__(self, description: str = "Client authentication failed.", *, basic: bool = False) -> None:
        super().__init__(description)
        self.basic = basic

    def headers(self) -> dict[str, str]:
        # RFC 6749 §5.2: a 401 after HTTP Basic names the scheme the client used.
        return {"WWW-Authenticate": 'Basic realm="dancu-gateway"'} if self.basic else {}


class InvalidScope(OAuthError):
    error = "invalid_scope"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class TemporarilyUnavailable(OAuthError):
    status = 503
    error = "temporarily_unavailable"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


# --- problems ----------------------------------------------------------------------------------------------


class ClientNotFound(NotFound):
    title_en = "Client not found"
    title_vi = "Không tìm thấy ứng dụng khách"
    default_detail_en = "No client has this client_id."
    default_detail_vi = "Không có ứng dụng khách nào có client_id này."


class Conflict(GatewayError):
    status = 409
    code = "conflict"
    title_en = "Conflict"
    title_vi = "Xung đột dữ liệu"
    default_detail_en = "The request conflicts with the current state."
    default_detail_vi = "Yêu cầu xung đột với trạng thái hiện tại."


class PurposeExists(Conflict):
    default_detail_en = "A purpose with this code is already registered."
    default_detail_vi = "Mục đích sử dụng với mã này đã được đăng ký."


class PurposeNotFound(NotFound):
    title_en = "Purpose not found"
    title_vi = "Không tìm thấy mục đích sử dụng"
    default_detail_en = "No purpose has this code."
    default_detail_vi = "Không có mục đích sử dụng nào có mã này."


class PurposeInUse(Conflict):
    default_detail_en = "The purpose is still in a client's grant: remove it from every grant first."
    default_detail_vi = "Mục đích sử dụng vẫn có trong quyền được cấp của ứng dụng khách: hãy bỏ nó khỏi mọi quyền được cấp trước."


class SelfSuspension(Conflict):
    default_detail_en = "A client cannot suspend itself; ask another administrator."
    default_detail_vi = "Ứng dụng khách không thể tự đình chỉ chính mình; hãy nhờ một quản trị viên khác."


class NoKeysRegistered(Conflict):
    default_detail_en = (
        "The client has no registered public keys: without its secret it could not authenticate at all. "
        "Register its keys (PUT .../jwks) first."
    )
    default_detail_vi = (
        "Ứng dụng khách chưa đăng ký khóa công khai: tắt mã bí mật sẽ khiến nó không xác thực được. "
        "Hãy đăng ký khóa (PUT .../jwks) trước."
    )


class LastAdministrator(Conflict):
    default_detail_en = (
        "This is the last active administrator: suspending it or taking `admin` from it would leave nobody "
        "able to administer the gateway. Make another administrator first."
    )
    default_detail_vi = (
        "Đây là quản trị viên cuối cùng đang hoạt động: đình chỉ hoặc bỏ quyền `admin` sẽ không còn ai quản "
        "trị được cổng. Hãy tạo một quản trị viên khác trước."
    )


class AdminExists(Conflict):
    default_detail_en = (
        "An admin client already exists; create more with `dancu clients create --scopes admin`."
    )
    default_detail_vi = (
        "Đã có ứng dụng khách quản trị; hãy tạo thêm bằng `dancu clients create --scopes admin`."
    )


class ReplayStoreUnavailable(ServiceUnavailable):
    """The shared ``jti`` store (Redis) cannot be reached: ``private_key_jwt`` cannot be checked for replay."""


class KeyConfigurationError(ValueError):
    """The key settings cannot be used; the message names settings and files, never key material."""
