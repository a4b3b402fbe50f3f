"""Administrative division codes (GB/T 2260). The hub records a six-digit code on every desk,
department and application; names are known for the divisions the sample data uses."""

from __future__ import annotations

import re

PROVINCES: dict[str, str] = {
    "11": "北京市",
    "12": "天津市",
    "13": "河北省",
    "14": "山西省",
    "15": "内蒙古自治区",
    "21": "辽宁省",
    "22": "吉林省",
    "23": "黑龙江省",
    "31": "上海市",
    "32": "江苏省",
    "33": "浙江省",
    "34": "安徽省",
    "35": "福建省",
    "36": "江西省",
    "37": "山东省",
    "41": "河南省",
    "42": "湖北省",
    "43": "湖南省",
    "44": "广东省",
    "45": "广西壮族自治区",
    "46": "海南省",
    "50": "重庆市",
    "51": "四川省",
    "52": "贵州省",
    "53": "云南省",
    "54": "西藏自治区",
    "61": "陕西省",
    "62": "甘肃省",
    "63": "青海省",
    "64": "宁夏回族自治区",
    "65": "新疆维吾尔自治区",
    "71": "台湾省",
    "81": "香港特别行政区",
    "82": "澳门特别行政区",
}

KNOWN: dict[str, str] = {
    "330000": "浙江省",
    "330100": "杭州市",
    "330102": "杭州市上城区",
    "330105": "杭州市拱墅区",
    "330106": "杭州市西湖区",
    "330300": "温州市",
    "330329": "温州市泰顺县",
    "310000": "上海市",
    "310104": "上海市徐汇区",
    "310112": "上海市闵行区",
    "310115": "上海市浦东新区",
    "350000": "福建省",
    "350982": "宁德市福鼎市",
    "350926": "宁德市柘荣县",
}

_SHAPE = re.compile(r"^\d{6}$")


def division_problem(code: str) -> str | None:
    """None when `code` has the GB/T 2260 shape with a real province prefix."""
    if not _SHAPE.match(code):
        return f"行政区划代码应为6位数字 (division code must be 6 digits): {code!r}"
    if code[:2] not in PROVINCES:
        return f"行政区划代码省级码 {code[:2]} 不存在 (no such province prefix)"
    return None


def division_name(code: str) -> str:
    return KNOWN.get(code, code)
