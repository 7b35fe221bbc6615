from urllib.parse import quote_from_bytes, unquote_to_bytes

from hypothesis import example, given, settings
from hypothesis import strategies as st

from rpc._percent import percent_decode

pieces = st.sampled_from(
    [
        b"%",
        b"%4",
        b"%41",
        b"%7b",
        b"%7B",
        b"%zz",
        b"=",
        b"=41",
        b"+",
        b" ",
        b"\t",
        b"\r",
        b"\n",
        b"_",
    ]
)
tricky = st.lists(st.one_of(pieces, st.binary(max_size=4)), max_size=20).map(b"".join)


@given(tricky)
@example(b"a =20b %41 ")
@example(b"%41 \n")
@example(b"x%20")
@settings(max_examples=500)
def test_it_decodes_exactly_as_urllib_does(raw):
    assert percent_decode(raw) == unquote_to_bytes(raw.replace(b"+", b" "))


@given(st.binary(max_size=200))
def test_any_encoded_bytes_come_back(original):
    assert percent_decode(quote_from_bytes(original, safe=b"").encode()) == original
