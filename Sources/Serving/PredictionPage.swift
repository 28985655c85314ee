import Crypto
import Foundation
import Formats

/// `GET /`: one self-contained HTML document — its CSS and script inline, nothing loaded from elsewhere — to try the
/// model in a browser: a form for the model's kind of record (a text, and a second text when the model takes pairs;
/// a question and a context for a span model) that posts it to `POST /predict` as any client does, and shows the
/// answer (the label with a bar per class and its probability, the value, or the answer highlighted in its context
/// with its score), whether the input was truncated, and the time the request took. Every error — an HTTP error
/// status with the server's message, a record the model refused, the server out of reach — is shown in words.
///
/// `?text=…` (and `&text_pair=…`), or `?question=…&context=…` for a span model, fill the form and submit it once
/// when the page loads, through the same handler as the button: how scripts and the browser test drive the page.
///
/// Below the form, the model: its facts (`HealthReport`), the structure figure and the model card (`ModelPage`).
///
/// Everything from the model or the user is text to the page: the server escapes what it writes (`Markup.escape`,
/// `MarkdownHTML`), and the script sets `textContent`, never `innerHTML`. The page is built once, with the
/// Content-Security-Policy that allows exactly its own script and style (by their SHA-256), requests to this
/// server, and `data:` images (the figure); nothing else.
struct PredictionPage {
    /// The document, UTF-8.
    let html: String
    /// The `Content-Security-Policy` header for it.
    let contentSecurityPolicy: String

    /// The page for a server answering as `health` says, with a second text field when `acceptsPairs` (a model
    /// with two or more token types), and what `model` gives.
    init(health: HealthReport, acceptsPairs: Bool, model: ModelPage) {
        let title = model.title ?? "cofi serve — \(health.model)"
        var body = "<header>\n<h1>\(Markup.escape(title))</h1>\n<p class=\"facts\">\(Self.facts(health))</p>\n</header>\n"
        body += "<main>\n<section id=\"ask\">\n<noscript><p class=\"error\">This page needs JavaScript to send "
            + "predictions; without it, POST records to /predict (see GET /health).</p></noscript>\n"
            + Self.form(task: health.task, acceptsPairs: acceptsPairs) + "</section>\n"
            + "<section id=\"outcome\" aria-live=\"polite\">\n"
            + "<div id=\"error\" class=\"error\" role=\"alert\" hidden><strong id=\"error-title\"></strong>"
            + "<p id=\"error-detail\"></p></div>\n"
            + "<div id=\"result\" hidden></div>\n</section>\n"
        body += Self.modelSection(model)
        body += "</main>\n"
        let settings = Self.settings(health: health, acceptsPairs: acceptsPairs)
        html = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(Markup.escape(title))</title>
            <style>\(Self.style)</style>
            </head>
            <body data-state="idle">
            \(body)<script type="application/json" id="settings">\(settings)</script>
            <script>\(Self.script)</script>
            </body>
            </html>

            """
        contentSecurityPolicy = "default-src 'none'; script-src '\(Self.sha256(Self.script))'; "
            + "style-src '\(Self.sha256(Self.style))'; img-src data:; connect-src 'self'; base-uri 'none'; "
            + "form-action 'none'; frame-ancestors 'none'"
    }

    /// One line of facts: the model, its task and labels, the max length and the request limit (each kept whole
    /// when the line wraps).
    static func facts(_ health: HealthReport) -> String {
        var facts = ["model <b>\(Markup.escape(health.model))</b>", "task <b>\(Markup.escape(health.task))</b>"]
        if !health.labels.isEmpty {
            facts.append("labels " + health.labels.map { "<b>\(Markup.escape($0))</b>" }.joined(separator: ", "))
        }
        facts.append("at most \(health.maxLength) tokens per sequence")
        facts.append("requests up to \(byteSize(health.maxBodyBytes))")
        return facts.map { "<span>\($0)</span>" }.joined(separator: " · ")
    }

    /// A size for people: "200 bytes", "64 KiB", "1 MiB", "1.5 MiB".
    static func byteSize(_ bytes: Int) -> String {
        for (unit, size) in [("MiB", 1 << 20), ("KiB", 1 << 10)] where bytes >= size {
            let value = Double(bytes) / Double(size)
            let text = String(format: "%.1f", value)
            return (text.hasSuffix(".0") ? String(text.dropLast(2)) : text) + " " + unit
        }
        return "\(bytes) bytes"
    }

    /// The form's fields for the model's kind of record, and the button.
    static func form(task: String, acceptsPairs: Bool) -> String {
        var fields: String
        if task == "span" {
            fields = "<label for=\"question\">Question</label>\n"
                + "<input id=\"question\" name=\"question\" type=\"text\" placeholder=\"Who won the game?\">\n"
                + "<label for=\"context\">Context</label>\n"
                + "<textarea id=\"context\" name=\"context\" rows=\"8\" placeholder=\"The text that holds the "
                + "answer\"></textarea>\n"
        } else {
            fields = "<label for=\"text\">Text</label>\n"
                + "<textarea id=\"text\" name=\"text\" rows=\"5\" placeholder=\"Type a sentence\" autofocus>"
                + "</textarea>\n"
            if acceptsPairs {
                fields += "<details id=\"pair\"><summary>Second text (sentence-pair tasks)</summary>\n"
                    + "<textarea id=\"text_pair\" name=\"text_pair\" rows=\"3\" placeholder=\"Optional: the "
                    + "second sentence of a pair\"></textarea></details>\n"
            }
        }
        return "<form id=\"form\" autocomplete=\"off\">\n" + fields
            + "<div class=\"actions\"><button id=\"predict\" type=\"submit\">Predict</button>"
            + "<span class=\"hint\">Ctrl+Enter</span><span id=\"status\" role=\"status\"></span></div>\n</form>\n"
    }

    /// The model's figure and card, each when given.
    static func modelSection(_ model: ModelPage) -> String {
        var out = ""
        if let svg = model.structureSVG {
            out += "<section id=\"structure\">\n<h2>Kept structure</h2>\n<figure><img id=\"structure-figure\" "
                + "alt=\"The model's kept structure: the attention heads and feed-forward width left in each layer\" "
                + "src=\"data:image/svg+xml;base64,\(Data(svg.utf8).base64EncodedString())\"></figure>\n</section>\n"
        }
        if let card = model.cardMarkdown {
            out += "<section id=\"card\">\n<h2>Model card</h2>\n<article class=\"card\">\n"
                + MarkdownHTML.render(card) + "</article>\n</section>\n"
        }
        return out
    }

    /// What the script needs to know, as a JSON data block (`<` written `\u003c`, so that no string in it can
    /// close the block).
    static func settings(health: HealthReport, acceptsPairs: Bool) -> String {
        struct Settings: Encodable {
            let task: String
            let labels: [String]
            let max_length: Int
            let max_body_bytes: Int
            let pairs: Bool
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try! encoder.encode(Settings(task: health.task, labels: health.labels, max_length: health.maxLength,
                                                max_body_bytes: health.maxBodyBytes, pairs: acceptsPairs))
        return String(decoding: data, as: UTF8.self).replacingOccurrences(of: "<", with: "\\u003c")
    }

    /// A CSP hash source of an inline element's text: `sha256-BASE64`.
    static func sha256(_ text: String) -> String {
        "sha256-" + Data(SHA256.hash(data: Data(text.utf8))).base64EncodedString()
    }

    static let style = """

        :root { color-scheme: light; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --accent: #0969da;
          --soft: #f6f8fa; --bad: #b42318; --bad-soft: #fef3f2; --mark: #fff1a8; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
          color: var(--ink); background: #fff; }
        header, main { max-width: 920px; margin: 0 auto; padding: 0 24px; }
        header { padding-top: 20px; border-bottom: 1px solid var(--line); }
        h1 { font-size: 1.6em; margin: 0 0 4px; }
        h2 { font-size: 1.2em; margin: 28px 0 10px; }
        .facts { color: var(--muted); margin: 0 0 14px; font-size: 0.95em; }
        .facts b { color: var(--ink); font-weight: 600; }
        .facts span { white-space: nowrap; }
        label { display: block; font-weight: 600; margin: 16px 0 4px; }
        textarea, input[type=text] { width: 100%; font: inherit; padding: 8px 10px; border: 1px solid var(--line);
          border-radius: 6px; resize: vertical; }
        textarea:focus, input:focus { outline: 2px solid var(--accent); border-color: var(--accent); }
        details#pair { margin-top: 8px; color: var(--muted); }
        details#pair textarea { margin-top: 6px; }
        .actions { display: flex; align-items: center; gap: 12px; margin-top: 12px; }
        button { font: inherit; font-weight: 600; padding: 7px 22px; border-radius: 6px; border: 1px solid #1a7f37;
          background: #1f883d; color: #fff; cursor: pointer; }
        button:disabled { opacity: 0.6; cursor: progress; }
        .hint, #status { color: var(--muted); font-size: 0.9em; }
        #outcome { margin-top: 18px; }
        .error { border: 1px solid #f4b6b0; background: var(--bad-soft); color: var(--bad); border-radius: 6px;
          padding: 10px 14px; }
        .error p { margin: 4px 0 0; color: var(--ink); white-space: pre-wrap; overflow-wrap: anywhere; }
        #result { border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; background: var(--soft); }
        .headline { font-size: 1.1em; margin: 0 0 10px; }
        .headline strong { font-size: 1.35em; margin-left: 6px; }
        .bars { display: grid; grid-template-columns: minmax(6em, max-content) 1fr 4.5em; gap: 6px 12px;
          align-items: center; }
        .bars .name { overflow-wrap: anywhere; }
        .bars .name.top { font-weight: 700; }
        .bar { height: 14px; background: #e6eaef; border-radius: 3px; overflow: hidden; }
        .fill { height: 100%; background: var(--accent); }
        .fill.top { background: #1f883d; }
        .percent { text-align: right; font-variant-numeric: tabular-nums; }
        .context { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px;
          white-space: pre-wrap; overflow-wrap: anywhere; }
        mark { background: var(--mark); border-radius: 2px; padding: 0 1px; }
        .note { color: var(--muted); margin: 10px 0 0; font-size: 0.92em; }
        .note.warn { color: #9a6700; }
        figure { margin: 0; }
        figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
        .card { border-top: 1px solid var(--line); padding-bottom: 40px; overflow-wrap: anywhere; }
        .card h1 { font-size: 1.4em; } .card h2 { font-size: 1.2em; } .card h3, .card h4 { font-size: 1.05em; }
        .card pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px;
          overflow-x: auto; }
        code { font: 0.9em/1.4 ui-monospace, "DejaVu Sans Mono", monospace; }
        .card :not(pre) > code { background: var(--soft); padding: 1px 4px; border-radius: 4px; }
        .card .table { overflow-x: auto; }
        .card table { border-collapse: collapse; margin: 8px 0; }
        .card th, .card td { border: 1px solid var(--line); padding: 4px 10px; text-align: left; }
        .card th { background: var(--soft); }
        .card .align-right { text-align: right; } .card .align-center { text-align: center; }
        .card blockquote { margin: 0; padding-left: 12px; border-left: 3px solid var(--line); color: var(--muted); }
        .front-matter { margin: 12px 0; color: var(--muted); }

        """

    static let script = #"""

        "use strict";
        const settings = JSON.parse(document.getElementById("settings").textContent);
        const $ = (id) => document.getElementById(id);
        const reasons = { 400: "Bad Request", 404: "Not Found", 408: "Request Timeout", 413: "Content Too Large",
          500: "Internal Server Error", 503: "Service Unavailable" };
        const meanings = {
          400: "The server could not read the request",
          404: "The server has no such endpoint",
          408: "The request did not reach the server in time",
          413: "The text is larger than the server accepts",
          503: "The server is busy: every connection has a request in progress; try again",
        };
        let busy = false;

        // The record the form describes, as POST /predict reads it.
        function record() {
          if (settings.task === "span") return { question: $("question").value, context: $("context").value };
          const r = { text: $("text").value };
          const pair = $("text_pair");
          if (pair && pair.value.trim() !== "") r.text_pair = pair.value;
          return r;
        }

        function element(tag, className, text) {
          const e = document.createElement(tag);
          if (className) e.className = className;
          if (text !== undefined) e.textContent = text;
          return e;
        }

        function showError(title, detail) {
          $("result").hidden = true;
          $("error-title").textContent = title;
          $("error-detail").textContent = detail || "";
          $("error").hidden = false;
          document.body.dataset.state = "error";
        }

        // An HTTP error answer: what the status means, and the server's own message.
        function showStatus(status, body, bytes) {
          let message = "";
          try { message = JSON.parse(body).error || ""; } catch (e) { message = body.slice(0, 500); }
          const reason = reasons[status] ? " " + reasons[status] : "";
          let meaning = meanings[status] ||
            (status >= 500 ? "The server failed to answer" : "The server refused the request");
          if (status === 413) {
            meaning += " (this request is " + bytes + " bytes; the server takes at most " +
              settings.max_body_bytes + ")";
          }
          showError(meaning + " — HTTP " + status + reason + ".",
                    message ? "The server says: " + message : "The server gave no message.");
        }

        function headline(caption, value, id) {
          const p = element("p", "headline", caption);
          const strong = element("strong", "", value);
          strong.id = id;
          p.appendChild(strong);
          return p;
        }

        function percent(p) { return (100 * p).toFixed(1) + "%"; }

        function showClassification(answer, box) {
          box.appendChild(headline("Label", answer.label, "label"));
          const bars = element("div", "bars");
          bars.id = "probabilities";
          const entries = Object.entries(answer.probabilities || {}).sort((a, b) => b[1] - a[1]);
          for (const [name, p] of entries) {
            const top = name === answer.label ? " top" : "";
            bars.appendChild(element("span", "name" + top, name));
            const bar = element("div", "bar");
            const fill = element("div", "fill" + top);
            fill.style.width = Math.max(0, Math.min(100, 100 * p)).toFixed(2) + "%";
            bar.appendChild(fill);
            bars.appendChild(bar);
            bars.appendChild(element("span", "percent", percent(p)));
          }
          box.appendChild(bars);
        }

        function showRegression(answer, box) {
          box.appendChild(headline("Value", Number(answer.score).toFixed(4), "value"));
        }

        // The answer, and the context with the answer marked: start and end count Unicode scalars, as
        // Array.from splits a string.
        function showSpan(answer, sent, box) {
          const found = typeof answer.start === "number" && typeof answer.end === "number";
          box.appendChild(headline("Answer", found ? answer.answer : "(no answer in the context)", "answer"));
          const context = element("div", "context");
          context.id = "context-view";
          const scalars = Array.from(sent.context);
          if (found) {
            context.appendChild(document.createTextNode(scalars.slice(0, answer.start).join("")));
            context.appendChild(element("mark", "", scalars.slice(answer.start, answer.end).join("")));
            context.appendChild(document.createTextNode(scalars.slice(answer.end).join("")));
          } else {
            context.textContent = sent.context;
          }
          box.appendChild(context);
          box.appendChild(element("p", "note", "Score " + percent(answer.score) +
                                  " (the answer's probability among the best candidate answers)."));
        }

        function showAnswer(answer, sent, ms) {
          const box = $("result");
          box.replaceChildren();
          if (settings.task === "span") showSpan(answer, sent, box);
          else if (settings.task === "regression") showRegression(answer, box);
          else showClassification(answer, box);
          if (answer.truncated) {
            const note = element("p", "note warn", "The input was longer than " + settings.max_length +
                                 " tokens: only its beginning was read.");
            note.id = "truncated";
            box.appendChild(note);
          }
          const time = element("p", "note", "Answered in " + ms.toFixed(0) + " ms (the whole request).");
          time.id = "elapsed";
          box.appendChild(time);
          $("error").hidden = true;
          box.hidden = false;
          document.body.dataset.state = "done";
        }

        // Posts the form's record to /predict and shows the answer or the error: the button, Ctrl+Enter and the
        // query string all come here.
        async function submit() {
          if (busy) return;
          busy = true;
          $("predict").disabled = true;
          $("status").textContent = "Predicting…";
          document.body.dataset.state = "busy";
          const sent = record();
          const body = JSON.stringify(sent);
          const bytes = new TextEncoder().encode(body).length;
          const started = performance.now();
          try {
            let response, text;
            try {
              response = await fetch("/predict", { method: "POST", body: body,
                                                   headers: { "Content-Type": "application/json" } });
              text = await response.text();
            } catch (e) {
              showError("Could not reach the server.", "The request failed before an answer came (" + e.message +
                        "). Is cofi serve still running" + (location.host ? " at " + location.host : "") + "?");
              return;
            }
            const ms = performance.now() - started;
            if (!response.ok) { showStatus(response.status, text, bytes); return; }
            let answer = null;
            try { answer = JSON.parse(text); } catch (e) { answer = null; }
            if (answer === null || typeof answer !== "object" || Array.isArray(answer)) {
              showError("The server's answer is not a prediction.", text.slice(0, 500));
            } else if (typeof answer.error === "string") {
              showError("The model could not answer this input.", "The server says: " + answer.error);
            } else {
              showAnswer(answer, sent, ms);
            }
          } finally {
            busy = false;
            $("predict").disabled = false;
            $("status").textContent = "";
          }
        }

        $("form").addEventListener("submit", (event) => { event.preventDefault(); submit(); });
        $("form").addEventListener("keydown", (event) => {
          if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submit(); }
        });

        // ?text=…&text_pair=… or ?question=…&context=…: fill the form and submit it once.
        const query = new URLSearchParams(location.search);
        let given = false;
        for (const key of ["text", "text_pair", "question", "context"]) {
          if (query.has(key) && $(key)) { $(key).value = query.get(key); given = true; }
        }
        if (query.get("text_pair") && $("pair")) $("pair").open = true;
        if (given) submit();

        """#
}
