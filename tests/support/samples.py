"""Sample applications built on the shipped catalogue (config/catalog). Codes live here only."""

from __future__ import annotations

from datetime import date

from hub import applications as svc
from hub.applications import Actor
from hub.lifecycle import Role
from tests.conftest import JPEG, PDF, make_id

ELDERLY_CARD = "GG00501000"  # 老年人优待证办理 — 民政, instant, bank/township/hall
MEDICAL_FILING = "GG00301001"  # 基本医疗保险异地就医备案 — 医保, instant, enclave too
FUND_RENT = "GG00401001"  # 住房公积金提取（租房提取）— 公积金, 3 working days
NEWBORN = "YJS-XSECS"  # 新生儿出生一件事

TELLER = Actor(name="银行柜员王芳", role=Role.teller, desk="bank-xiahong")
HZ_CLERK = Actor(name="飞地专员陈静", role=Role.enclave_clerk, desk="enclave-hangzhou")
SH_CLERK = Actor(name="飞地专员李娜", role=Role.enclave_clerk, desk="enclave-shanghai")


def officer(department: str, name: str = "审批员") -> Actor:
    return Actor(name=f"{name}@{department}", role=Role.officer, department=department)


ELDER_ID = make_id("330329", date(1950, 3, 15), "021")
WORKER_ID = make_id("330329", date(1990, 7, 1), "013")

FUND_RENT_FORM = {
    "rental_address": "杭州市拱墅区湖墅南路88号",
    "monthly_rent": "2500",
    "lease_start_date": "2026-01-01",
    "lease_end_date": "2026-12-31",
    "withdrawal_amount": "15000",
    "marital_status": "未婚",
    "payee_bank_name": "浙江泰顺农村商业银行",
    "payee_bank_account": "6230910199001234567",
    "contact_phone": "13857712345",
}


def elderly_card(desk: str = "bank-xiahong", **kw) -> svc.NewApplication:
    return svc.NewApplication(
        subject=ELDERLY_CARD,
        desk=desk,
        applicant=svc.Applicant(name="林阿婆", id=ELDER_ID),
        form={"delivery_method": "窗口领取", "contact_phone": "13905770001"},
        materials=[
            svc.MaterialIn(name="居民身份证", filename="id.pdf", content=PDF),
            svc.MaterialIn(name="近期免冠彩色证件照", filename="photo.jpg", content=JPEG),
            svc.MaterialIn(name="代办人居民身份证", filename="agent-id.pdf", content=PDF + b"agent"),
        ],
        **kw,
    )


def fund_rent(desk: str = "enclave-hangzhou", materials: list[str] | None = None, **kw) -> svc.NewApplication:
    names = (
        materials
        if materials is not None
        else ["居民身份证", "住房公积金账户信息", "本人及配偶名下无房证明", "房屋租赁合同", "结婚证"]
    )
    return svc.NewApplication(
        subject=FUND_RENT,
        desk=desk,
        applicant=svc.Applicant(name="陈志强", id=WORKER_ID),
        form=dict(FUND_RENT_FORM),
        materials=[svc.MaterialIn(name=n, filename=f"{i}.pdf", content=PDF + n.encode()) for i, n in enumerate(names)],
        **kw,
    )


RETIRE = "YJS-TXLX"  # 退休一件事: 人社 (10 days) + 医保 (5) + 公积金 (1)
RETIREE_ID = make_id("330329", date(1966, 10, 8), "035")


def retirement(desk: str = "enclave-shanghai", **kw) -> svc.NewApplication:
    names = [
        "居民身份证",
        "参保缴费记录",
        "本人人事档案",
        "医保缴费年限记录",
        "住房公积金账户信息",
        "退休证明",
        "住房公积金提取及销户申请书",
    ]
    return svc.NewApplication(
        subject=RETIRE,
        desk=desk,
        applicant=svc.Applicant(name="吴建国", id=RETIREE_ID),
        form={
            "retirement_type": "正常退休",
            "retirement_date": "2026-10-31",
            "payee_bank_name": "浙江泰顺农村商业银行",
            "payee_bank_account": "6230910199007654321",
            "contact_phone": "13606770002",
            "supplementary_payment": "否",
        },
        materials=[svc.MaterialIn(name=n, filename=f"{i}.pdf", content=PDF + n.encode()) for i, n in enumerate(names)],
        **kw,
    )


FUND_RETIRE = "GG00401002"  # 住房公积金提取（退休提取）— 公积金, needs a face-to-face signature (面签)


def fund_retire(desk: str = "enclave-shanghai", **kw) -> svc.NewApplication:
    names = ["居民身份证", "住房公积金账户信息", "退休证明", "住房公积金提取及销户申请书"]
    return svc.NewApplication(
        subject=FUND_RETIRE,
        desk=desk,
        applicant=svc.Applicant(name="吴建国", id=RETIREE_ID),
        form={
            "retirement_date": "2026-10-31",
            "payee_bank_name": "浙江泰顺农村商业银行",
            "payee_bank_account": "6230910199007654321",
            "contact_phone": "13606770002",
        },
        materials=[svc.MaterialIn(name=n, filename=f"{i}.pdf", content=PDF + n.encode()) for i, n in enumerate(names)],
        **kw,
    )


# the catalogue's rules (tests/test_rules.py and a batch in tests/test_ingest.py): the same inputs
# on every surface, refused with the same words
YOUNG = make_id("330329", date(1990, 5, 1), "031")  # 36: too young for the 老年人优待证
AGE_WORDS = "须年满60周岁"
POST_WORDS = "领取方式为“邮寄送达”时，邮寄地址为必填项"
