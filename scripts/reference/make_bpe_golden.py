"""Golden files for the byte-level BPE tokenizer (Tests/TasksTests/BPETokenizerGoldenTests.swift).

Writes into Tests/TasksTests/Fixtures/:
  bpe_golden.zip         one member, bpe_golden.jsonl: a first line {"corpus": N, "generator": …}, then per corpus
                         line {"text", "ids", "offsets" (flat [start0, end0, start1, …]), "tiny_ids", "tiny_offsets"}:
                         "ids"/"offsets" from Hugging Face's tokenizer of SmolLM2-135M-Instruct as transformers
                         builds it from the GGUF file (AutoTokenizer.from_pretrained(dir, gguf_file=…)), "tiny_*" from
                         the small tokenizer below; offsets are Python string indices (Unicode scalars), as HF reports
                         them. Every line also decodes back to its text with both tokenizers (asserted here).
  bpe_tiny_tokenizer.json
                         a small byte-level BPE tokenizer (vocabulary 600, three added special tokens) trained by the
                         `tokenizers` package on the corpus, saved as tokenizer.json: the JSON constructor's fixture
  bpe_tiny_tokenizer.gguf
                         the same tokenizer as GGUF metadata, written by the `gguf` package as llama.cpp's converter
                         lays it out (tokenizer.ggml.model "gpt2", tokens, merges "a b", token types with the added
                         tokens as control tokens, BOS/EOS ids, a chat template) and no tensors: the GGUF
                         constructor's fixture that needs no fetched model

The corpus (1,000+ lines, seeded, reproducible): movie-review sentences from .assets (the movie-review snippets),
lines of Python's own `textwrap.py` and `json/decoder.py` (code, indentation), generated numbers, punctuation and
whitespace runs (tabs, newlines, \\r\\n, Unicode spaces), sentences in accented and non-Latin scripts, emoji (ZWJ
sequences, flags, skin tones), contractions, the chat template's special tokens inside text, and a few long lines.

    .venv-ref/bin/python scripts/reference/make_bpe_golden.py
"""
import io
import json
import os
import random
import tempfile
import zipfile

import json as json_module
import textwrap

import gguf
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import AutoTokenizer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "TasksTests", "Fixtures")
ASSETS = os.path.join(ROOT, ".assets")
GGUF_DIR = os.path.join(ASSETS, "SmolLM2-135M-Instruct")
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

SCRIPTS = [
    "Le café était déjà fermé, mais l'hôtel où nous logions servait des crêpes à minuit.",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein — sagte Jürgen, während er Straße für Straße lief.",
    "¿Dónde está la estación? ¡Qué día tan bonito! Añadir señales en el niño.",
    "Ångström, Øresund, Æsir, ðæt, þorn, łódź, Dvořák, Ştefan, İstanbul, ıi, ß, ẞ.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Τάχιστη αλώπηξ βαφής ψημένη γη, δρασκελίζει υπέρ νωθρού κυνός.",
    "أبجد هوز حطي كلمن سعفص قرشت ثخذ ضظغ — ١٢٣٤٥٦٧٨٩٠",
    "עטלף אבק נס דרך מזגן שהתפוצץ כי חם",
    "ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले विष्णुवतार भगवान श्रीराम ४२",
    "我能吞下玻璃而不伤身体。你好，世界！今天是2024年12月6日。",
    "いろはにほへと ちりぬるを わかよたれそ つねならむ。カタカナ、ｶﾀｶﾅ、漢字。",
    "키스의 고유조건은 입술끼리 만나야 하고 특별한 기술은 필요치 않다.",
    "เป็นมนุษย์สุดประเสริฐเลิศคุณค่า กว่าบรรดาฝูงสัตว์เดรัจฉาน",
    "ქართული ენა, Հայերեն լեզու, ᠮᠣᠩᠭᠣᠯ, ትግርኛ, ᏣᎳᎩ, ᚠᚢᚦᚨᚱᚲ.",
    "Combining: e\u0301 a\u0300 o\u0308 n\u0303 — precomposed: é à ö ñ; Zalgo: Z\u0351\u0334a\u0346l\u0350g\u0352o",
    "Math: ∀x ∈ ℝ, x² ≥ 0; ∑ᵢ aᵢ ≤ ∞; ½ ¾ ⅓ Ⅻ ⑳ ㊿ 𝟘𝟙𝟚 𝔄𝔅 µ Ω ℃ №",
    "Emoji: 😀😃😄 👍🏽👍🏿 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵 ❤️ ✈️ 🧑🏻‍💻 #️⃣ 1️⃣ 🫠",
    "Mixed: naïve café résumé coöperate façade jalapeño piñata — “quotes” ‘single’ «guillemets» „low“",
    "Symbols: ©®™ §¶ †‡ •·… ‰ ′″ ‹› ← → ↑ ↓ ⇒ ⇔ ☃ ★ ☆ ♠ ♣ ♥ ♦ ✓ ✗ € £ ¥ ₹ ₿",
    "Private use & rare: \ue000\uf8ff 𐍈 𓀀 𒀀 𝄞 \U0001F9EC \u200b\u200c\u200d\u2060\ufeff",
]

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<file_sep>", "<filename>", "<gh_stars>",
           "<issue_start>", "<jupyter_code>", "<empty_output>"]


def corpus():
    rng = random.Random(19)
    lines = []
    with open(os.path.join(ASSETS, "movie-review-snippets", "movieReviewSnippets_GroundTruth.txt"), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t", 2)[2] for line in f.readlines()[1:]]
    lines += rng.sample(rows, 420)
    for module in (textwrap, json_module.decoder):
        with open(module.__file__, encoding="utf-8") as f:
            code = [l.rstrip("\n") for l in f if l.strip()]
        lines += code[:130]
    lines += SCRIPTS * 3
    for i in range(60):   # numbers
        parts = [str(rng.randint(0, 10 ** rng.randint(1, 12))), f"{rng.uniform(-1e4, 1e4):.{rng.randint(0, 6)}f}",
                 f"{rng.randint(1, 28)}/{rng.randint(1, 12)}/20{rng.randint(0, 99):02d}", f"{rng.random():.3e}",
                 f"0x{rng.getrandbits(32):08X}", f"+1 ({rng.randint(200, 999)}) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
                 "٣٤٥", "１２３", "½", "Ⅳ"]
        rng.shuffle(parts)
        lines.append(" ".join(parts[:rng.randint(2, 7)]))
    pool_punct = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + ["...", "--", "—", "–", "?!", "!!!", "'''", "``"]
    pool_space = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\u00a0", "\u3000", "\u2028", "\u0085",
                  "\u2003", "\v", "\f", " \n ", "\t \t"]
    words = "the a of to and in is it you that he was for on are with as I his they be at one have this".split()
    for i in range(120):  # punctuation and whitespace runs mixed with words
        n = rng.randint(3, 16)
        out = []
        for _ in range(n):
            r = rng.random()
            if r < 0.35:
                out.append(rng.choice(words) if rng.random() < 0.8 else rng.choice(words).upper())
            elif r < 0.65:
                out.append("".join(rng.choice(pool_punct) for _ in range(rng.randint(1, 5))))
            else:
                out.append(rng.choice(pool_space))
        lines.append("".join(out))
    contractions = ["it's", "It'S", "we're", "they've", "I'm", "you'll", "he'd", "don't", "''s", "'s'", "rock 'n' roll",
                    "o'clock", "'tis", "’s curly", "'LL", "can't'nt", "''", "'"]
    for i in range(40):
        lines.append(" ".join(rng.choice(contractions + words) for _ in range(rng.randint(2, 10))))
    for i in range(60):   # special tokens inside text
        a, b = rng.choice(SPECIAL), rng.choice(SPECIAL)
        forms = [f"{a}user\nHello, who are you?{b}\n{SPECIAL[1]}assistant\n",
                 f"text{a}text{b}", f" {a} {b} ", f"{a}{b}{a}", f"<|im_start {a[:-1]} {a}x", f"a<{a}>b",
                 f"{a[:5]}…{a[5:]}", f"\t{a}\n\n{b}\t"]
        lines.append(rng.choice(forms))
    alphabet = "".join(SCRIPTS) + "abcdefghijklmnopqrstuvwxyz0123456789 \t\n.,;!?'"
    for i in range(100):  # random mixtures of every script
        lines.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80))))
    lines += ["", " ", "\n", "\t", "  \n\n  ", "a", "é", "😀", "\u00a0", "Ġ", "ĠĠ", "Ċ", " Ġ Ċ"]
    lines.append(" ".join(rows[:60]))                                   # a long prose line
    lines.append("x" * 3000 + " " + "ab" * 1500)                       # long runs of one letter
    lines.append(" " * 500 + "end" + "\t" * 300)                       # long whitespace runs
    lines.append("".join(SCRIPTS) * 4)                                 # long mixed scripts
    return lines


def write_tiny_gguf(json_path, path):
    """The tokenizer.json at `json_path` as a GGUF file's tokenizer metadata."""
    with open(json_path, encoding="utf-8") as f:
        spec = json.load(f)
    vocab = spec["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.get)
    assert [vocab[t] for t in tokens] == list(range(len(tokens)))
    added = {t["id"] for t in spec["added_tokens"]}
    w = gguf.GGUFWriter(path, arch="llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens)
    w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in spec["model"]["merges"]])
    w.add_token_types([gguf.TokenType.CONTROL if i in added else gguf.TokenType.NORMAL for i in range(len(tokens))])
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.add_add_bos_token(False)
    w.add_chat_template("{{ messages }}")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def flat(offsets):
    return [x for pair in offsets for x in pair]


def main():
    lines = corpus()
    assert len(lines) >= 1000, len(lines)
    hf = AutoTokenizer.from_pretrained(GGUF_DIR, gguf_file=GGUF_FILE)

    tiny = Tokenizer(models.BPE())
    tiny.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tiny.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, min_frequency=2, special_tokens=["<s>", "</s>", "<|sep|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tiny.train_from_iterator(lines[:600], trainer=trainer)
    tiny_path = os.path.join(OUT, "bpe_tiny_tokenizer.json")
    tiny.save(tiny_path)
    write_tiny_gguf(tiny_path, os.path.join(OUT, "bpe_tiny_tokenizer.gguf"))

    records = [json.dumps({"corpus": len(lines), "generator": "make_bpe_golden.py",
                           "tokenizer": f"{GGUF_DIR}/{GGUF_FILE} via transformers AutoTokenizer"}, ensure_ascii=False)]
    tokens = 0
    for text in lines:
        enc = hf(text, return_offsets_mapping=True)
        ids = enc["input_ids"]
        assert hf.decode(ids) == text, repr(text)
        t = tiny.encode(text)
        assert tiny.decode(t.ids, skip_special_tokens=False) == text or "<s>" in text, repr(text)
        tokens += len(ids)
        records.append(json.dumps({"text": text, "ids": ids, "offsets": flat(enc["offset_mapping"]),
                                   "tiny_ids": t.ids, "tiny_offsets": flat(t.offsets)}, ensure_ascii=False,
                                  separators=(",", ":")))
    data = ("\n".join(records) + "\n").encode("utf-8")
    path = os.path.join(OUT, "bpe_golden.zip")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        info = zipfile.ZipInfo("bpe_golden.jsonl", date_time=(2026, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, data)
    print(f"{len(lines)} lines, {tokens} tokens; {path}: {os.path.getsize(path)} bytes "
          f"({len(data)} uncompressed); {tiny_path}: {os.path.getsize(tiny_path)} bytes")


if __name__ == "__main__":
    main()
