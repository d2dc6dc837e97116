"""Vietnamese of the payer's pages (English source strings are the message ids)."""

VI: dict[str, str] = {
    "Online fee payment": "Thanh toán trực tuyến phí, lệ phí",
    "Payment %(reference)s": "Khoản thanh toán %(reference)s",
    "Payment status: %(status)s": "Trạng thái thanh toán: %(status)s",
    "Fees for dossier %(dossier)s": "Phí, lệ phí của hồ sơ %(dossier)s",
    "Status": "Trạng thái",
    "Waiting for payment": "Chờ thanh toán",
    "Payment in progress": "Đang thanh toán",
    "Paid": "Đã thanh toán",
    "Payment failed": "Thanh toán không thành công",
    "Expired: not paid in time": "Hết hạn: không thanh toán kịp",
    "Cancelled by the agency": "Cơ quan đã hủy",
    "Refunded": "Đã hoàn tiền",
    "Paid, partly refunded": "Đã thanh toán, hoàn một phần",
    "E-receipt": "Biên lai điện tử",
    "Receipt number": "Số biên lai",
    "Collected by": "Đơn vị thu",
    "Payer": "Người nộp",
    "ID number": "số định danh",
    "Amount paid": "Số tiền đã nộp",
    "Paid at": "Thời gian nộp",
    "Bank transaction": "Mã giao dịch ngân hàng",
    "Payment code": "Mã thanh toán",
    "Signed electronically by the payment platform (%(algorithm)s, key %(key)s). The signed original is sent to the "
    "payer's e-document wallet.":
        "Được nền tảng thanh toán ký số (%(algorithm)s, khóa %(key)s). Bản gốc có chữ ký được gửi vào kho dữ liệu "
        "điện tử của người nộp.",
    "Print the receipt": "In biên lai",
    "The payment was received. The e-receipt is being prepared.": "Đã nhận tiền. Biên lai điện tử đang được lập.",
    "This payment can no longer be paid. If you still need to pay, ask %(agency)s for a new payment "
    "notice.":
        "Khoản này không thể thanh toán nữa. Nếu vẫn cần nộp, hãy đề nghị %(agency)s gửi thông báo thanh toán mới.",
    "A payment was started. This page changes by itself as soon as the bank confirms it; you can also pay by transfer "
    "below.":
        "Một giao dịch đã được bắt đầu. Trang này tự cập nhật ngay khi ngân hàng xác nhận; bạn cũng có thể "
        "chuyển khoản theo thông tin bên dưới.",
    "%(paid)s of %(total)s has been received. Transfer only the rest: %(remaining)s.":
        "Đã nhận %(paid)s trên tổng số %(total)s. Chỉ chuyển số tiền còn lại: %(remaining)s.",
    "Pay before %(time)s.": "Hạn thanh toán: trước %(time)s.",
    "Scan with any banking app": "Quét mã bằng ứng dụng ngân hàng bất kỳ",
    "VietQR code: transfer %(amount)s to account %(account)s at %(bank)s, note %(note)s":
        "Mã VietQR: chuyển %(amount)s vào tài khoản %(account)s tại %(bank)s, nội dung %(note)s",
    "Or transfer by hand": "Hoặc chuyển khoản thủ công",
    "Bank": "Ngân hàng",
    "Account number": "Số tài khoản",
    "Account holder": "Chủ tài khoản",
    "Amount": "Số tiền",
    "Transfer note": "Nội dung chuyển khoản",
    "Type the note exactly: the payment code %(reference)s at its start is how your transfer is matched to this "
    "payment.":
        "Hãy ghi đúng nội dung: mã thanh toán %(reference)s ở đầu nội dung là căn cứ để đối chiếu giao dịch của bạn "
        "với khoản này.",
    "Other ways to pay": "Cách thanh toán khác",
    "Only bank transfer is available for this payment.": "Khoản này chỉ thanh toán được bằng chuyển khoản.",
    "Pay with Internet Banking": "Thanh toán qua Internet Banking",
    "Pay with an e-wallet": "Thanh toán bằng ví điện tử",
    "Pay by card or a payment gateway": "Thanh toán bằng thẻ hoặc cổng thanh toán",
    "What you are paying": "Nội dung thanh toán",
    "Collecting agency": "Cơ quan thu",
    "Dossier": "Hồ sơ",
    "Procedure": "Thủ tục",
    "Description": "Mô tả",
    "Fee lines": "Các khoản phí",
    "Fee": "Khoản",
    "Kind": "Loại",
    "Total": "Tổng cộng",
    "Fee (phí)": "Phí",
    "Charge (lệ phí)": "Lệ phí",
    "Other": "Khác",
    "Reload this page to see the latest status.": "Tải lại trang để xem trạng thái mới nhất.",
    "Payment not found": "Không tìm thấy khoản thanh toán",
    "Check the payment code on your payment notice.": "Hãy kiểm tra mã thanh toán trên thông báo thanh toán.",
    "This way of paying is not available right now": "Cách thanh toán này tạm thời không dùng được",
    "Go back and choose another way of paying, or pay by bank transfer with the QR code.":
        "Hãy quay lại và chọn cách khác, hoặc chuyển khoản bằng mã QR.",
}
