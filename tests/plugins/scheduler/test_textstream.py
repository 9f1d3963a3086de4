from ollamakit_scheduler.textstream import TextStream


def feed(stream, data: bytes):
    out = [stream.push(bytes([b])) for b in data]
    return out + [stream.flush()]


def test_multibyte_characters_come_out_whole():
    out = feed(TextStream(), "a\u00e9\U0001f600".encode())
    assert out == ["a", "", "\u00e9", "", "", "", "\U0001f600", ""]


def test_invalid_bytes_become_replacement_characters_not_a_hang():
    stream = TextStream()
    assert stream.push(b"\xff") == "\ufffd"
    assert stream.push(b"\xe4\xb8") == ""
    assert stream.flush() == "\ufffd"


def test_stop_across_tokens_is_cut_and_never_emitted():
    stream = TextStream(["STOP"])
    out = feed(stream, b"abSTOPcd")
    assert "".join(out) == "ab" and stream.stopped
    assert all("S" not in piece for piece in out)


def test_partial_stop_is_held_then_released():
    stream = TextStream(["xyz"])
    assert stream.push(b"ax") == "a"
    assert stream.push(b"y") == ""
    assert stream.push(b"q") == "xyq"
    assert stream.push(b"xy") == ""
    assert stream.flush() == "xy" and not stream.stopped


def test_earliest_of_several_stops_wins():
    stream = TextStream(["cd", "bcx", "b"])
    assert stream.push(b"abcd") == "a" and stream.stopped
    assert stream.push(b"more") == ""


def test_stop_inside_a_multibyte_run():
    stream = TextStream(["\u4e2d"])
    assert "".join(feed(stream, "x\u4e2dy".encode())) == "x" and stream.stopped
