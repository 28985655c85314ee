#!/usr/bin/env python3
"""Golden fixtures for the Swift WordPiece tokenizer (Sources/Tasks/Tokenizer), from Hugging Face tokenizers.

The reference is `transformers.BertTokenizerFast` (transformers 5.24, tokenizers 0.23.3: BertNormalizer +
BertPreTokenizer + WordPiece + TemplateProcessing, with [PAD] [UNK] [CLS] [SEP] [MASK] as special added tokens).

Writes (relative to the repository root):

  Tests/TasksTests/Fixtures/tokenizer_corpus.jsonl
      The texts, one JSON array per line: ["text"] or ["text a", "text b"] (a pair). ASCII-escaped JSON, so the
      Swift test reads exactly the same scalars. Hand-written hard cases, seeded random strings over interesting
      characters, 1,500 movie snippets (every 7th row of the file), and 300 pairs.
  Tests/TasksTests/Fixtures/tokenizer_golden_<variant>.jsonl
      A header object, then one object per covered corpus line:
        {"line": i, "ids": [...], "types": [...], "offsets": [s0, e0, s1, e1, ...],   (no truncation; char offsets)
         "trunc": [{"max": m, "strategy": s, "ids": [...], "types": [...], "mask": [...]} or {..., "error": "..."}],
         "decode": "...", "decode_special": "..."}   (trunc / decode only where recorded)
      Variants (all on the all-MiniLM-L6-v2 vocab.txt; no cased vocab can be had offline, the same vocab without
      lowercasing exercises the cased path):
        uncased             BertTokenizerFast.from_pretrained(".assets/all-MiniLM-L6-v2")   (its tokenizer.json)
        cased               BertTokenizerFast(vocab="…/vocab.txt", do_lower_case=False)
        lower_keep_accents  BertTokenizerFast(vocab=…, do_lower_case=True, strip_accents=False)
        strip_no_clean      BertTokenizerFast(vocab=…, do_lower_case=False, strip_accents=True,
                            tokenize_chinese_chars=False), normalizer with clean_text=False
      The last two only on the lines that are not movie snippets (hand-written, random, their pairs).
      "types" is written for pairs only (the script checks that a single text's type ids are all 0). Truncation is
      recorded (uncased and cased) with padding="max_length", as ids, type ids and n = the number of unpadded
      tokens (the script checks the attention mask is 1 for those and 0 after): for every pair at max_length 32
      under longest_first, only_first and only_second; for the first 20 pairs also at max_length 1…6, 8, 12 (HF
      leaves a text untruncated when max_length is below the number of special tokens, and raises "Truncation
      error: Sequence to truncate too short to respect the provided max_length" when only_first / only_second
      cannot remove enough tokens from their text: recorded as "error": true); for some single texts at
      max_length 1, 2, 8, 16. Decoding (skip_special_tokens True, and False as "decode_special") for the
      non-snippet lines and every 20th other line.
  Tests/TasksTests/Fixtures/tokenizer_unicode.txt
      What BertNormalizer / BertPreTokenizer do with every code point (surrogates excluded): run-length class
      ranges, then the code points whose accent-stripped (NFD, Mn removed) or lowercased form is not themselves.
  Sources/Tasks/Tokenizer/UnicodeTables.swift
      The character classes of tokenizers' own Unicode tables, as ranges (see that file's header).

Note: transformers 5 ignores `vocab_file=` (its BertTokenizer takes `vocab=`, a path or a dict, and silently
builds a 5-token vocabulary otherwise); the script checks the vocabulary size so that cannot happen here.

Run (from the repository root; needs .assets/ from `cofi fetch` and the reference venv of
scripts/reference/requirements.txt, which brings tokenizers with transformers):

    python3 -m venv .venv-ref && .venv-ref/bin/pip install -r scripts/reference/requirements.txt
    swift run cofi fetch
    .venv-ref/bin/python scripts/reference/make_tokenizer_golden.py

The output is deterministic (fixed seed, fixed row selection).
"""

from __future__ import annotations

import json
import os
import random
import sys

import tokenizers
import transformers
from tokenizers import normalizers, pre_tokenizers
from transformers import BertTokenizerFast

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ASSETS = os.environ.get("COFI_ASSETS", os.path.join(ROOT, ".assets"))
MINILM = os.path.join(ASSETS, "all-MiniLM-L6-v2")
VOCAB = os.path.join(MINILM, "vocab.txt")
SNIPPETS = os.path.join(ASSETS, "movie-review-snippets", "movieReviewSnippets_GroundTruth.txt")
FIXTURES = os.path.join(ROOT, "Tests", "TasksTests", "Fixtures")
TABLES = os.path.join(ROOT, "Sources", "Tasks", "Tokenizer", "UnicodeTables.swift")
GENERATOR = "scripts/reference/make_tokenizer_golden.py"
SEED = 20240611
STRATEGIES = ["longest_first", "only_first", "only_second"]
TRUNCATION_ERROR = "Truncation error: Sequence to truncate too short to respect the provided max_length"


# ---------------------------------------------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------------------------------------------

HAND = [
    # The ASSETS.md example and plain English.
    "Hello, world! Unaffable tokenization.",
    "A man is playing a guitar.",
    "The stock market fell sharply today.",
    "I don't think it's that bad; it's just... fine?",
    # Accents, case, Latin extensions.
    "café naïve Ångström résumé façade coöperate",
    "CAFÉ NAÏVE ÅNGSTRÖM RÉSUMÉ",
    "Cafe\u0301 with a combining acute, nai\u0308ve with a combining diaeresis",
    "e\u0301\u0301\u0301 stacked marks, a\u0323\u0301 and a\u0301\u0323 (canonical reordering)",
    "\u1ea1\u0301 \u00e1\u0323 \u0065\u0328\u0301 \u0065\u0301\u0328",
    "Straße STRASSE straße groß Maß ẞ",
    "İstanbul İİİ ISTANBUL ıi Iı",
    "ﬁnance ﬂow ﬀ ﬃ ﬄ ﬅ ﬆ office ligatures",
    "Ǆ ǅ ǆ Ǉ ǈ ǉ Ǌ ǋ ǌ titlecase digraphs",
    "ΣΊΣΥΦΟΣ Σίσυφος ὈΔΥΣΣΕΎΣ final sigma ς σ Σ",
    "Ελληνικά και Русский язык и українська мова",
    "Ærøskøbing Øresund Þórr Ðað",
    "Łódź Kraków Gdańsk Źdźbło",
    "Việt Nam tiếng Việt có dấu",
    "ḱṷṓn Zalgo: Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u0360\u036b\u0357",
    "\u0301starts with a combining mark",
    "\u0300\u0301\u0302",
    "x\U0001d16d\u0301 x\u0301\U0001d16d x\U0001d165\u0315 musical combining marks",
    "a\u1b44\u0301 a\u0301\u1b44 balinese adeg adeg",
    "Dives Akuru \U00011938 \U00011935\U00011930 decomposition",
    "\u0344 \u0340 \u0341 \u0343 singleton decompositions",
    # CJK and other scripts.
    "中文字符 and 日本語のテキスト and 한국어",
    "我爱北京天安门。你好，世界！",
    "東京都渋谷区 カタカナ ひらがな ｶﾀｶﾅ",
    "한국어 텍스트 처리는 재미있다",
    "CJK extension A \u3400\u4dbf and B \U00020000\U0002a6df and compatibility \uf900\ufa0e\ufaff",
    "CJK boundaries \U0002a6e0 \U0002a700 \U0002b73f \U0002b740 \U0002b81f \U0002b820 \U0002b91f \U0002b920 \U0002ceaf \U0002ceb0 \U0002f800 \U0002fa1f \U00030000",
    "\u2e80\u2f00\u3005\u3007\u303b radicals and marks",
    "ภาษาไทย ไม่มีช่องว่าง",
    "العربية: مرحبا بالعالم، كيف حالك؟",
    "עברית: שלום עולם",
    "हिन्दी भाषा नमस्ते दुनिया",
    "বাংলা ভাষা",
    "ქართული ენა",
    "Ꭰꭰ Cherokee ᏣᎳᎩ",
    # Emoji.
    "Great movie 👍🏽👍 would watch again 🎬🍿",
    "family 👨‍👩‍👧 flag 🇺🇸 keycap 1️⃣ heart ❤️ ❤",
    "newer emoji 🫠 🥲 🫶 🪿",
    "☃ ★ ☆ ♥ ♦ ✓ ✗ → ← ↑ ↓ ⇒ ∀ ∃ ∑ ∫ √ ∞ ≈ ≠ ≤ ≥",
    # URLs, emails, code.
    "Visit https://example.com/path?q=1&r=two#frag or http://www.test.org/~user/index.html",
    "Mail me at john.doe+test@example.co.uk or jane_doe@mail.example.com.",
    "C:\\Users\\test\\file.txt and /usr/local/bin/python3 and ./a.out",
    "def f(x): return x**2 + 3*x - 1  # comment",
    "<html><body class=\"main\">Hello &amp; welcome</body></html>",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
    "@user #hashtag $100 50% 3^2 a|b ~tilde `backtick`",
    # Numbers.
    "3.14 1,000,000 12:30 1/2 -5 +7 1e-10 0x1F 2nd 3rd 21st",
    "¼ ½ ¾ ² ³ ¹ ⅓ Ⅳ ⅻ ① ② ⑩ ０１２３ ٠١٢٣ ०१२३",
    "$19.99 €5,00 £3 ¥100 ₹500 ₿0.01",
    "Call 555-123-4567 or +1 (800) 555-0199 ext. 42",
    "2024-06-11T12:30:45Z and 11/06/2024",
    # Punctuation runs.
    "What?!... No!!! ---- ___ *** ... ?!?! ;;; ::",
    "«quoted» „German“ ‚single‘ “curly” ‘curly’ 「Japanese」 『double』",
    "— – ‐ ‑ ‒ ― dashes … ellipsis · middle dot • bullet",
    "¡Hola! ¿Qué tal? ‽ ⁇ ⁈ ⁉",
    "()[]{}<>",
    "''``\"\"",
    "new punctuation in later Unicode: \u061d \u2e43 \u2e4f \u2e52 \u2e5d \U00016fe2 \u1b7d",
    "changed since Unicode 8: \u166d \U000111c9 \u0890 \u0891",
    "A-B A_B A.B A/B A\\B A'B A\"B",
    # Very long words (WordPiece gives [UNK] above 100 characters, counted after normalization).
    "a" * 100,
    "a" * 101,
    "b" * 99 + " " + "c" * 100 + " " + "d" * 101,
    "supercalifragilisticexpialidocious" * 3,
    "é" * 100,
    "é" * 101,
    "e\u0301" * 60,
    "e\u0301" * 50,
    "İ" * 60,
    "İ" * 100,
    "ß" * 101,
    "中" * 150,
    "pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism",
    "xq" * 40,
    "hello☃world snow☃man",
    "unbelievableness unaffable tokenization",
    # Control characters and invisible characters.
    "null\x00byte and bell\x07 and escape\x1b[0m",
    "zero\u200bwidth\u200bspace and BOM\ufeffinside",
    "soft\u00adhyphen co\u00adop\u00ader\u00adate",
    "left\u200eto\u200fright \u202aembedding\u202c \u2066isolate\u2069",
    "joiner\u200dnon\u200cjoiner word\u2060joiner",
    "replacement \ufffd char and noncharacter \uffff and \ufffe",
    "private use \ue000\uf8ff \U000f0000 \U0010fffd",
    "tags \U000e0001\U000e0041\U000e007f and variation selectors \ufe0f\ufe00 \U000e0100",
    "new format chars \u0890\u0891 \U00013430\U00013438 \U000110cd",
    "\x01\x02\x03\x04\x05\x06\x08\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1c\x1d\x1e\x1f\x7f",
    "\x80\x81\x9f C1 controls \x85 next line",
    "only controls: \x00\x07",
    "\x00\x07",
    "\u200b",
    "\ufeffBOM at start",
    # Whitespace of every kind.
    "tab\tseparated\tvalues and new\nlines and\r\ncarriage returns",
    "no\u00a0break\u00a0space and ideographic\u3000space and em\u2003space",
    "\u1680ogham \u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a spaces \u202f\u205f",
    "line\u2028separator paragraph\u2029separator vt\x0bff\x0cfs\x1cgs\x1drs\x1eus\x1f",
    "   leading and trailing   ",
    "multiple     internal      spaces",
    "",
    " ",
    "\t\n\r ",
    "\u3000\u00a0\u2003",
    # Special tokens written in the text.
    "[CLS] this has a literal cls [SEP] and sep",
    "[UNK] [PAD] [MASK] [CLS][SEP]",
    "inside[MASK]word and x[UNK]y and [PAD]ded",
    "lowercase [cls] [sep] [mask] are not special",
    "[ CLS ] [CLS [CLS]] [[CLS]] [C LS] ［CLS］",
    "[MASK]",
    "[CLS]",
    "\x00[SEP]\x00",
    "[SEP]é[SEP]",
    "##ing ##s ## # ###",
    # Mixed.
    "The movie was GREAT!!! 10/10 would recommend 👍 — J. Smith, NYT",
    "It's a 'quoted' word and a \"double quoted\" one",
    "don't won't can't shouldn't y'all o'clock rock'n'roll",
    "U.S.A. e.g. i.e. etc. Mr. Mrs. Dr. St.",
    "ALL CAPS SENTENCE WITH SOME WORDS",
    "MiXeD CaSe WoRdS aNd CamelCaseIdentifiers snake_case_names",
    "ﬁ ﬂ ﬀ Ⅸ ℌ ℍ ℎ ℏ ℐ ℑ ℓ ℕ № ℗ ℘ ℙ ℚ ℛ ℜ ℝ ℞ ℠ ™ ℤ Ω ℧ ℨ ℩ K Å ℬ ℭ ℮ ℯ",
    "ＡＢＣ ａｂｃ ＦＵＬＬＷＩＤＴＨ！？",
    "𝐁𝐨𝐥𝐝 𝑰𝒕𝒂𝒍𝒊𝒄 𝔉𝔯𝔞𝔨𝔱𝔲𝔯 𝕯𝖔𝖚𝖇𝖑𝖊 mathematical alphanumerics",
    "Ⓐⓑⓒ ⒜⒝ 🄰🄱 enclosed",
    "ǅungla Ǳ ǲ ǳ ΐ ΰ ﬓ ﬔ ŉ ǰ ẖ ẗ ẘ ẙ ẚ",
    "\u0130\u0307 \u0049\u0307 i\u0307",
    "Ⅰ Ⅱ Ⅲ ⅰ ⅱ ⅲ Ⓜ ⓜ",
    "Ꙁ ꙁ Ᵹ ᵹ Ꞌ ꞌ Ɐ ɐ Ɑ ɑ Ɒ ɒ Ȿ ȿ",
    "𐐀𐐁 𐐨𐐩 Deseret, 𞤀 𞤢 Adlam, 𖹀 𖹠 Medefaidrin",
]

INTERESTING = (
    list("aeiouAEIOUxyzXYZ0123456789 .,;:!?'\"()[]{}<>-_/\\@#$%^&*+=|~`")
    + list("éèêëàâäçñöüßæøåÉÈÊËÀÂÄÇÑÖÜÆØÅİıŁłŒœ")
    + list("中文字符日本語のテキスト한국어ภาษาไทยالعربيةעבריתहिन्दीΣσςΑαΩω")
    + ["\u0301", "\u0300", "\u0308", "\u0327", "\u0323", "\u0328", "\u0307", "\u034f", "\u0344"]
    + ["\u00a0", "\u3000", "\u2003", "\t", "\n", "\r", "\x0b", "\x0c", "\x85", "\u2028", "\u1680"]
    + ["\x00", "\x07", "\x1b", "\x7f", "\u200b", "\u200d", "\ufeff", "\u00ad", "\ufffd", "\u2066", "\ue000"]
    + ["👍", "👍🏽", "🏽", "👨\u200d👩\u200d👧", "🇺🇸", "❤️", "🫠", "\ufe0f"]
    + list("«»„“”‘’—–…·•¡¿‽。，！？「」『』")
    + ["ﬁ", "ﬂ", "Ǆ", "ǅ", "ẞ", "K", "Å", "Ω", "ＡＢ", "𝐁", "\U0001d16d", "\u1b44", "\U00011938"]
    + ["\u061d", "\u2e52", "\u166d", "\U000111c9", "\u0890", "\U00013430", "\U0002b820", "\U0002b920", "\uf900"]
    + ["[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]", "[cls]", "##"]
)

WORDS = (
    "the movie film story character actor director great terrible boring funny love hate plot scene music "
    "beautiful performance script unaffable tokenization international understanding unbelievable "
    "über naïve café résumé Zürich São Paulo Kraków ströng cœur"
).split()


def random_line(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 24)):
        r = rng.random()
        if r < 0.35:
            parts.append(rng.choice(WORDS))
        elif r < 0.75:
            parts.append(rng.choice(INTERESTING))
        elif r < 0.85:
            parts.append(" ")
        else:
            # A random scalar: BMP mostly, sometimes the astral planes (unassigned, private use, CJK B…).
            cp = rng.randrange(0x80, 0x10000) if rng.random() < 0.8 else rng.randrange(0x10000, 0x110000)
            if 0xD800 <= cp <= 0xDFFF:
                cp = 0xE9
            parts.append(chr(cp))
    return "".join(parts)


def read_snippets() -> list[str]:
    with open(SNIPPETS, "r", encoding="utf-8", newline="") as f:
        lines = f.read().split("\r\n")
    assert lines[0] == "id\tsentiment\ttext", lines[0]
    rows = [l.split("\t", 2)[2] for l in lines[1:] if l]
    assert len(rows) == 10605, len(rows)
    return rows


def build_corpus() -> tuple[list[list[str]], dict]:
    rng = random.Random(SEED)
    snippets = read_snippets()
    singles = list(HAND)
    n_hand = len(singles)
    singles += [random_line(rng) for _ in range(400)]
    n_nonsnippet = len(singles)
    singles += snippets[::7][:1500]
    corpus = [[s] for s in singles]
    # Pairs: snippet pairs of every length (many need truncation at 32), hand/random texts with snippets, empty sides.
    pairs = []
    for i in range(200):
        pairs.append([snippets[(i * 53 + 1) % len(snippets)], snippets[(i * 97 + 5) % len(snippets)]])
    for i in range(60):
        pairs.append([HAND[i % n_hand], snippets[(i * 31 + 2) % len(snippets)]])
    for i in range(30):
        pairs.append([random_line(rng), random_line(rng)])
    pairs += [["", ""], ["", "second only"], ["first only", ""], ["[CLS]", "[SEP]"], ["\x00", "\u200b"],
              ["a " * 40, "b"], ["a", "b " * 40], ["中" * 40, "文" * 40], ["x" * 101, "y" * 100],
              ["Question: who directed it?", "The film was directed by someone who " + "really " * 30 + "cared."]]
    corpus += pairs
    info = {"hand": n_hand, "random": n_nonsnippet - n_hand, "snippets": len(singles) - n_nonsnippet,
            "pairs": len(pairs), "non_snippet_singles": n_nonsnippet}
    return corpus, info


# ---------------------------------------------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------------------------------------------


def make_tokenizers() -> dict[str, BertTokenizerFast]:
    uncased = BertTokenizerFast.from_pretrained(MINILM)
    cased = BertTokenizerFast(vocab=VOCAB, do_lower_case=False)
    lower_keep = BertTokenizerFast(vocab=VOCAB, do_lower_case=True, strip_accents=False)
    strip_raw = BertTokenizerFast(vocab=VOCAB, do_lower_case=False, strip_accents=True, tokenize_chinese_chars=False)
    strip_raw.backend_tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    toks = {"uncased": uncased, "cased": cased, "lower_keep_accents": lower_keep, "strip_no_clean": strip_raw}
    for name, t in toks.items():
        assert len(t.get_vocab()) == 30522, (name, len(t.get_vocab()))
        assert t.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]) == [0, 100, 101, 102, 103]
    norm = json.loads(uncased.backend_tokenizer.to_str())["normalizer"]
    assert norm["lowercase"] is True and norm["strip_accents"] is None, norm
    assert json.loads(cased.backend_tokenizer.to_str())["normalizer"]["lowercase"] is False
    ex = uncased("Hello, world! Unaffable tokenization.")["input_ids"]
    assert ex == [101, 7592, 1010, 2088, 999, 14477, 20961, 3468, 19204, 3989, 1012, 102], ex
    return toks


def flat_offsets(offsets) -> list[int]:
    return [x for se in offsets for x in se]


def truncated(tok, texts, max_length, strategy) -> dict:
    rec = {"max": max_length, "strategy": strategy}
    try:
        e = tok(*texts, max_length=max_length, truncation=strategy, padding="max_length")
    except Exception as ex:  # tokenizers raises a plain Exception for an impossible only_* truncation
        assert str(ex) == TRUNCATION_ERROR, str(ex)
        rec["error"] = True
        return rec
    n = sum(e["attention_mask"])
    assert e["attention_mask"] == [1] * n + [0] * (len(e["input_ids"]) - n)  # right padding
    assert e["token_type_ids"][n:] == [0] * (len(e["input_ids"]) - n)
    rec["ids"] = e["input_ids"]
    rec["types"] = e["token_type_ids"]
    rec["n"] = n
    return rec


def golden(name, tok, corpus, info) -> list[dict]:
    n_non_snippet = info["non_snippet_singles"]
    n_singles = len(corpus) - info["pairs"]
    full = name in ("uncased", "cased")
    out = []
    pair_index = 0
    for i, texts in enumerate(corpus):
        is_pair = len(texts) == 2
        is_snippet = n_non_snippet <= i < n_singles or (is_pair and i < n_singles + 200)
        if not full and is_snippet:
            continue
        e = tok(*texts, return_offsets_mapping=True)
        rec = {"line": i, "ids": e["input_ids"]}
        assert all(m == 1 for m in e["attention_mask"])
        if is_pair:
            rec["types"] = e["token_type_ids"]
        else:
            assert all(t == 0 for t in e["token_type_ids"])
        rec["offsets"] = flat_offsets(e["offset_mapping"])
        trunc = []
        if full and is_pair:
            for s in STRATEGIES:
                trunc.append(truncated(tok, texts, 32, s))
            if pair_index < 20:
                for m in [1, 2, 3, 4, 5, 6, 8, 12]:
                    for s in STRATEGIES:
                        trunc.append(truncated(tok, texts, m, s))
            pair_index += 1
        elif full and ((i < n_non_snippet and i % 5 == 0) or (is_snippet and i % 25 == 0)):
            for m in ([1, 2, 8] if i % 2 == 0 else [16]):
                trunc.append(truncated(tok, texts, m, "longest_first"))
        if trunc:
            rec["trunc"] = trunc
        if full and (i < n_non_snippet or i % 20 == 0):
            rec["decode"] = tok.decode(e["input_ids"], skip_special_tokens=True)
            if i % 4 == 0:
                rec["decode_special"] = tok.decode(e["input_ids"], skip_special_tokens=False)
        out.append(rec)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Per-code-point behaviour and the Swift tables
# ---------------------------------------------------------------------------------------------------------------


def code_points():
    return (cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)


def ranges(cps: list[int]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for c in cps:
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return [(a, b) for a, b in out]


def probe_unicode():
    """Classes of every code point as tokenizers 0.23.3 sees them, from its own normalizer and pre-tokenizer."""
    N = normalizers.BertNormalizer
    clean = N(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    chinese = N(clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    strip = N(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    lower = N(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    flags, strips, lowers = {}, {}, {}
    control, whitespace, punctuation, mark, combining, changed = [], [], [], [], [], []
    m216, m9 = "\U0001d165", "\u1b44"  # spacing marks (kept by strip_accents) with combining classes 216 and 9
    for cp in code_points():
        ch = chr(cp)
        c = clean.normalize_str(ch)
        f_clean = "D" if c == "" else ("W" if c == " " and ch != " " else "-")
        f_cjk = "C" if chinese.normalize_str(ch) == " " + ch + " " else "-"
        p = pre.pre_tokenize_str("a" + ch + "b")
        f_pre = "P" if len(p) == 3 else ("S" if len(p) == 2 else "-")
        flags[cp] = f_clean + f_cjk + f_pre
        s = strip.normalize_str(ch)
        l = lower.normalize_str(ch)
        if s != ch:
            strips[cp] = s
            changed.append(cp)
        if l != ch:
            lowers[cp] = l
        if f_clean == "D":
            control.append(cp)
        if f_pre == "S":
            whitespace.append(cp)
        if f_pre == "P":
            punctuation.append(cp)
        if s == "":
            mark.append(cp)
        elif s == ch:
            # Kept by strip_accents: does it take part in canonical reordering (nonzero combining class)?
            probes = [m216 + ch, ch + m216, m9 + ch, ch + m9]
            if any(strip.normalize_str(x) != x for x in probes):
                combining.append(cp)
    # The pre-tokenizer's whitespace is Unicode White_Space; clean_text maps it (and \t \n \r) to a space unless
    # it is a control character it drops (\x0b \x0c \x85).
    for cp in code_points():
        f = flags[cp]
        want = "W" if (cp in (9, 10, 13) or f[2] == "S") and f[0] != "D" and cp != 32 else None
        assert want is None or f[0] == "W", (hex(cp), f)
        assert f[0] != "W" or want == "W", (hex(cp), f)
    return flags, strips, lowers, {
        "control": ranges(control), "whitespace": ranges(whitespace), "punctuation": ranges(punctuation),
        "nonspacingMark": ranges(mark), "combiningNotMark": ranges(combining),
        "strippable": ranges(changed)}


def write_unicode_fixture(flags, strips, lowers, path):
    lines = [f"# {GENERATOR}: tokenizers {tokenizers.__version__} on every code point except surrogates.",
             "# 'R first last flags': flags = clean_text (D dropped, W mapped to space, - kept) + handle_chinese_chars",
             "#   (C padded with spaces) + BertPreTokenizer between letters (P isolated, S split on and removed, - none).",
             "# 'S cp scalars' / 'L cp scalars': strip_accents (NFD, Mn removed) / lowercase output when not the code",
             "#   point itself ('-' = removed).",
             "# 'H first last': Hangul syllables, whose strip_accents output is their algorithmic decomposition."]
    cur, start, prev = None, None, None
    for cp in code_points():
        f = flags[cp]
        if f != cur or cp != prev + 1:
            if cur is not None and cur != "---":
                lines.append(f"R {start:X} {prev:X} {cur}")
            cur, start = f, cp
        prev = cp
    if cur != "---":
        lines.append(f"R {start:X} {prev:X} {cur}")
    # Hangul syllables decompose algorithmically (Unicode 3.12); checked here, written as one line.
    for cp in range(0xAC00, 0xD7A4):
        s_index = cp - 0xAC00
        l, v, t = 0x1100 + s_index // 588, 0x1161 + (s_index % 588) // 28, 0x11A7 + s_index % 28
        assert strips.pop(cp) == chr(l) + chr(v) + (chr(t) if t != 0x11A7 else ""), hex(cp)
    lines.append("H AC00 D7A3")
    for tag, table in (("S", strips), ("L", lowers)):
        for cp in sorted(table):
            lines.append(f"{tag} {cp:X} " + (" ".join(f"{ord(x):X}" for x in table[cp]) or "-"))
    with open(path, "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")


def write_tables(tables, path):
    doc = {
        "control": "Dropped by clean_text (with NUL and U+FFFD): `is_other` of the `unicode_categories` crate, i.e.\n"
                   "    /// Cc, Cf, Co (Cn is not included); \\t \\n \\r are excluded in code.",
        "whitespace": "Split on by BertPreTokenizer and mapped to a space by clean_text (Rust `char::is_whitespace`, "
                      "Unicode White_Space).",
        "punctuation": "Isolated by BertPreTokenizer: ASCII punctuation and Unicode P* (Pc Pd Ps Pe Pi Pf Po).",
        "nonspacingMark": "Removed by strip_accents after NFD: Unicode Mn.",
        "combiningNotMark": "Kept by strip_accents but with a nonzero canonical combining class in tokenizers' NFD "
                            "tables, so they\n    /// take part in canonical reordering. Every other non-Mn scalar is a "
                            "starter there, whatever Swift says.",
        "strippable": "Changed by strip_accents (NFD, then Mn removed): the only scalars whose NFD is worth "
                      "computing. Not\n    /// U+11938, which tokenizers' NFD tables do not decompose.",
    }
    out = [
        f"// Generated by {GENERATOR} — do not edit.",
        f"// The character classes of Hugging Face tokenizers {tokenizers.__version__}, read from its BertNormalizer and",
        "// BertPreTokenizer on every code point. tokenizers takes them from the `unicode_categories` crate, whose tables",
        "// are older (about Unicode 8) than Swift's, so Swift's `generalCategory` would disagree on a few hundred",
        "// scalars (new punctuation, format characters and marks); these ranges make the match exact.",
        "",
        "enum UnicodeTables {",
    ]
    for key in ["control", "whitespace", "punctuation", "nonspacingMark", "combiningNotMark", "strippable"]:
        rs = tables[key]
        out.append(f"    /// {doc[key]} {len(rs)} ranges.")
        out.append(f"    static let {key}: [ClosedRange<UInt32>] = [")
        row = []
        for a, b in rs:
            row.append(f"0x{a:X}...0x{b:X},")
            if len(row) == 6:
                out.append("        " + " ".join(row))
                row = []
        if row:
            out.append("        " + " ".join(row))
        out.append("    ]")
    out.append("}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


# ---------------------------------------------------------------------------------------------------------------


def dump_jsonl(path, header, records):
    with open(path, "w", encoding="ascii") as f:
        f.write(json.dumps(header, ensure_ascii=True, separators=(",", ":")) + "\n")
        for r in records:
            f.write(json.dumps(r, ensure_ascii=True, separators=(",", ":")) + "\n")


def main() -> None:
    if not os.path.exists(VOCAB) or not os.path.exists(SNIPPETS):
        sys.exit(f"{GENERATOR}: {ASSETS} lacks the MiniLM tokenizer or the movie snippets; run `swift run cofi fetch`")
    os.makedirs(FIXTURES, exist_ok=True)
    corpus, info = build_corpus()
    toks = make_tokenizers()
    versions = {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__}
    with open(os.path.join(FIXTURES, "tokenizer_corpus.jsonl"), "w", encoding="ascii") as f:
        for texts in corpus:
            f.write(json.dumps(texts, ensure_ascii=True) + "\n")
    sizes = {}
    for name, tok in toks.items():
        recs = golden(name, tok, corpus, info)
        header = {"generator": GENERATOR, "variant": name, "versions": versions, "corpus": info,
                  "tokenizer": repr(json.loads(tok.backend_tokenizer.to_str())["normalizer"]),
                  "records": len(recs), "tokens": sum(len(r["ids"]) for r in recs)}
        path = os.path.join(FIXTURES, f"tokenizer_golden_{name}.jsonl")
        dump_jsonl(path, header, recs)
        sizes[name] = (len(recs), header["tokens"], os.path.getsize(path))
    flags, strips, lowers, tables = probe_unicode()
    write_unicode_fixture(flags, strips, lowers, os.path.join(FIXTURES, "tokenizer_unicode.txt"))
    write_tables(tables, TABLES)
    print(f"corpus: {len(corpus)} lines {info}")
    for name, (n, t, b) in sizes.items():
        print(f"golden {name}: {n} lines, {t} tokens, {b / 1e6:.2f} MB")
    print("unicode tables:", {k: len(v) for k, v in tables.items()})
    print("unicode fixture:", os.path.getsize(os.path.join(FIXTURES, "tokenizer_unicode.txt")) / 1e6, "MB")


if __name__ == "__main__":
    main()
