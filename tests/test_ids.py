import uuid
from datetime import date

import pytest

from hub.ids import check_id_number, check_uscc, mask_id, uscc_check_char, uuid4_texts
from tests.conftest import make_id


class TestResidentId:
    def test_valid_numbers_pass(self):
        assert check_id_number("11010519491231002X") is None  # the example in GB 11643
        assert check_id_number(make_id("330329", date(1950, 3, 15))) is None
        assert check_id_number("11010519491231002x") is None  # lower-case x is accepted

    def test_wrong_check_digit(self):
        reason = check_id_number("110105194912310021")
        assert reason is not None and "校验码" in reason.zh and "expected X" in reason.en

    @pytest.mark.parametrize("value", ["11010519491231002", "11010519491231002X1", ""])
    def test_wrong_length(self, value):
        reason = check_id_number(value)
        assert reason is not None and "18" in reason.zh

    @pytest.mark.parametrize("born", ["19490231", "19491301", "18991231"])
    def test_bad_birth_date(self, born):
        first17 = f"110105{born}002"
        from hub.ids import id_check_digit

        reason = check_id_number(first17 + id_check_digit(first17))
        assert reason is not None and "出生日期" in reason.zh

    def test_future_birth_date(self):
        number = make_id(born=date(2030, 1, 1))
        assert check_id_number(number, today=date(2026, 11, 22)) is not None

    def test_unknown_province_and_letters(self):
        assert "地址码" in check_id_number(make_id(division="990329")).zh
        assert check_id_number("1101051949123100AX") is not None

    @pytest.mark.parametrize("digit", ["²", "١", "５"])  # str.isdigit() takes these; int() takes some
    def test_only_ascii_digits(self, digit):
        valid = "330329195001021013"
        for at in (3, 16, 17):
            reason = check_id_number(valid[:at] + digit + valid[at + 1 :])
            assert reason is not None and "数字" in reason.zh


class TestCreditCode:
    def test_valid(self):
        assert check_uscc("91350100M000100Y43") is None
        first17 = "91330329MA2H8KQ5X"
        assert check_uscc(first17 + uscc_check_char(first17)) is None

    def test_wrong_check_character(self):
        reason = check_uscc("91350100M000100Y44")
        assert reason is not None and "校验码" in reason.zh

    def test_wrong_length_and_letters(self):
        assert "18" in check_uscc("91350100M000100Y4").zh
        assert "非法字符" in check_uscc("91350100M000100YO3").zh  # O is not in the GB 32100 set
        assert check_uscc("91990100M000100Y43") is not None  # no province 99


def test_mask_id_keeps_head_and_tail():
    assert mask_id("11010519491231002X") == "1101**********002X"
    assert mask_id(None) == ""


def test_uuid4_texts_are_random_version_4_uuids():
    texts = uuid4_texts(500)
    assert len(set(texts)) == 500
    for text in texts:
        u = uuid.UUID(text)
        assert (u.version, u.variant, str(u)) == (4, uuid.RFC_4122, text)
