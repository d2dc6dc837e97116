"""Vietnamese of the shared page machinery and the integrators' reference (English source strings are the ids)."""

VI: dict[str, str] = {
    # layout, errors, login
    "National public service portal": "Cổng Dịch vụ công quốc gia",
    "Skip to main content": "Bỏ qua, đến nội dung chính",
    "Language": "Ngôn ngữ",
    "Times are Viet Nam time (UTC+7).": "Thời gian theo giờ Việt Nam (UTC+7).",
    "Error code": "Mã lỗi",
    "Go to the home page": "Về trang chủ",
    "Page not found": "Không tìm thấy trang",
    "The request could not be accepted": "Không thể tiếp nhận yêu cầu",
    "Please log in": "Vui lòng đăng nhập",
    "Not allowed": "Không được phép",
    "This cannot be done now": "Chưa thể thực hiện việc này",
    "The file is too large": "Tệp quá lớn",
    "Too many requests": "Quá nhiều yêu cầu",
    "Temporarily unavailable": "Tạm thời không phục vụ được",
    "Something went wrong": "Đã có lỗi xảy ra",
    "Please try again later.": "Vui lòng thử lại sau.",
    "Please try again later. If it happens again, quote this code to support: %(code)s":
        "Vui lòng thử lại sau. Nếu lỗi lặp lại, hãy báo mã này cho bộ phận hỗ trợ: %(code)s",
    "This form was sent from another site and was refused.": "Biểu mẫu này được gửi từ một trang khác nên bị từ chối.",
    "The form has expired or was not sent from this site. Go back, reload the page and try again.":
        "Biểu mẫu đã hết hạn hoặc không được gửi từ trang này. Hãy quay lại, tải lại trang và thử lại.",
    "Login was cancelled": "Đăng nhập đã bị hủy",
    "You can try again from the home page.": "Bạn có thể thử lại từ trang chủ.",
    "This login link is not valid": "Liên kết đăng nhập không hợp lệ",
    "Please start the login again.": "Vui lòng đăng nhập lại từ đầu.",
    "These pages are for citizens": "Các trang này dành cho công dân",
    "Log in with a citizen's VNeID account.": "Hãy đăng nhập bằng tài khoản VNeID của công dân.",
    "Login is not available right now": "Hiện chưa thể đăng nhập",
    "Please try again in a few minutes.": "Vui lòng thử lại sau ít phút.",
    "Login did not succeed": "Đăng nhập không thành công",
    # the reference: chrome
    "Integrators' reference": "Tài liệu tích hợp",
    "Reference contents": "Mục lục tài liệu",
    "Generated from the proto files, the code and docs/ of the platform; API comments are in English.":
        "Sinh tự động từ các tệp proto, mã nguồn và thư mục docs/ của nền tảng; chú thích API viết bằng tiếng Anh.",
    "The reference is not available": "Tài liệu tích hợp chưa sẵn sàng",
    "It has not been built on this server.": "Tài liệu chưa được tạo trên máy chủ này.",
    "Everything a provincial dossier system, a ministry, a bank or a biller needs to connect to the platform: the "
    "gRPC APIs, their errors, how to check the callbacks we send, the connection standard for banks, and the "
    "sandboxes to try it all.":
        "Mọi điều hệ thống hồ sơ của tỉnh, bộ, ngân hàng hay đơn vị thu phí cần để kết nối với nền tảng: các API "
        "gRPC, mã lỗi, cách kiểm tra thông báo (callback) chúng tôi gửi, tiêu chuẩn kết nối cho ngân hàng và môi "
        "trường thử nghiệm (sandbox) để thử tất cả.",
    "APIs": "Các API",
    "%(count)s RPCs": "%(count)s RPC",
    "Before you start": "Trước khi bắt đầu",
    "Errors": "Mã lỗi",
    "every reason code the services answer with, and the gRPC status it comes with":
        "mọi mã lý do (reason) các dịch vụ trả về, kèm mã trạng thái gRPC",
    "Callback signatures": "Chữ ký thông báo (callback)",
    "how to verify the status callbacks the platform sends, with a worked example":
        "cách xác minh thông báo trạng thái nền tảng gửi đi, có ví dụ tính sẵn",
    "Sandbox guide": "Hướng dẫn môi trường thử nghiệm",
    "test agencies, test citizens, client credentials and magic amounts":
        "cơ quan thử nghiệm, công dân thử nghiệm, thông tin đăng nhập máy và số tiền đặc biệt",
    "Guides": "Hướng dẫn",
    "Source": "Nguồn",
    # the reference: API pages
    "Service": "Dịch vụ",
    "Messages": "Thông điệp (message)",
    "Enums": "Kiểu liệt kê (enum)",
    "client stream": "luồng từ phía gọi",
    "server stream": "luồng từ máy chủ",
    "Request": "Yêu cầu",
    "Response": "Phản hồi",
    "Field": "Trường",
    "Number": "Số hiệu",
    "Type": "Kiểu",
    "Description": "Mô tả",
    "No fields.": "Không có trường nào.",
    "Value": "Giá trị",
    "No enums.": "Không có kiểu liệt kê nào.",
    # the reference: errors
    "A failed call ends with a gRPC status code and a google.rpc.Status carrying an ErrorInfo detail: its reason is "
    "a stable code in UPPER_SNAKE_CASE (listed below), its domain is %(domain)s and its metadata gives specifics. "
    "Requests with bad fields also carry a BadRequest detail naming each field and what is wrong with it, all at "
    "once.":
        "Một lời gọi thất bại kết thúc bằng mã trạng thái gRPC và một google.rpc.Status chứa chi tiết ErrorInfo: "
        "reason là mã ổn định dạng UPPER_SNAKE_CASE (liệt kê dưới đây), domain là %(domain)s và metadata cho biết "
        "chi tiết. Yêu cầu có trường sai còn kèm chi tiết BadRequest nêu từng trường sai và lý do, tất cả cùng lúc.",
    "Program against the reason code, never the message text: messages are for people and may change.":
        "Hãy lập trình theo mã reason, không theo nội dung thông báo: thông báo dành cho con người và có thể thay đổi.",
    "Status codes": "Mã trạng thái",
    "Error kind": "Loại lỗi",
    "gRPC status": "Trạng thái gRPC",
    "Reason when none is given": "Reason mặc định",
    "anything unexpected": "mọi lỗi ngoài dự kiến",
    "none: the message carries a request id to quote to support":
        "không có: thông báo kèm mã yêu cầu (request id) để báo cho bộ phận hỗ trợ",
    "Reason": "Mã lý do",
    "When (message)": "Khi nào (thông báo)",
    "Raised in": "Phát sinh tại",
    "Every service": "Mọi dịch vụ",
    "Payments": "Thanh toán",
    "Wallet": "Kho dữ liệu",
    "Identity": "Định danh",
    # the reference: callbacks
    "The platform POSTs each payment event to the agency's callback URL. The header X-DVC-Signature proves the "
    "callback comes from the platform and is recent:":
        "Nền tảng gửi (POST) từng sự kiện thanh toán tới địa chỉ callback của cơ quan. Tiêu đề X-DVC-Signature chứng "
        "minh thông báo đến từ nền tảng và còn mới:",
    "Take t from the header and the raw body bytes exactly as received (before any JSON parsing).":
        "Lấy t trong tiêu đề và nguyên các byte của thân thông báo như đã nhận (trước khi phân tích JSON).",
    "Compute HMAC-SHA256 with your callback secret over the bytes of t, a full stop, and the body.":
        "Tính HMAC-SHA256 bằng khóa bí mật callback của bạn trên các byte của t, một dấu chấm và thân thông báo.",
    "Compare it in constant time with each v1 value; one match is enough (during a secret rotation there is one v1 "
    "per active secret).":
        "So sánh (thời gian không đổi) với từng giá trị v1; chỉ cần một giá trị khớp (khi đổi khóa, mỗi khóa còn hiệu "
        "lực có một v1).",
    "Refuse the callback when t is more than 300 seconds away from your clock (a replay), then deduplicate on "
    "X-DVC-Event-Id and order events by their sequence.":
        "Từ chối thông báo khi t lệch quá 300 giây so với đồng hồ của bạn (gửi lại trái phép), sau đó loại trùng theo "
        "X-DVC-Event-Id và sắp xếp sự kiện theo sequence.",
    "Answer 2xx to acknowledge; anything else is retried with backoff for three days.":
        "Trả lời 2xx để xác nhận; mọi trả lời khác sẽ được gửi lại giãn dần trong ba ngày.",
    "Worked example": "Ví dụ tính sẵn",
    "Computed when this reference was built, by the platform's own signer; recompute it to check your "
    "implementation.":
        "Được tính khi tạo tài liệu này, bằng chính bộ ký của nền tảng; hãy tính lại để kiểm tra mã của bạn.",
    "Secret": "Khóa bí mật",
    "Body (exact bytes, UTF-8)": "Thân thông báo (đúng từng byte, UTF-8)",
    "Signed string": "Chuỗi được ký",
    "HMAC-SHA256 (hex)": "HMAC-SHA256 (hệ 16)",
    "Header": "Tiêu đề",
    "During a rotation": "Khi đổi khóa",
    "After RotateCallbackSecret the platform signs with the new secret (%(next)s here) and the previous one until it "
    "expires:":
        "Sau RotateCallbackSecret, nền tảng ký bằng khóa mới (ở đây là %(next)s) và cả khóa cũ cho đến khi khóa cũ "
        "hết hạn:",
    "Verifying it": "Cách xác minh",
    "In Python (or copy payment_service/callback_signature.py, which has no dependencies):":
        "Bằng Python (hoặc sao chép payment_service/callback_signature.py, không phụ thuộc thư viện nào):",
    "With a shell, for the example above:": "Bằng dòng lệnh, cho ví dụ trên:",
    # the reference: sandbox guide
    "Test citizens": "Công dân thử nghiệm",
    "Test officials": "Cán bộ thử nghiệm",
    "Machine clients": "Hệ thống kết nối",
    "Test agencies": "Cơ quan thử nghiệm",
    "Test issuers": "Cơ quan cấp thử nghiệm",
    "Bank sandboxes": "Ngân hàng thử nghiệm",
    "Magic amounts": "Số tiền đặc biệt",
    "Every counterpart of the platform has a sandbox that speaks its real protocol. make run starts them all; this "
    "page lists the test data they and the development seeds publish. None of it is secret and none of it works in "
    "production.":
        "Mỗi bên kết nối với nền tảng đều có một môi trường thử nghiệm nói đúng giao thức thật của họ. make run khởi "
        "động tất cả; trang này liệt kê dữ liệu thử nghiệm mà chúng và dữ liệu khởi tạo khi phát triển công bố. Không "
        "có gì là bí mật và không có gì dùng được trong môi trường thật.",
    "Development and test only: the credentials below are published on purpose.":
        "Chỉ dùng khi phát triển và thử nghiệm: các thông tin đăng nhập dưới đây được công bố có chủ đích.",
    "Test citizens (VNeID sandbox)": "Công dân thử nghiệm (VNeID thử nghiệm)",
    "Run python -m identity_service.sandbox (port 8091); its login page lists these people, no password needed. Any "
    "other 12-digit number logs in as a generated citizen.":
        "Chạy python -m identity_service.sandbox (cổng 8091); trang đăng nhập liệt kê những người này, không cần mật "
        "khẩu. Mọi số 12 chữ số khác đăng nhập thành một công dân được tạo tự động.",
    "National ID number": "Số định danh cá nhân",
    "Name": "Họ và tên",
    "VNeID level": "Mức định danh VNeID",
    "Note": "Ghi chú",
    "Test officials (agency identity provider sandbox)": "Cán bộ thử nghiệm (hệ thống xác thực cơ quan thử nghiệm)",
    "User name": "Tên đăng nhập",
    "Agency": "Cơ quan",
    "Roles": "Vai trò",
    "Machine clients (development seed of the identity service)":
        "Hệ thống kết nối (dữ liệu khởi tạo của dịch vụ định danh khi phát triển)",
    "Get a token with IssueClientToken (client id, secret, audience) or POST /token on the identity edge.":
        "Lấy token bằng IssueClientToken (client id, secret, audience) hoặc POST /token trên cổng HTTP của dịch vụ "
        "định danh.",
    "Client id": "Mã hệ thống (client id)",
    "Scopes": "Phạm vi quyền",
    "What it stands for": "Đại diện cho",
    "Test agencies (payment service demo seed)": "Cơ quan thử nghiệm (dữ liệu mẫu của dịch vụ thanh toán)",
    "Agency code": "Mã cơ quan",
    "Beneficiary accounts (BIN / account)": "Tài khoản thụ hưởng (BIN / số tài khoản)",
    "Test issuers (wallet development keys)": "Cơ quan cấp thử nghiệm (khóa phát triển của kho dữ liệu)",
    "In development the wallet registers these issuing agencies' keys; the private keys are derived from the agency "
    "code (see wallet_service.bootstrap.dev_issuer_keys).":
        "Khi phát triển, kho dữ liệu đăng ký khóa của các cơ quan cấp này; khóa bí mật được suy ra từ mã cơ quan "
        "(xem wallet_service.bootstrap.dev_issuer_keys).",
    "Agency kind": "Loại cơ quan",
    "Algorithm": "Thuật toán",
    "Key id": "Mã khóa",
    "Bank and intermediary sandboxes": "Ngân hàng và trung gian thanh toán thử nghiệm",
    "python -m payment_service.sandbox starts them on these ports; each has a payer page at /sandbox/pay/<reference> "
    "and a JSON API (see the sandboxes guide).":
        "python -m payment_service.sandbox khởi động chúng trên các cổng này; mỗi nơi có trang cho người nộp tại "
        "/sandbox/pay/<reference> và một API JSON (xem hướng dẫn sandbox).",
    "Sandboxes guide": "Hướng dẫn sandbox",
    "Connector": "Kênh kết nối",
    "Default port": "Cổng mặc định",
    "The last two digits of the amount in đồng choose how the sandboxes behave; amounts ending in 00, like every real "
    "fee, behave normally.":
        "Hai chữ số cuối của số tiền (đồng) quyết định cách sandbox xử lý; số tiền tận cùng bằng 00, như mọi khoản phí "
        "thật, được xử lý bình thường.",
    "Amount ends in": "Số tiền tận cùng bằng",
    "What happens": "Điều xảy ra",
}
