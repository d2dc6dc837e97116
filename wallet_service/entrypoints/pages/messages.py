"""Vietnamese of the wallet pages (English source strings are the message ids)."""

VI: dict[str, str] = {
    # layout and landing
    "Personal e-document wallet": "Kho quản lý dữ liệu điện tử của cá nhân",
    "Wallet": "Kho dữ liệu",
    "My documents": "Giấy tờ của tôi",
    "Upload a scan": "Tải lên bản chụp",
    "Shares": "Chia sẻ",
    "Who accessed my data": "Ai đã truy cập dữ liệu của tôi",
    "VNeID level %(level)s": "VNeID mức %(level)s",
    "Log out": "Đăng xuất",
    "You have logged out.": "Bạn đã đăng xuất.",
    "Your documents, issued once and reused with your consent":
        "Giấy tờ của bạn: cấp một lần, dùng lại khi bạn đồng ý",
    "Results that agencies issue to you (birth certificates, judicial records, licences, fee receipts...) are kept "
    "here, signed by the agency that issued them. When you file a new dossier you share them with the receiving "
    "agency instead of submitting copies again, and you can see every access to your data.":
        "Kết quả giải quyết thủ tục mà cơ quan cấp cho bạn (giấy khai sinh, phiếu lý lịch tư pháp, giấy phép, biên lai "
        "phí...) được lưu tại đây, có chữ ký số của cơ quan cấp. Khi nộp hồ sơ mới, bạn chia sẻ chúng cho cơ quan "
        "tiếp nhận thay vì nộp lại bản sao, và bạn xem được mọi lần truy cập dữ liệu của mình.",
    "Log in with VNeID": "Đăng nhập bằng VNeID",
    "You will be sent to VNeID to log in, then brought back here.":
        "Bạn sẽ được chuyển sang VNeID để đăng nhập, rồi quay lại đây.",
    # forms
    "Error": "Lỗi",
    "Please correct the following": "Vui lòng sửa các mục sau",
    # documents
    "Share documents for a dossier": "Chia sẻ giấy tờ cho hồ sơ",
    "Show documents in force only": "Chỉ hiện giấy tờ còn hiệu lực",
    "Also show revoked, replaced and expired documents": "Hiện cả giấy tờ đã thu hồi, đã thay thế và hết hạn",
    "Document": "Giấy tờ",
    "Issued by": "Cơ quan cấp",
    "Issued on": "Ngày cấp",
    "Valid": "Hiệu lực",
    "Trust": "Độ tin cậy",
    "You (upload)": "Bạn (tự tải lên)",
    "until %(day)s": "đến %(day)s",
    "no expiry": "không thời hạn",
    "Next page": "Trang sau",
    "Your wallet has no documents yet. Documents that agencies issue to you appear here; you can also upload your "
    "own scans.":
        "Kho của bạn chưa có giấy tờ nào. Giấy tờ cơ quan cấp cho bạn sẽ hiện ở đây; bạn cũng có thể tải lên bản chụp "
        "của mình.",
    "Untitled document": "Giấy tờ chưa đặt tên",
    "Valid from": "Hiệu lực từ",
    "Valid until": "Hiệu lực đến",
    "Not yet valid": "Chưa có hiệu lực",
    "Expired": "Hết hạn",
    "Revoked": "Đã thu hồi",
    "Replaced by a newer version": "Đã được thay thế bằng bản mới",
    "Issued and signed by the agency": "Do cơ quan cấp và ký số",
    "Uploaded by you (not verified)": "Bạn tự tải lên (chưa được xác thực)",
    "Signature and content verified": "Đã xác minh chữ ký và nội dung",
    "Content altered in storage": "Nội dung lưu trữ đã bị thay đổi",
    "Signature does not verify": "Chữ ký không hợp lệ",
    "Content missing": "Mất nội dung",
    "Content intact, not signed": "Nội dung nguyên vẹn, không có chữ ký",
    # one document
    "Your scan was stored in your wallet.": "Bản chụp đã được lưu vào kho của bạn.",
    "checked at %(time)s": "kiểm tra lúc %(time)s",
    "The content is exactly what %(agency)s issued and signed.":
        "Nội dung đúng như %(agency)s đã cấp và ký số.",
    "You uploaded this scan yourself: no agency vouches for its content, and receiving agencies see that.":
        "Bạn tự tải bản chụp này lên: không cơ quan nào xác nhận nội dung, và cơ quan tiếp nhận sẽ thấy điều đó.",
    "Document type": "Loại giấy tờ",
    "Not classified": "Chưa phân loại",
    "Status": "Trạng thái",
    "the day of issue": "ngày cấp",
    "Reason given by the issuer": "Lý do cơ quan cấp đưa ra",
    "Replaced by": "Được thay bằng",
    "the newer version": "bản mới hơn",
    "File": "Tệp",
    "SHA-256 fingerprint": "Dấu vân tay SHA-256",
    "Document id": "Mã giấy tờ",
    "Details recorded by the issuer": "Thông tin do cơ quan cấp ghi nhận",
    "Details you entered": "Thông tin bạn nhập",
    "Field": "Trường",
    "Value": "Giá trị",
    "View": "Xem",
    "Download": "Tải về",
    "Share for a dossier": "Chia sẻ cho hồ sơ",
    # upload
    "Keep your own scans (PDF, PNG, JPEG or XML, at most 20 MB) beside the documents agencies issued. They are "
    "marked as uploaded by you.":
        "Lưu bản chụp của bạn (PDF, PNG, JPEG hoặc XML, tối đa 20 MB) cạnh giấy tờ do cơ quan cấp. Chúng được đánh "
        "dấu là do bạn tự tải lên.",
    "PDF, PNG, JPEG or XML, at most 20 MB": "PDF, PNG, JPEG hoặc XML, tối đa 20 MB",
    "Title": "Tên giấy tờ",
    "Document type (optional)": "Loại giấy tờ (không bắt buộc)",
    "Upload": "Tải lên",
    "Choose the file to upload.": "Hãy chọn tệp cần tải lên.",
    "Give the document a title.": "Hãy đặt tên cho giấy tờ.",
    "Check the title and the document type.": "Hãy kiểm tra tên và loại giấy tờ.",
    "The file could not be stored.": "Không lưu được tệp.",
    "The file is larger than 20 MB.": "Tệp lớn hơn 20 MB.",
    "The file is empty.": "Tệp rỗng.",
    "Only PDF, PNG, JPEG or XML files can be uploaded.": "Chỉ tải lên được tệp PDF, PNG, JPEG hoặc XML.",
    # shares
    "The receiving agency will be able to take the documents you choose, for this dossier only, until the share "
    "expires or you revoke it. Every time it does so appears in your access log.":
        "Cơ quan tiếp nhận sẽ lấy được các giấy tờ bạn chọn, chỉ cho hồ sơ này, cho đến khi hết hạn chia sẻ hoặc bạn "
        "thu hồi. Mỗi lần họ lấy đều được ghi vào nhật ký truy cập của bạn.",
    "Documents to share": "Giấy tờ cần chia sẻ",
    "You have no documents in force to share.": "Bạn không có giấy tờ còn hiệu lực để chia sẻ.",
    "Receiving agency code": "Mã cơ quan tiếp nhận",
    "As printed on the dossier receipt, for example UBND-Q1 or HN":
        "Như in trên giấy tiếp nhận hồ sơ, ví dụ UBND-Q1 hoặc HN",
    "Dossier code": "Mã hồ sơ",
    "The code of the dossier (mã hồ sơ) the documents are for": "Mã của hồ sơ cần các giấy tờ này",
    "Procedure code": "Mã thủ tục hành chính",
    "The administrative procedure (mã TTHC), for example 1.001612": "Mã thủ tục hành chính (TTHC), ví dụ 1.001612",
    "Purpose": "Mục đích",
    "Last day the share may be used": "Ngày cuối cùng được dùng chia sẻ",
    "At most 30 days from today": "Tối đa 30 ngày kể từ hôm nay",
    "How many times may the agency take the documents?": "Cơ quan được lấy giấy tờ bao nhiêu lần?",
    "Once": "Một lần",
    "Any number of times until the share expires": "Không giới hạn cho đến khi hết hạn chia sẻ",
    "Grant the share": "Đồng ý chia sẻ",
    "Give the last day the share may be used.": "Hãy chọn ngày cuối cùng được dùng chia sẻ.",
    "Choose at least one document.": "Hãy chọn ít nhất một giấy tờ.",
    "A revoked document cannot be shared.": "Không thể chia sẻ giấy tờ đã bị thu hồi.",
    "Show active shares only": "Chỉ hiện chia sẻ còn hiệu lực",
    "Also show expired, revoked and used-up shares": "Hiện cả chia sẻ đã hết hạn, đã thu hồi và đã dùng hết",
    "You have no active shares.": "Bạn không có chia sẻ nào đang hiệu lực.",
    "Share": "Chia sẻ",
    "Share code": "Mã chia sẻ",
    "Receiving agency": "Cơ quan tiếp nhận",
    "Dossier": "Hồ sơ",
    "Procedure": "Thủ tục",
    "Granted": "Ngày chia sẻ",
    "Expires": "Hết hạn",
    "Used": "Đã dùng",
    "Active": "Đang hiệu lực",
    "Used up": "Đã dùng hết",
    "no limit until it expires": "không giới hạn đến khi hết hạn",
    "The share was granted. Give the share code below to the receiving agency together with your dossier.":
        "Đã chia sẻ. Hãy đưa mã chia sẻ dưới đây cho cơ quan tiếp nhận cùng với hồ sơ của bạn.",
    "The share was revoked: the agency can no longer take these documents.":
        "Đã thu hồi chia sẻ: cơ quan không thể lấy các giấy tờ này nữa.",
    "Share for dossier %(dossier)s": "Chia sẻ cho hồ sơ %(dossier)s",
    "Shared documents": "Giấy tờ được chia sẻ",
    "Your current document of type %(type)s": "Giấy tờ hiện hành của bạn thuộc loại %(type)s",
    "Revoke this share? The agency will no longer be able to take these documents.":
        "Thu hồi chia sẻ này? Cơ quan sẽ không thể lấy các giấy tờ này nữa.",
    "Revoke the share": "Thu hồi chia sẻ",
    "See who accessed your documents": "Xem ai đã truy cập giấy tờ của bạn",
    # access log
    "Every time someone reads, receives, issues or changes your documents — and every share you grant or revoke — is "
    "written here: who, when, and why.":
        "Mỗi lần ai đó đọc, nhận, cấp hoặc thay đổi giấy tờ của bạn — và mỗi lần bạn chia sẻ hay thu hồi chia sẻ — "
        "đều được ghi ở đây: ai, khi nào và vì sao.",
    "The log is intact: %(count)s entries checked, none altered or removed.":
        "Nhật ký nguyên vẹn: đã kiểm tra %(count)s mục, không mục nào bị sửa hay xóa.",
    "Warning: the log's chain of fingerprints is broken. Please report this to the platform's support.":
        "Cảnh báo: chuỗi dấu vân tay của nhật ký bị đứt. Vui lòng báo cho bộ phận hỗ trợ của nền tảng.",
    "Show everything, including my own actions": "Hiện tất cả, kể cả thao tác của tôi",
    "Show only what others did": "Chỉ hiện thao tác của người khác",
    "When": "Khi nào",
    "Who": "Ai",
    "What": "Việc gì",
    "Why": "Vì sao",
    "a document no longer in your wallet": "một giấy tờ không còn trong kho",
    "share": "chia sẻ",
    "Dossier %(dossier)s": "Hồ sơ %(dossier)s",
    "procedure %(code)s": "thủ tục %(code)s",
    "for %(agency)s": "cho %(agency)s",
    "Older entries": "Các mục cũ hơn",
    "Nothing has been recorded yet.": "Chưa có gì được ghi nhận.",
    "Issued a document into your wallet": "Cấp giấy tờ vào kho của bạn",
    "Uploaded a document": "Tải lên giấy tờ",
    "Looked at a document": "Xem thông tin giấy tờ",
    "Downloaded a document": "Tải về giấy tờ",
    "Checked a document": "Kiểm tra giấy tờ",
    "Granted a share": "Chia sẻ giấy tờ",
    "Revoked a share": "Thu hồi chia sẻ",
    "Received your documents through a share": "Nhận giấy tờ của bạn qua chia sẻ",
    "Revoked a document": "Thu hồi giấy tờ",
    "Replaced a document with a newer version": "Thay giấy tờ bằng bản mới",
    "Deleted a document": "Xóa giấy tờ",
    "Asked you for documents": "Đề nghị bạn cung cấp giấy tờ",
    "Approved a request for documents": "Đồng ý đề nghị cung cấp giấy tờ",
    "Declined a request for documents": "Từ chối đề nghị cung cấp giấy tờ",
    "Access refused: stored content failed verification": "Từ chối truy cập: nội dung lưu trữ không vượt qua kiểm tra",
    "Could not hand over your documents through a share; the use was given back":
        "Không giao được giấy tờ qua chia sẻ; lượt sử dụng đã được hoàn lại",
    "guardian": "người giám hộ",
    "delegate": "người được ủy quyền",
    "with your consent": "được bạn đồng ý",
    "%(who)s (%(relation)s) on behalf of you": "%(who)s (%(relation)s) thay mặt bạn",
    "You": "Bạn",
    "the system of %(agency)s": "hệ thống của %(agency)s",
    "an official of %(agency)s (%(who)s)": "cán bộ của %(agency)s (%(who)s)",
    # failures
    "Not found": "Không tìm thấy",
    "There is nothing at this address in your wallet.": "Không có gì ở địa chỉ này trong kho của bạn.",
    "This cannot be done now": "Chưa thể thực hiện việc này",
    "The wallet is not available right now": "Kho dữ liệu tạm thời không phục vụ được",
    "Please try again in a few minutes.": "Vui lòng thử lại sau ít phút.",
}
