"""The report to the authority, in Vietnamese: an HTML page (Jinja2) and a PDF (fpdf2).

Both are drawn from one `AuthorityReport`, all of whose text is ready to print: the authorising
document, who submitted and approved and when, the text and its encoding, the SMS count,
delivered and failed by district, and when 50/90/99 % of recipients had the message. It holds
no subscriber number. Times are Vietnam's (UTC+7). The PDF embeds DejaVu Sans (shipped in
`fonts/` with its licence), which has every Vietnamese letter.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from importlib.resources import files
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlmodel import Session, col, select

from campaigns.content import Encoding
from campaigns.models import Approval, Authority, Campaign, CampaignStatus, User, utcnow
from campaigns.service import sent_text
from dispatcher.reports.summary import DelaySeconds, Reached, Report
from dispatcher.settings import Settings

VIETNAM = timezone(timedelta(hours=7))
FONTS = Path(str(files("dispatcher.reports") / "fonts"))
TITLE = "BÁO CÁO KẾT QUẢ NHẮN TIN THÔNG TIN CÔNG CỘNG"
EXERCISE_BANNER = "DIỄN TẬP: chiến dịch diễn tập (exercise), không phải tin cảnh báo thật"
NOT_YET = "chưa đạt"

STATUS_VI = {
    CampaignStatus.DRAFT: "bản nháp",
    CampaignStatus.SUBMITTED: "chờ phê duyệt",
    CampaignStatus.APPROVED: "đã phê duyệt",
    CampaignStatus.SCHEDULED: "đã lên lịch gửi",
    CampaignStatus.SENDING: "đang gửi",
    CampaignStatus.COMPLETED: "đã hoàn thành",
    CampaignStatus.REJECTED: "bị từ chối",
    CampaignStatus.PAUSED: "tạm dừng",
    CampaignStatus.CANCELLED: "đã hủy",
    CampaignStatus.EXPIRED: "hết hạn gửi",
}
ENCODING_VI = {
    Encoding.UCS2: "UCS-2 (tiếng Việt có dấu)",
    Encoding.GSM7: "GSM-7 (không dấu)",
}
DISTRICT_HEADER = ("Đơn vị hành chính", "Số thuê bao", "Đã nhận tin", "Không thành công", "Chưa rõ")


@dataclass(frozen=True)
class AuthorityReport:
    """Everything the authority's report prints, as text."""

    title: str
    exercise: bool
    facts: list[tuple[str, str]]
    text: str
    outcome: list[tuple[str, str]]
    districts: list[tuple[str, str, str, str, str]]
    reach: list[tuple[str, str]]
    delays: list[tuple[str, str]]
    footer: str = field(default="")


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(VIETNAM).strftime("%H:%M:%S ngày %d/%m/%Y")


def _day(day: date | None) -> str:
    return day.strftime("%d/%m/%Y") if day is not None else "—"


def _number(value: int) -> str:
    return f"{value:,}".replace(",", ".")  # Vietnamese groups thousands with dots


def _share(part: int, whole: int) -> str:
    if whole == 0:
        return _number(part)
    percent = f"{part / whole * 100:.1f}".replace(".", ",")  # a decimal comma
    return f"{_number(part)} ({percent} %)"


def _people(session: Session, campaign: Campaign) -> tuple[str, str]:
    submitter = session.get(User, campaign.created_by_id)
    approvers = session.exec(
        select(User.name, Approval.created_at)
        .join(Approval, col(Approval.approver_id) == col(User.id))
        .where(Approval.campaign_id == campaign.id, Approval.content_hash == campaign.content_hash)
        .order_by(col(Approval.created_at))
    ).all()
    approved = "; ".join(f"{name}, lúc {_when(at)}" for name, at in approvers) or "—"
    submitted = f"{submitter.name if submitter else '—'}, lúc {_when(campaign.submitted_at)}"
    return submitted, approved


def _document(campaign: Campaign) -> str:
    if not campaign.document_number:
        return "—"
    issuer = f" của {campaign.document_issuer}" if campaign.document_issuer else ""
    return f"Số {campaign.document_number} ngày {_day(campaign.document_date)}{issuer}"


def gather(
    *, session: Session, campaign: Campaign, report: Report, settings: Settings
) -> AuthorityReport:
    """The authority's report of one campaign, from its figures."""
    return AuthorityReport(
        title=TITLE,
        exercise=report.exercise,
        facts=_facts(session, campaign, report),
        text=sent_text(campaign, settings.policy),
        outcome=_outcome(report),
        districts=[
            (
                area.name or area.code or "Ngoài danh bạ thuê bao",
                _number(area.recipients),
                _number(area.delivered),
                _number(area.failed),
                _number(area.pending + area.unknown + area.cancelled),
            )
            for area in report.by_area
        ],
        reach=[
            (f"{share} % thuê bao đã nhận tin", _when(moment) if moment else NOT_YET)
            for share, moment in zip((50, 90, 99), _three(report.reached), strict=True)
        ],
        delays=[
            (f"{share} % số tin đã nhận trong", "—" if value is None else f"{value:g} giây")
            for share, value in zip((50, 90, 99), _three(report.delivery_seconds), strict=True)
        ],
        footer=f"Lập lúc {_when(utcnow())} (giờ Việt Nam, UTC+7). Báo cáo không chứa số thuê bao.",
    )


def _three(percentiles: Reached | DelaySeconds) -> tuple[Any, Any, Any]:
    return percentiles.p50, percentiles.p90, percentiles.p99


def _facts(session: Session, campaign: Campaign, report: Report) -> list[tuple[str, str]]:
    authority = session.get(Authority, campaign.authority_id)
    submitted, approved = _people(session, campaign)
    return [
        ("Kính gửi", authority.name if authority else "—"),
        ("Văn bản chỉ đạo", _document(campaign)),
        ("Chiến dịch", f"Số {campaign.id}: {campaign.title}"),
        ("Trạng thái", STATUS_VI[campaign.status]),
        ("Người đề nghị", submitted),
        ("Người phê duyệt", approved),
        ("Tên định danh gửi tin", campaign.sender),
        ("Mã hóa", ENCODING_VI[report.encoding]),
        ("Số SMS mỗi tin", _number(report.parts_per_message)),
        ("Số thuê bao nhận tin", _number(report.recipients)),
        ("Tổng số SMS", _number(report.total_sms)),
    ]


def _outcome(report: Report) -> list[tuple[str, str]]:
    messages = sum(report.by_status.values())
    delivered = report.by_status.get("delivered", 0)
    failed = sum(area.failed for area in report.by_area)
    return [
        ("Đã nhận tin", _share(delivered, messages)),
        ("Không thành công", _share(failed, messages)),
        ("Chưa có kết quả", _share(messages - delivered - failed, messages)),
    ]


_templates = Environment(
    loader=PackageLoader("dispatcher.reports", "templates"),
    autoescape=select_autoescape(["html"]),
)


def html(report: AuthorityReport) -> str:
    """The report as a self-contained HTML page (no asset from outside the app)."""
    return _templates.get_template("authority_report.html").render(
        report=report, district_header=DISTRICT_HEADER, exercise_banner=EXERCISE_BANNER
    )


class _Document(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("DejaVu", size=8)
        self.cell(0, 8, f"Trang {self.page_no()}/{{nb}}", align="C")


def pdf(report: AuthorityReport) -> bytes:
    """The report as a PDF with an embedded Vietnamese font."""
    document = _Document(format="A4")
    document.set_title(report.title)
    document.set_creator("Public-information SMS dispatcher")
    document.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
    document.add_font("DejaVu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    document.add_page()
    document.set_font("DejaVu", "B", 14)
    document.multi_cell(0, 8, report.title, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if report.exercise:
        document.set_text_color(180, 0, 0)
        document.multi_cell(0, 8, EXERCISE_BANNER, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        document.set_text_color(0, 0, 0)
    document.ln(3)
    _pairs(document, report.facts)
    _heading(document, "Nội dung tin nhắn")
    document.set_font("DejaVu", size=10)
    document.multi_cell(0, 6, report.text, border=1, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _heading(document, "Kết quả")
    _pairs(document, report.outcome)
    _heading(document, "Kết quả theo đơn vị hành chính")
    _table(document, [DISTRICT_HEADER, *report.districts])
    _heading(document, "Thời điểm thuê bao nhận tin")
    _pairs(document, report.reach)
    _heading(document, "Thời gian chuyển tin (từ lúc gửi đến khi có báo cáo phát)")
    _pairs(document, report.delays)
    document.ln(4)
    document.set_font("DejaVu", size=8)
    document.multi_cell(0, 5, report.footer, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(document.output())


def _heading(document: FPDF, text: str) -> None:
    document.ln(3)
    document.set_font("DejaVu", "B", 11)
    document.multi_cell(0, 7, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _pairs(document: FPDF, pairs: list[tuple[str, str]]) -> None:
    document.set_font("DejaVu", size=10)
    with document.table(col_widths=(55, 125), first_row_as_headings=False) as table:
        for label, value in pairs:
            row = table.row()
            row.cell(label)
            row.cell(value)


def _table(document: FPDF, rows: list[tuple[str, ...]]) -> None:
    document.set_font("DejaVu", size=9)
    with document.table(col_widths=(60, 30, 30, 30, 30), text_align="RIGHT") as table:
        for cells in rows:
            row = table.row()
            for index, cell in enumerate(cells):
                row.cell(cell, align="LEFT" if index == 0 else "RIGHT")
