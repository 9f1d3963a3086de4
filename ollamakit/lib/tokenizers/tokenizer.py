"""The tokenizer the engine uses: text to token ids and back, built from GGUF metadata."""

from __future__ import annotations

import codecs

from ollamakit.errors import BadRequest, InvalidModelFile

from .bpe import BytePairEncoder, byte_decode
from .pretokenizers import pre_tokenizer_spec
from .spm import SPACE, SentencePieceEncoder
from .vocab import BYTE, CONTROL, NORMAL, UNKNOWN, USER_DEFINED, Vocabulary
from .wordpiece import WordPieceEncoder, is_hugging_face_spelling, to_gguf_spelling

SUPPORTED_MODELS = ("gpt2", "llama", "bert")


def _flag(metadata: dict, name: str, default: bool) -> bool:
    value = metadata.get(f"tokenizer.ggml.{name}")
    if value is None:
        return default
    if not isinstance(value, (bool, int)):
        raise InvalidModelFile(f"tokenizer.ggml.{name} must be a boolean")
    return bool(value)


class Tokenizer:
    """Encodes text to the token ids llama.cpp would produce for the same GGUF, and decodes them.

    ``model`` is ``tokenizer.ggml.model``: "gpt2" (byte-level BPE), "llama" (SentencePiece) or
    "bert" (WordPiece).
    """

    def __init__(self, metadata: dict):
        if not isinstance(metadata, dict):
            raise TypeError("metadata must be a dict of GGUF key-values")
        model = metadata.get("tokenizer.ggml.model")
        if not isinstance(model, str):
            raise InvalidModelFile("the model has no tokenizer.ggml.model")
        if model not in SUPPORTED_MODELS:
            raise InvalidModelFile(
                f"unsupported tokenizer model '{model}' (supported: {', '.join(SUPPORTED_MODELS)})"
            )
        self.model = model
        pre = metadata.get("tokenizer.ggml.pre")
        self.pre = pre if isinstance(pre, str) else None

        if model == "gpt2":
            spec = pre_tokenizer_spec(self.pre)
            self.vocab = Vocabulary(metadata, model, has_bos=not spec.no_bos)
            self._encoder: BytePairEncoder | SentencePieceEncoder | WordPieceEncoder
            self._encoder = BytePairEncoder(self.vocab, metadata.get("tokenizer.ggml.merges"), spec)
            add_bos, add_space_prefix, self.clean_spaces = (
                bool(spec.add_bos),
                False,
                spec.clean_spaces,
            )
        elif model == "llama":
            self.vocab = Vocabulary(metadata, model)
            self._encoder = SentencePieceEncoder(self.vocab)
            add_bos, add_space_prefix, self.clean_spaces = True, True, False
        else:
            tokens = metadata.get("tokenizer.ggml.tokens")
            if isinstance(tokens, list) and is_hugging_face_spelling(tokens):
                metadata = {
                    **metadata,
                    "tokenizer.ggml.tokens": [to_gguf_spelling(t) for t in tokens],
                }
            self.vocab = Vocabulary(metadata, model)
            lowercase = _flag(metadata, "normalizer.lowercase", True)
            strip_accents = _flag(metadata, "normalizer.strip_accents", lowercase)
            self._encoder = WordPieceEncoder(self.vocab, lowercase, strip_accents)
            add_bos, add_space_prefix, self.clean_spaces = True, False, True

        self.add_bos = _flag(metadata, "add_bos_token", add_bos)
        self.add_eos = _flag(metadata, "add_eos_token", False)
        self.add_space_prefix = _flag(metadata, "add_space_prefix", add_space_prefix)
        if model == "bert":  # BERT always frames its input with [CLS] ... [SEP]
            self.add_bos, self.add_eos = True, False
        if self.add_bos and self.bos_id is None:
            raise InvalidModelFile("the tokenizer adds a BOS token but has none")
        self._pieces: dict[tuple[int, bool], bytes] = {}

    # -- properties ----------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.vocab.size

    @property
    def bos_id(self) -> int | None:
        return self.vocab.special.bos

    @property
    def eos_id(self) -> int | None:
        return self.vocab.special.eos

    @property
    def sep_id(self) -> int | None:
        return self.vocab.special.sep

    @property
    def unk_id(self) -> int | None:
        return self.vocab.special.unk

    @property
    def pad_id(self) -> int | None:
        return self.vocab.special.pad

    @property
    def eog_ids(self) -> frozenset[int]:
        """Tokens that end a generation: EOS, EOT, EOM and those llama.cpp recognises by text."""
        return self.vocab.eog_ids

    def is_eog(self, token_id: int) -> bool:
        return token_id in self.vocab.eog_ids

    def is_control(self, token_id: int) -> bool:
        return bool(self.vocab.attrs[self._check(token_id)] & CONTROL)

    def token_text(self, token_id: int) -> str:
        """The token as the vocabulary spells it ("Ġthe", "▁the", "<|im_end|>")."""
        return self.vocab.tokens[self._check(token_id)]

    def token_id(self, text: str) -> int | None:
        """The id of the token spelled exactly ``text``, if there is one."""
        return self.vocab.token_to_id.get(text)

    # -- encoding ------------------------------------------------------------------------------
    def encode(self, text: str, add_special: bool = True, parse_special: bool = True) -> list[int]:
        """Token ids for ``text``. ``add_special`` adds BOS/EOS (or [CLS]/[SEP]) as the model asks;
        ``parse_special`` turns the text of control tokens into those tokens (user-defined tokens
        are always recognised, as in llama.cpp)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        out: list[int] = []
        if (
            add_special and self.add_bos and self.bos_id is not None
        ):  # (never None then: see __init__)
            out.append(self.bos_id)
        prefix_space = True  # SentencePiece prefixes a space to text that follows a special token
        for fragment in self.vocab.partition(text, parse_special):
            if type(fragment) is int:
                out.append(fragment)
                prefix_space = True
            elif self.model == "llama":
                if self.add_space_prefix and prefix_space:
                    fragment = " " + fragment
                self._encoder.encode(fragment.replace(" ", SPACE), out)
                prefix_space = False
            else:
                self._encoder.encode(fragment, out)
        if add_special and self.add_eos and self.eos_id is not None:
            out.append(self.eos_id)
        if add_special and self.model == "bert" and self.sep_id is not None:
            out.append(self.sep_id)
        return out

    # -- decoding ------------------------------------------------------------------------------
    def _check(self, token_id: int) -> int:
        if type(token_id) is not int and not hasattr(token_id, "__index__"):
            raise BadRequest(f"token id must be an integer, got {type(token_id).__name__}")
        token_id = int(token_id)
        if not 0 <= token_id < self.vocab.size:
            raise BadRequest(
                f"token id {token_id} is out of range (vocabulary of {self.vocab.size})"
            )
        return token_id

    def token_to_piece(self, token_id: int, special: bool = False) -> bytes:
        """The bytes a token stands for. Control and unknown tokens are empty unless ``special``;
        a piece may be part of a UTF-8 character (byte tokens), so this returns bytes."""
        key = (self._check(token_id), special)
        piece = self._pieces.get(key)
        if piece is None:
            piece = self._pieces[key] = self._render(*key)
        return piece

    def _render(self, token_id: int, special: bool) -> bytes:
        attr = self.vocab.attrs[token_id]
        text = self.vocab.tokens[token_id]
        if attr & (CONTROL | UNKNOWN):
            return text.encode("utf-8") if special else b""
        if attr & USER_DEFINED:
            return text.encode("utf-8")
        if attr & NORMAL:
            if self.model == "gpt2":
                return byte_decode(text)
            return text.replace(SPACE, " ").encode("utf-8")
        if attr & BYTE and len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
            try:
                return bytes([int(text[3:5], 16)])
            except ValueError:
                return b""
        return b""  # unused and undefined tokens render as nothing

    def decode(self, ids, special: bool = False) -> str:
        """Text for a sequence of ids; bytes that do not form valid UTF-8 become U+FFFD."""
        return b"".join(self.token_to_piece(i, special) for i in ids).decode(
            "utf-8", errors="replace"
        )

    def stream_decoder(self, special: bool = False) -> StreamDecoder:
        return StreamDecoder(self, special)


class StreamDecoder:
    """Turns tokens into text one at a time for streaming, holding back the bytes of a UTF-8
    character that a later token completes (emoji and CJK often span byte tokens)."""

    def __init__(self, tokenizer: Tokenizer, special: bool = False):
        self._tokenizer = tokenizer
        self._special = special
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        """The text that this token completes (often "", while a character is incomplete)."""
        return self._utf8.decode(self._tokenizer.token_to_piece(token_id, self._special))

    def flush(self) -> str:
        """Whatever is still held back, with an incomplete character as U+FFFD."""
        return self._utf8.decode(b"", final=True)

    @property
    def pending(self) -> bool:
        """Whether bytes of an unfinished character are held back."""
        return bool(self._utf8.getstate()[0])


def load_tokenizer(metadata: dict) -> Tokenizer:
    """Build the tokenizer that a GGUF file's metadata describes."""
    return Tokenizer(metadata)
