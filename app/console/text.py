"""The console's words, Vietnamese first, English on request (cookie ``dancu_lang``)."""

from __future__ import annotations

from typing import Final, Literal

Lang = Literal["vi", "en"]
LANGS: Final = ("vi", "en")

TEXT: Final[dict[str, tuple[str, str]]] = {
    "app": ("Cổng kết nối CSDLQG về dân cư", "National population database gateway"),
    "console": ("Bảng điều khiển", "Console"),
    "switch": ("English", "Tiếng Việt"),
    "login.title": ("Đăng nhập", "Sign in"),
    "login.username": ("Tên đăng nhập", "Username"),
    "login.password": ("Mật khẩu", "Password"),
    "login.submit": ("Đăng nhập", "Sign in"),
    "login.failed": (
        "Tên đăng nhập, mật khẩu hoặc mã xác thực không đúng, hoặc tài khoản đang bị khóa.",
        "Wrong username, password or code, or the account is locked.",
    ),
    "login.code.title": ("Nhập mã xác thực", "Enter your code"),
    "login.code": ("Mã 6 chữ số từ ứng dụng xác thực", "6-digit code from your authenticator app"),
    "login.code.submit": ("Xác nhận", "Verify"),
    "login.expired": (
        "Phiên đăng nhập đã hết hạn; vui lòng đăng nhập lại.",
        "Your session ended; sign in again.",
    ),
    "nav.dashboard": ("Tổng quan", "Dashboard"),
    "nav.clients": ("Ứng dụng khách", "Clients"),
    "nav.approvals": ("Phê duyệt", "Approvals"),
    "nav.audit": ("Nhật ký truy cập", "Audit log"),
    "nav.integrity": ("Toàn vẹn nhật ký", "Integrity"),
    "nav.report": ("Báo cáo công dân", "Resident report"),
    "nav.statistics": ("Thống kê", "Statistics"),
    "nav.alerts": ("Cảnh báo", "Alerts"),
    "nav.account": ("Tài khoản", "Account"),
    "nav.logout": ("Đăng xuất", "Sign out"),
    "password.title": ("Đổi mật khẩu", "Change password"),
    "password.first": (
        "Đây là lần đăng nhập đầu tiên: hãy đặt mật khẩu mới trước khi tiếp tục.",
        "This is your first sign-in: set a new password before you go on.",
    ),
    "password.current": ("Mật khẩu hiện tại", "Current password"),
    "password.new": ("Mật khẩu mới", "New password"),
    "password.confirm": ("Nhập lại mật khẩu mới", "Repeat the new password"),
    "password.rules": (
        "Ít nhất 12 ký tự, không chứa tên đăng nhập, không phải mật khẩu phổ biến.",
        "At least 12 characters, not containing the username, not a common password.",
    ),
    "password.submit": ("Đổi mật khẩu", "Change password"),
    "password.done": ("Đã đổi mật khẩu.", "Password changed."),
    "error.password_wrong": ("Mật khẩu hiện tại không đúng.", "The current password is wrong."),
    "error.password_mismatch": ("Hai mật khẩu mới không khớp.", "The two new passwords differ."),
    "error.password_too_short": ("Mật khẩu mới phải có ít nhất 12 ký tự.", "At least 12 characters."),
    "error.password_too_long": ("Mật khẩu mới quá dài.", "The new password is too long."),
    "error.control_character": ("Mật khẩu chứa ký tự điều khiển.", "No control characters."),
    "error.password_contains_username": (
        "Mật khẩu không được chứa tên đăng nhập.",
        "The password contains the username.",
    ),
    "error.password_common": ("Mật khẩu quá phổ biến.", "The password is too common."),
    "error.password_unchanged": (
        "Mật khẩu mới trùng mật khẩu hiện tại.",
        "The new password is the current one.",
    ),
    "enrol.title": ("Đăng ký ứng dụng xác thực", "Set up your authenticator"),
    "enrol.required": (
        "Cổng yêu cầu mã xác thực cho mọi cán bộ: hãy đăng ký ứng dụng xác thực trước khi tiếp tục.",
        "The gateway requires a code from every operator: set up an authenticator before you go on.",
    ),
    "enrol.scan": (
        "Quét mã QR bằng ứng dụng xác thực (Google Authenticator, Microsoft Authenticator, FreeOTP...) "
        "hoặc nhập khóa bí mật dưới đây, rồi nhập mã 6 chữ số mà ứng dụng hiển thị.",
        "Scan the QR code with an authenticator app (Google Authenticator, Microsoft Authenticator, "
        "FreeOTP...) or type the secret below, then enter the 6-digit code it shows.",
    ),
    "enrol.secret": ("Khóa bí mật", "Secret"),
    "enrol.code": ("Mã 6 chữ số", "6-digit code"),
    "enrol.submit": ("Xác nhận đăng ký", "Confirm"),
    "enrol.wrong": ("Mã không đúng; hãy thử mã mới.", "Wrong code; try the next one."),
    "enrol.done": ("Đã đăng ký ứng dụng xác thực.", "Authenticator set up."),
    "account.title": ("Tài khoản của tôi", "My account"),
    "account.display_name": ("Họ tên", "Name"),
    "account.roles": ("Vai trò", "Roles"),
    "account.totp": ("Ứng dụng xác thực", "Authenticator"),
    "account.totp.yes": ("Đã đăng ký", "Set up"),
    "account.totp.no": ("Chưa đăng ký", "Not set up"),
    "account.last_login": ("Đăng nhập gần nhất", "Last sign-in"),
    "account.enrol": ("Đăng ký (lại) ứng dụng xác thực", "Set up (again) an authenticator"),
    "role.admin": ("Quản trị", "Administrator"),
    "role.approver": ("Phê duyệt", "Approver"),
    "role.auditor": ("Kiểm toán", "Auditor"),
    "role.analyst": ("Phân tích thống kê", "Analyst"),
    "dash.title": ("Tổng quan", "Dashboard"),
    "dash.today": ("Lượt truy cập hôm nay", "Accesses today"),
    "dash.30days": ("Lượt truy cập 30 ngày qua", "Accesses over 30 days"),
    "dash.denial_rate": ("Tỷ lệ từ chối (30 ngày)", "Denial rate (30 days)"),
    "dash.busiest": ("Ứng dụng khách truy cập nhiều nhất (30 ngày)", "Busiest clients (30 days)"),
    "dash.integrity": ("Toàn vẹn nhật ký", "Audit-log integrity"),
    "dash.chain_ok": ("Chuỗi băm không bị chặn", "Chain not blocked"),
    "dash.chain_blocked": ("Chuỗi bị chặn tại seq", "Chain blocked at seq"),
    "dash.events": ("Số sự kiện", "Events"),
    "dash.checkpoint": ("Điểm kiểm tra gần nhất", "Latest checkpoint"),
    "dash.checkpoint_none": ("Chưa có điểm kiểm tra", "No checkpoint yet"),
    "dash.full_check": (
        "Kiểm tra toàn bộ chuỗi: trang Toàn vẹn nhật ký (issue 16).",
        "Full chain check: the Integrity page (issue 16).",
    ),
    "dash.pending": ("Thay đổi chờ phê duyệt", "Pending approvals"),
    "dash.alerts": ("Cảnh báo đang mở", "Open alerts"),
    "dash.client": ("Ứng dụng khách", "Client"),
    "dash.count": ("Lượt", "Accesses"),
    "dash.none": ("Chưa có dữ liệu", "No data yet"),
    "placeholder": ("Chưa có: sẽ được xây dựng ở issue {issue}.", "Not built yet: issue {issue} builds it."),
    "forbidden.title": ("Không có quyền truy cập", "Not allowed"),
    "forbidden.text": (
        "Vai trò của bạn không cho phép mở trang này.",
        "Your roles do not allow this page.",
    ),
    "csrf.title": ("Yêu cầu bị từ chối", "Request refused"),
    "csrf.text": (
        "Yêu cầu thiếu mã chống giả mạo (CSRF) hợp lệ nên không có gì thay đổi. Hãy tải lại trang và thử lại.",
        "The request lacked a valid anti-forgery (CSRF) token, so nothing changed. Reload the page and try again.",
    ),
    "approvals.title": ("Thay đổi chờ phê duyệt", "Pending changes"),
    "approvals.none": ("Không có thay đổi nào chờ phê duyệt.", "No change is waiting."),
    "approvals.requested_by": ("Người yêu cầu", "Requested by"),
    "approvals.target": ("Đối tượng", "Target"),
    "approvals.action": ("Thay đổi", "Change"),
    "approvals.widens": ("Mở rộng", "Widens"),
    "approvals.before": ("Trước", "Before"),
    "approvals.after": ("Sau", "After"),
    "approvals.reason": ("Lý do", "Reason"),
    "approvals.approve": ("Phê duyệt", "Approve"),
    "approvals.reject": ("Từ chối", "Reject"),
    "approvals.approved": ("Đã phê duyệt và áp dụng.", "Approved and applied."),
    "approvals.rejected": ("Đã từ chối.", "Rejected."),
    "approvals.self": (
        "Không được tự phê duyệt thay đổi của chính mình (self_approval): cần một người phê duyệt khác.",
        "You cannot approve your own change (self_approval): another approver must.",
    ),
    "approvals.gone": (
        "Thay đổi đã được quyết định, hoặc đối tượng đã thay đổi kể từ khi yêu cầu.",
        "The change was already decided, or its target changed since it was requested.",
    ),
    "clients.title": ("Ứng dụng khách", "Clients"),
    "clients.name": ("Tên", "Name"),
    "clients.status": ("Trạng thái", "Status"),
    "clients.grant": ("Quyền được cấp", "Grant"),
    "clients.edit": ("Sửa quyền", "Edit grant"),
    "grant.title": ("Quyền được cấp của", "Grant of"),
    "grant.scopes": ("Phạm vi (scopes, cách nhau bởi dấu phẩy)", "Scopes (comma-separated)"),
    "grant.fields": (
        "Trường dữ liệu (dấu phẩy, * = mọi trường không nhạy cảm)",
        "Fields (comma-separated, * = every non-sensitive one)",
    ),
    "grant.provinces": (
        "Tỉnh/thành (mã, dấu phẩy, * = tất cả)",
        "Provinces (codes, comma-separated, * = all)",
    ),
    "grant.purposes": ("Mục đích sử dụng (mã, dấu phẩy)", "Purposes (codes, comma-separated)"),
    "grant.rate": ("Số yêu cầu mỗi phút", "Requests per minute"),
    "grant.distinct": ("Số công dân khác nhau mỗi ngày", "Distinct residents a day"),
    "grant.submit": ("Lưu", "Save"),
    "grant.saved": ("Đã lưu.", "Saved."),
    "grant.pending": (
        "Thay đổi mở rộng quyền: đang chờ một người phê duyệt khác.",
        "The change widens access: it waits for another approver.",
    ),
    "grant.invalid": ("Dữ liệu không hợp lệ:", "Invalid input:"),
    "tz": ("Giờ Việt Nam (UTC+7)", "Vietnam time (UTC+7)"),
    # --- clients, grants (admin pages) ---------------------------------------------------------------------
    # --- purposes, signing keys, approvals, dashboard ------------------------------------------------------
    # --- audit search, event detail, export ----------------------------------------------------------------
    "audit.title": ("Tra cứu nhật ký truy cập", "Audit search"),
    "audit.personal_id": ("Số định danh cá nhân của công dân", "Resident's personal ID"),
    "audit.personal_id.hint": (
        "12 chữ số; tìm cả lượt truy cập và lượt bị từ chối. Số này không bao giờ xuất hiện trong địa chỉ trang.",
        "12 digits; finds accesses and refused attempts. It never appears in a page address.",
    ),
    "audit.client_id": ("Ứng dụng khách (client_id)", "Client (client_id)"),
    "audit.purpose": ("Mục đích (mã)", "Purpose (code)"),
    "audit.action": ("Hành động", "Action"),
    "audit.outcome": ("Kết quả", "Outcome"),
    "audit.any": ("Tất cả", "Any"),
    "audit.outcome.allowed": ("Cho phép", "Allowed"),
    "audit.outcome.denied": ("Từ chối", "Denied"),
    "audit.outcome.error": ("Lỗi", "Error"),
    "audit.end_user": ("Người dùng cuối (X-End-User)", "End user (X-End-User)"),
    "audit.dossier_id": ("Mã hồ sơ", "Dossier"),
    "audit.since": ("Từ (giờ Việt Nam)", "From (Vietnam time)"),
    "audit.until": ("Đến trước (giờ Việt Nam)", "Until, excluded (Vietnam time)"),
    "audit.times": (
        "Thời gian nhập và hiển thị theo giờ Việt Nam (UTC+7); tìm kiếm theo UTC.",
        "Times are typed and shown in Vietnam time (UTC+7) and searched in UTC.",
    ),
    "audit.order": ("Thứ tự", "Order"),
    "audit.order.desc": ("Mới nhất trước", "Newest first"),
    "audit.order.asc": ("Cũ nhất trước", "Oldest first"),
    "audit.submit": ("Tìm kiếm", "Search"),
    "audit.results": ("Kết quả", "Results"),
    "audit.none": ("Không có sự kiện nào khớp.", "No event matches."),
    "audit.at": ("Thời điểm (giờ Việt Nam)", "When (Vietnam time)"),
    "audit.actor": ("Người thực hiện", "Actor"),
    "audit.fields": ("Trường dữ liệu", "Fields"),
    "audit.detail": ("Chi tiết", "Detail"),
    "audit.pages": ("Trang kết quả", "Result pages"),
    "audit.first": ("« Trang đầu", "« First page"),
    "audit.next": ("Trang sau »", "Next page »"),
    "audit.export.csv": ("Xuất CSV", "Export CSV"),
    "audit.export.ndjson": ("Xuất NDJSON", "Export NDJSON"),
    "audit.export.hint": (
        "Xuất mọi sự kiện khớp với tìm kiếm này (không chỉ trang đang xem); việc xuất cũng được ghi nhật ký.",
        "Exports every event this search matches (not only this page); the export is audited too.",
    ),
    "audit.expired": (
        "Kết quả tìm kiếm này đã hết hạn hoặc thuộc phiên đăng nhập khác: hãy tìm lại.",
        "These results expired or belong to another session: search again.",
    ),
    "audit.error.invalid_personal_id": (
        "Số định danh cá nhân không hợp lệ: gồm 12 chữ số, bắt đầu bằng một trong 63 mã tỉnh.",
        "Invalid personal ID: 12 digits starting with one of the 63 province codes.",
    ),
    "audit.error.too_long": ("Giá trị quá dài.", "Too long."),
    "audit.error.empty": ("Giá trị không được để trống.", "Must not be empty."),
    "audit.error.control": ("Không được chứa ký tự điều khiển.", "No control characters."),
    "audit.error.choice": ("Lựa chọn không hợp lệ.", "Not one of the choices."),
    "audit.error.time": (
        "Thời gian không hợp lệ: chọn ngày và giờ (giờ Việt Nam).",
        "Invalid time: pick a date and a time (Vietnam time).",
    ),
    "audit.error.invalid": ("Giá trị không hợp lệ.", "Invalid value."),
    "audit.error.cursor": (
        "Liên kết trang không hợp lệ: hãy mở lại trang đầu.",
        "Invalid page link: open the first page again.",
    ),
    "audit.error.invalid_cursor": (
        "Liên kết trang không hợp lệ: hãy mở lại trang đầu.",
        "Invalid page link: open the first page again.",
    ),
    "audit.error.audit_unavailable": (
        "Không ghi được nhật ký cho lượt đọc này nên không hiển thị dữ liệu; hãy thử lại sau.",
        "This read could not be audited, so nothing is shown; try again later.",
    ),
    "audit.event.title": ("Chi tiết sự kiện nhật ký", "Audit event"),
    "audit.event.none": ("Không có sự kiện nhật ký nào với mã này.", "No audit event has this id."),
    "audit.event.chain": ("Vị trí trong chuỗi băm", "Place in the hash chain"),
    "audit.event.at": ("Thời điểm (giờ Việt Nam)", "When (Vietnam time)"),
    "audit.event.prev_hash": ("Băm của sự kiện trước (prev_hash)", "Predecessor's hash (prev_hash)"),
    "audit.event.hash": ("Băm của sự kiện này (hash)", "This event's hash (hash)"),
    "audit.event.chain_text": (
        "Sự kiện số {seq} nối tiếp sự kiện số {prev}: prev_hash là hash của sự kiện {prev}, và hash bao trùm "
        "prev_hash cùng mọi trường khác (docs/audit-format.md). Trang Toàn vẹn nhật ký kiểm tra cả chuỗi.",
        "Event {seq} follows event {prev}: prev_hash is the hash of event {prev}, and hash covers prev_hash "
        "and every other member (docs/audit-format.md). The Integrity page checks the whole chain.",
    ),
    "audit.event.members": ("Mọi trường của sự kiện", "Every member of the event"),
    "audit.back": ("« Quay lại tra cứu", "« Back to the search"),
    # --- integrity, resident report --------------------------------------------------------------------------
    # --- statistics (analyst) --------------------------------------------------------------------------------
    # --- end of the words ------------------------------------------------------------------------------------
}


def translate(key: str, lang: Lang) -> str:
    pair = TEXT.get(key)
    if pair is None:
        return key
    return pair[0] if lang == "vi" else pair[1]
