/**
 * Embeddable chat widget for the document QA service (docs/api.md, "The widget").
 *
 *   <script src="http://HOST/widget.js" data-key="PUBLISHABLE_KEY" defer></script>
 *
 * Adds a <rag-chat> element: a floating button that opens a panel where visitors ask questions
 * and read the cited paragraphs. Everything lives in an open shadow root so the host page's CSS
 * and the widget's cannot reach each other. No dependencies and no globals besides the element.
 * Optional attributes: data-key (omit it when the service has no keys), data-title, and
 * data-collection (the knowledge base to answer from; default "default").
 */
(() => {
  "use strict";

  // Included twice (two tags, or a tag plus a bundled copy): the first copy already runs.
  if (customElements.get("rag-chat")) return;

  const script =
    document.currentScript ?? document.querySelector('script[src$="/widget.js"]');
  const config = {
    // The service is wherever this file was served from, also under a path prefix.
    base: new URL(".", script.src),
    key: script.dataset.key ?? "",
    collection: script.dataset.collection || "default",
    title: script.dataset.title || "文档问答",
  };

  // What the service allows: its RAG_MAX_HISTORY_TURNS and RAG_MAX_HISTORY_CHARS, and whether
  // this widget's key may open a cited original file. The service that serves this script
  // writes its own in (service/routes/widget.py); these are its defaults.
  const SERVICE = { historyTurns: 20, historyChars: 20000, originals: true };

  const MESSAGES = {
    hint: "用简体或繁体提问，回答会注明出自哪个文件的哪一段。",
    searching: "正在查找相关文档…",
    composing: "正在作答…",
    loadingParagraph: "正在载入原文…",
    unreachable: "无法连接到问答服务，请稍后再试。",
    interrupted: "与问答服务的连接中断了，请稍后再试。",
    incomplete: "回答没有完整传回，请再问一次。",
    paragraphFailed: "原文没能载入，请稍后再试。",
    // A citation's token expires (an hour by default): a new answer brings fresh ones.
    citationRefused: "这条出处已失效，请重新提问后再打开。",
    openOriginal: (page) => `打开原文第 ${page} 页`,
    newConversation: "新对话",
    // A follow-up is answered as the question it was understood as: say which.
    understoodAs: (question) => `理解为：${question}`,
    unsupported: "这句话没有注明出处，文档中未必有依据。",
    // data-collection names a knowledge base the service does not have.
    noCollection: "问答服务中没有这个知识库。",
    status: {
      401: "问答服务需要有效的访问密钥。",
      403: "此网页无权使用问答服务。",
      429: "请求太频繁，请稍后再试。",
      503: "问答服务正忙，请稍后再试。", // at capacity (or still loading): retry later
    },
  };

  /** An error whose message is meant for the visitor. */
  class ServiceError extends Error {}

  // -- Server-Sent Events ------------------------------------------------------------------------

  /**
   * Incremental parser for the SSE wire format (html.spec.whatwg.org, "Parsing an event
   * stream"): feed it decoded text in chunks of any size, get back the completed events.
   */
  class EventStreamParser {
    #pending = "";
    #type = "";
    #data = [];

    /** @returns {{type: string, data: string}[]} the events this text completes */
    push(text) {
      let complete = this.#pending + text;
      // A trailing "\r" may be the first half of a "\r\n" that the next chunk completes.
      const heldBack = complete.endsWith("\r") ? "\r" : "";
      if (heldBack) complete = complete.slice(0, -1);
      const lines = complete.split(/\r\n|\r|\n/);
      this.#pending = lines.pop() + heldBack;
      return lines.map((line) => this.#line(line)).filter(Boolean);
    }

    #line(line) {
      if (line === "") return this.#dispatch();
      if (line.startsWith(":")) return null; // a comment, such as a keep-alive ping
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") this.#type = value;
      else if (field === "data") this.#data.push(value);
      return null; // "id" and "retry" only matter to EventSource's reconnection
    }

    #dispatch() {
      const event = this.#data.length
        ? { type: this.#type || "message", data: this.#data.join("\n") }
        : null;
      this.#type = "";
      this.#data = [];
      return event;
    }
  }

  /** Yields `{type, data}` for each event of a `text/event-stream` response body. */
  async function* readEventStream(body) {
    const reader = body.getReader();
    // {stream: true} keeps a UTF-8 character split between two chunks for the next call.
    const decoder = new TextDecoder();
    const parser = new EventStreamParser();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        yield* parser.push(decoder.decode(value, { stream: true }));
      }
      yield* parser.push(decoder.decode());
    } finally {
      // Stops the download when the consumer leaves early; a no-op after the end.
      reader.cancel().catch(() => {});
    }
  }

  // -- The service -------------------------------------------------------------------------------

  class ServiceClient {
    constructor({ base, key, collection }) {
      this.base = base;
      this.key = key;
      this.collection = collection;
    }

    /**
     * Asks a question of the widget's collection after the conversation's earlier turns
     * (`[{question, answer}]`, which the service uses to understand a follow-up); yields the
     * stream's events as `{type, data}` with `data` parsed.
     */
    async *ask(question, history = []) {
      const body = { question, collection: this.collection };
      if (history.length) body.history = history;
      const response = await this.#fetch(
        "v1/ask/stream",
        {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
          body: JSON.stringify(body),
        },
        { ...MESSAGES.status, 404: MESSAGES.noCollection },
      );
      try {
        for await (const event of readEventStream(response.body)) {
          yield { type: event.type, data: JSON.parse(event.data) };
        }
      } catch (error) {
        if (error instanceof TypeError) throw new ServiceError(MESSAGES.interrupted);
        throw error;
      }
    }

    /**
     * The cited paragraph of `file` with up to one neighbour on each side (a publishable key
     * gets as many as the service allows, by default none). `token` is the citation's proof
     * that the answer cited it, without which a publishable key is refused.
     */
    async paragraph(file, number, token, signal) {
      // File names may contain folders: keep the slashes, encode everything else.
      const id = file.split("/").map(encodeURIComponent).join("/");
      const query = new URLSearchParams({ context: "1", collection: this.collection });
      if (token) query.set("token", token);
      const path = `v1/documents/${id}/paragraphs/${number}?${query}`;
      const refusals = { ...MESSAGES.status, 403: MESSAGES.citationRefused };
      const response = await this.#fetch(path, { signal }, refusals);
      return response.json();
    }

    /**
     * The original file of a cited paragraph, as a blob URL the browser's PDF viewer opens
     * (a link could not carry the key, which travels in a header).
     */
    async original(file, number, token) {
      const id = file.split("/").map(encodeURIComponent).join("/");
      const query = new URLSearchParams({
        paragraph: String(number),
        collection: this.collection,
      });
      if (token) query.set("token", token);
      const refusals = { ...MESSAGES.status, 403: MESSAGES.citationRefused };
      const response = await this.#fetch(`v1/documents/${id}/raw?${query}`, {}, refusals);
      return URL.createObjectURL(await response.blob());
    }

    async #fetch(path, init, statusMessages = MESSAGES.status) {
      const headers = new Headers(init.headers);
      if (this.key) headers.set("Authorization", `Bearer ${this.key}`);
      let response;
      try {
        response = await fetch(new URL(path, this.base), {
          ...init,
          headers,
          // The key authenticates; the service's cookies have no business in a host page.
          credentials: "omit",
          // The service checks which page a publishable key is used from, and browsers send
          // no Origin header on same-origin GETs: the referrer carries it, and never the path.
          referrerPolicy: "origin",
        });
      } catch (error) {
        if (error.name === "AbortError") throw error;
        throw new ServiceError(MESSAGES.unreachable);
      }
      if (!response.ok) throw await httpError(response, statusMessages);
      return response;
    }
  }

  async function httpError(response, statusMessages) {
    const friendly = statusMessages[response.status];
    if (friendly) return new ServiceError(friendly);
    const body = await response.json().catch(() => null);
    const detail = describe(body?.detail);
    return new ServiceError(`问答服务出错（HTTP ${response.status}）：${detail}`);
  }

  /** A readable `detail`: a message, or the list of validation errors FastAPI returns for 422. */
  function describe(detail) {
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) return detail.map((item) => item.msg).join("；");
    return "未知错误";
  }

  /**
   * The first `n` characters of `text`, counted as the service counts them (code points).
   * `slice` counts UTF-16 units: it could cut a character outside the BMP (a rare hanzi of
   * CJK Extension B, an emoji) in half, and the service refuses the lone surrogate left.
   */
  function firstCharacters(text, n) {
    return Array.from(text).slice(0, n).join("");
  }

  // -- The conversation --------------------------------------------------------------------------

  /**
   * The turns asked and answered so far, kept in sessionStorage: they survive a reload of the
   * page (and are sent as the history of the next question) but not the closing of the tab.
   */
  class Conversation {
    // Turns sent with a question: the service rewrites a follow-up from the last few only.
    static SENT_TURNS = 6;
    static ANSWER_CHARS = 500; // of each answer sent back: its opening names what it is about

    constructor(key) {
      this.key = key;
      this.turns = this.#load();
    }

    /**
     * What the service is sent as `history`: the last turns, answers cut short, within the
     * service's limits (a history past them is refused, and every later question with it).
     */
    history() {
      const turns = Math.min(Conversation.SENT_TURNS, SERVICE.historyTurns);
      const sent = [];
      let chars = 0; // in characters, as the service counts them: not UTF-16 units
      for (const { question, answer } of [...this.turns].reverse()) {
        if (sent.length === turns) break;
        const turn = {
          question,
          answer: firstCharacters(answer.answer, Conversation.ANSWER_CHARS),
        };
        chars += Array.from(turn.question).length + Array.from(turn.answer).length;
        if (chars > SERVICE.historyChars) break;
        sent.push(turn);
      }
      return sent.reverse();
    }

    add(question, answer) {
      // The passages are the bulk of an answer and are not shown again: not stored.
      const { passages, ...shown } = answer;
      this.turns.push({ question, answer: shown });
      this.#save();
    }

    clear() {
      this.turns = [];
      try {
        sessionStorage.removeItem(this.key);
      } catch {
        // Storage disabled: there is nothing to clear.
      }
    }

    #load() {
      try {
        const turns = JSON.parse(sessionStorage.getItem(this.key) ?? "[]");
        return Array.isArray(turns) ? turns.filter((t) => t?.question && t?.answer) : [];
      } catch {
        return []; // storage disabled or a damaged entry: start afresh
      }
    }

    #save() {
      try {
        sessionStorage.setItem(this.key, JSON.stringify(this.turns));
      } catch {
        // Storage full or disabled: the conversation still works until the page is left.
      }
    }
  }

  // -- DOM helpers -------------------------------------------------------------------------------

  /** An element with attributes and children; strings always go in as text nodes. */
  function h(tag, attributes = {}, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
    element.append(...children);
    return element;
  }

  /** The paragraph's text with the first occurrence of `quote` in a <mark>. */
  function highlighted(text, quote) {
    const at = quote ? text.indexOf(quote) : -1;
    if (at < 0) return [text];
    return [text.slice(0, at), h("mark", {}, quote), text.slice(at + quote.length)];
  }

  /** The cited paragraph between its dimmed neighbours, the quote marked. */
  function paragraphView({ paragraph, before, after }, quote) {
    const neighbour = (p) => h("p", { class: "context" }, p.text);
    return [
      ...before.map(neighbour),
      h("p", { class: "cited" }, ...highlighted(paragraph.text, quote)),
      ...after.map(neighbour),
    ];
  }

  // -- One answer in the conversation ------------------------------------------------------------

  /** The bubble of one answer: a status while waiting, the streamed text, then its citations. */
  class AnswerBubble {
    #streamed = false;

    /** @param onCite called with (citation, its button) when a citation is chosen */
    constructor(onCite) {
      this.onCite = onCite;
      this.text = h("p", { part: "answer-text", class: "pending" }, MESSAGES.searching);
      this.element = h("div", { part: "answer", class: "bubble answer" }, this.text);
      this.element.dataset.state = "streaming";
    }

    status(message) {
      if (!this.#streamed) this.text.textContent = message;
    }

    append(piece) {
      if (!this.#streamed) {
        this.#streamed = true;
        this.#setText("");
      }
      this.text.append(piece);
    }

    finish(answer) {
      // The whole answer replaces the streamed pieces: it is the authoritative text (an LLM's
      // checked answer, without citations of passages it was not given, or the fallback).
      this.#setText(answer.answer);
      this.#markUnsupported(answer.unsupported ?? []);
      const standalone = answer.standalone_question;
      if (standalone && standalone !== answer.question) {
        const note = h("p", { part: "standalone", class: "standalone" }, MESSAGES.understoodAs(standalone));
        this.text.before(note);
      }
      if (!answer.abstained && answer.short_answer) {
        this.#showShort(answer.short_answer, answer.citations);
      }
      if (answer.abstained) this.element.dataset.abstained = "";
      else if (answer.citations.length) this.element.append(this.#citations(answer.citations));
      this.element.dataset.state = "done";
    }

    fail(message) {
      this.#setText(message);
      this.element.dataset.state = "error";
    }

    #setText(text) {
      this.text.classList.remove("pending");
      this.text.textContent = text;
    }

    /**
     * The short answer first, in bold, above the cited sentence, where it is marked: found
     * through its citation's quote in the text, then its offsets inside that quote.
     */
    #showShort(short, citations) {
      const cited = citations.find((c) => c.n === short.citation);
      const text = this.text.textContent;
      const at = cited ? text.indexOf(cited.quote) : -1;
      if (at < 0 || this.text.childNodes.length > 1) return;
      const [a, b] = [at + short.quote_start, at + short.quote_end];
      if (text.slice(a, b) !== short.text) return;
      const mark = h("mark", { part: "short-mark" }, short.text);
      this.text.replaceChildren(text.slice(0, a), mark, text.slice(b));
      const head = h("p", { part: "short-answer", class: "short" }, h("strong", {}, short.text));
      this.element.insertBefore(head, this.text);
    }

    /** Wraps each sentence that cites no passage (an LLM's unsupported claim) in a mark-up. */
    #markUnsupported(sentences) {
      let rest = this.text.textContent;
      const nodes = [];
      for (const sentence of sentences) {
        const at = rest.indexOf(sentence);
        if (at < 0) continue;
        const mark = h("span", { part: "unsupported", class: "unsupported" }, sentence);
        mark.title = MESSAGES.unsupported;
        nodes.push(rest.slice(0, at), mark);
        rest = rest.slice(at + sentence.length);
      }
      if (nodes.length) this.text.replaceChildren(...nodes, rest);
    }

    #citations(citations) {
      const items = citations.map((citation) => {
        // Same reading as the command line's: file [sheet] p.N ¶M.
        const sheet = citation.sheet == null ? "" : ` [${citation.sheet}]`;
        const page = citation.page == null ? "" : ` p.${citation.page}`;
        const label = `[${citation.n}] ${citation.file}${sheet}${page} ¶${citation.paragraph}`;
        const attributes = { type: "button", part: "citation", class: "citation" };
        const button = h("button", { ...attributes, title: citation.quote }, label);
        button.addEventListener("click", () => this.onCite(citation, button));
        return h("li", {}, button);
      });
      return h("ol", { class: "citations", "aria-label": "出处" }, ...items);
    }
  }

  // -- The element -------------------------------------------------------------------------------

  const STYLE = `
    /* !important: the host element is the one node page CSS can select, and in the cascade
       a shadow root's important declarations beat the page's. "all" leaves out direction. */
    :host {
      all: initial !important;
      display: block !important;
      direction: ltr !important;
      unicode-bidi: isolate !important;
    }
    /* px, not rem: rem follows the host page's root font size. */
    .root {
      --accent: #1d4ed8;
      --accent-dark: #1e3a8a;
      --line: #d4d4d8;
      --muted: #52525b;
      color-scheme: light;
      font: 15px/1.6 system-ui, -apple-system, "PingFang SC", "Hiragino Sans GB",
        "Microsoft YaHei", "Noto Sans CJK SC", sans-serif;
      color: #18181b;
      text-align: start;
    }
    *, *::before, *::after { box-sizing: border-box; }
    [hidden] { display: none !important; }
    button, textarea { font: inherit; color: inherit; }
    button { cursor: pointer; }
    :focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }

    .launcher {
      position: fixed; right: 20px; bottom: 20px; z-index: 2147483000;
      width: 56px; height: 56px; border: 0; border-radius: 50%;
      background: var(--accent); color: #fff;
      box-shadow: 0 4px 14px rgb(0 0 0 / 0.25);
      display: grid; place-items: center;
    }
    .launcher:hover { background: var(--accent-dark); }
    .launcher svg { width: 26px; height: 26px; }

    .panel {
      position: fixed; right: 20px; bottom: 88px; z-index: 2147483000;
      width: 380px; height: min(600px, calc(100vh - 108px));
      display: flex; flex-direction: column;
      background: #fff; border: 1px solid var(--line); border-radius: 12px;
      box-shadow: 0 12px 32px rgb(0 0 0 / 0.2); overflow: hidden;
    }
    header {
      display: flex; align-items: center; gap: 8px; padding: 10px 12px 10px 16px;
      background: var(--accent); color: #fff;
    }
    h2 { flex: 1; margin: 0; font-size: 16px; font-weight: 600; }
    .icon-button {
      width: 32px; height: 32px; border: 0; border-radius: 6px;
      background: transparent; color: inherit; font-size: 22px; line-height: 1;
    }
    .icon-button:hover { background: rgb(255 255 255 / 0.15); }
    .new-conversation {
      padding: 4px 10px; border: 1px solid rgb(255 255 255 / 0.6); border-radius: 6px;
      background: transparent; color: inherit; font-size: 13px; white-space: nowrap;
    }
    .new-conversation:hover { background: rgb(255 255 255 / 0.15); }
    .new-conversation:disabled { opacity: 0.5; cursor: default; }

    .conversation, .reader { flex: 1; display: flex; flex-direction: column; min-height: 0; }
    .log {
      flex: 1; overflow-y: auto; padding: 12px;
      display: flex; flex-direction: column; gap: 10px;
    }
    .hint { margin: auto 0; color: var(--muted); text-align: center; }
    .bubble { max-width: 88%; padding: 8px 12px; border-radius: 12px; overflow-wrap: anywhere; }
    .bubble p { margin: 0; white-space: pre-wrap; }
    .question { align-self: flex-end; background: var(--accent); color: #fff; }
    .answer { align-self: flex-start; background: #f4f4f5; }
    .answer[data-abstained] { background: #fffbeb; color: #78350f; border: 1px dashed #d97706; }
    .answer[data-state="error"] { background: #fef2f2; color: #991b1b; }
    .pending { color: var(--muted); }
    .bubble .standalone { margin-bottom: 4px; color: var(--muted); font-size: 13px; }
    .unsupported { text-decoration: underline dotted #b45309; text-underline-offset: 3px; }
    .citations {
      list-style: none; margin: 8px 0 0; padding: 0;
      display: flex; flex-wrap: wrap; gap: 6px;
    }
    .citation {
      max-width: 100%; padding: 2px 10px; border: 1px solid var(--accent); border-radius: 999px;
      background: #fff; color: var(--accent); font-size: 13px;
      overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
    }
    .citation:hover { background: #eff6ff; }

    form { display: flex; gap: 8px; padding: 10px 12px; border-top: 1px solid var(--line); }
    textarea {
      flex: 1; min-height: 40px; max-height: 120px; padding: 8px 10px; resize: none;
      field-sizing: content; border: 1px solid var(--line); border-radius: 8px; background: #fff;
    }
    .send {
      padding: 0 16px; border: 0; border-radius: 8px;
      background: var(--accent); color: #fff;
    }
    .send:disabled { background: #a1a1aa; cursor: default; }

    .reader-bar {
      display: flex; align-items: center; gap: 8px; padding: 8px 12px;
      border-bottom: 1px solid var(--line);
    }
    .back {
      flex: none; padding: 4px 10px; border: 1px solid var(--line); border-radius: 6px;
      background: #fff; white-space: nowrap;
    }
    h3 { margin: 0; font-size: 14px; font-weight: 600; color: var(--muted); }
    .reader-body { flex: 1; overflow-y: auto; padding: 12px 16px; }
    .reader-body p { margin: 0 0 12px; white-space: pre-wrap; }
    .reader-body .context { color: #71717a; font-size: 14px; }
    .reader-body .cited { padding-left: 10px; border-left: 3px solid var(--accent); }
    .reader-body .original { font: inherit; padding: 6px 12px; cursor: pointer; }
    mark { background: #fde68a; color: inherit; padding: 0 1px; }
    .short { margin: 0 0 4px; font-size: 17px; }
    .short + [part=answer-text] { color: var(--muted); font-size: 14px; }

    @media (max-width: 480px) {
      .panel { inset: 0; width: auto; height: auto; border: 0; border-radius: 0; }
    }
  `;

  // Static markup only: text from the service or the page never goes through innerHTML.
  const TEMPLATE = `
    <div class="root">
      <button part="launcher" class="launcher" type="button" aria-expanded="false"
          aria-controls="panel" aria-label="打开问答">
        <svg viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor"
            stroke-width="2" stroke-linecap="round" stroke-linejoin="round">
          <path d="M21 12a8 8 0 0 1-11.6 7.1L4 20l1-4.6A8 8 0 1 1 21 12z"/>
        </svg>
      </button>
      <section part="panel" class="panel" id="panel" role="dialog" aria-labelledby="title" hidden>
        <header>
          <h2 id="title"></h2>
          <button part="new-conversation" class="new-conversation" type="button"></button>
          <button part="close" class="icon-button" type="button" aria-label="关闭问答">×</button>
        </header>
        <div class="conversation">
          <div part="log" class="log" role="log" aria-live="polite">
            <p class="hint"></p>
          </div>
          <form>
            <textarea part="input" rows="1" aria-label="你的问题" enterkeyhint="send"
                placeholder="输入问题，回车发送"></textarea>
            <button part="send" class="send" type="submit">发送</button>
          </form>
        </div>
        <div part="reader" class="reader" hidden>
          <div class="reader-bar">
            <button part="back" class="back" type="button">← 返回对话</button>
            <h3 tabindex="-1"></h3>
          </div>
          <div class="reader-body" aria-live="polite"></div>
        </div>
      </section>
    </div>
  `;

  class RagChat extends HTMLElement {
    #client = new ServiceClient(config);
    // One conversation per service and collection: pages of one site may answer from
    // different collections, whose turns (and citation tokens) mean nothing to each other.
    #conversation = new Conversation(`rag-chat:${config.base.href}:${config.collection}`);
    #ui;
    #asking = false;
    #reading = null; // AbortController of the paragraph being loaded
    #citationButton = null; // where focus returns when leaving the reader

    constructor() {
      super();
      const root = this.attachShadow({ mode: "open" });
      const template = document.createElement("template");
      template.innerHTML = TEMPLATE;
      root.append(h("style", {}, STYLE), template.content);
      const $ = (selector) => root.querySelector(selector);
      this.#ui = {
        launcher: $("[part=launcher]"),
        panel: $("[part=panel]"),
        close: $("[part=close]"),
        newConversation: $("[part=new-conversation]"),
        conversation: $(".conversation"),
        log: $("[part=log]"),
        form: $("form"),
        input: $("[part=input]"),
        send: $("[part=send]"),
        reader: $("[part=reader]"),
        back: $("[part=back]"),
        source: $(".reader-bar h3"),
        paragraphs: $(".reader-body"),
      };
      $("#title").textContent = config.title;
      $(".hint").textContent = MESSAGES.hint;
      this.#ui.newConversation.textContent = MESSAGES.newConversation;
      this.#bindEvents();
      this.#restore();
    }

    /** Shows the turns of this tab's conversation again, after a reload. */
    #restore() {
      for (const { question, answer } of this.#conversation.turns) {
        const bubble = this.#append(question);
        bubble.finish(answer);
      }
    }

    /** A question bubble and an answer bubble for it, appended to the log. */
    #append(question) {
      this.#ui.log.querySelector(".hint")?.remove();
      const asked = h("div", { part: "question", class: "bubble question" }, h("p", {}, question));
      const bubble = new AnswerBubble((citation, button) => this.#showCitation(citation, button));
      this.#ui.log.append(asked, bubble.element);
      return bubble;
    }

    /** Forgets the conversation: the next question is asked without history. */
    #newConversation() {
      if (this.#asking) return;
      this.#conversation.clear();
      this.#ui.log.replaceChildren(h("p", { class: "hint" }, MESSAGES.hint));
      // The button is in the header, on screen in the reader too: leave the reader for the
      // new, empty conversation, its input focused (the citations it returned to are gone).
      this.#citationButton = null;
      this.#showConversation();
    }

    #bindEvents() {
      const ui = this.#ui;
      ui.launcher.addEventListener("click", () => (ui.panel.hidden ? this.#open() : this.#close()));
      ui.close.addEventListener("click", () => this.#close());
      ui.newConversation.addEventListener("click", () => this.#newConversation());
      ui.back.addEventListener("click", () => this.#showConversation());
      ui.panel.addEventListener("keydown", (event) => {
        if (event.key === "Escape") this.#close();
      });
      ui.input.addEventListener("keydown", (event) => {
        // isComposing: Enter also confirms a candidate in Chinese input methods.
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          ui.form.requestSubmit();
        }
      });
      ui.form.addEventListener("submit", (event) => {
        event.preventDefault();
        this.#submit();
      });
    }

    #open() {
      this.#setOpen(true);
      (this.#ui.reader.hidden ? this.#ui.input : this.#ui.back).focus();
    }

    #close() {
      this.#setOpen(false);
      this.#ui.launcher.focus();
    }

    #setOpen(open) {
      const { launcher, panel } = this.#ui;
      panel.hidden = !open;
      launcher.setAttribute("aria-expanded", String(open));
      launcher.setAttribute("aria-label", open ? "关闭问答" : "打开问答");
    }

    #submit() {
      const question = this.#ui.input.value.trim();
      if (!question || this.#asking) return;
      this.#ui.input.value = "";
      this.#ask(question);
    }

    async #ask(question) {
      this.#setAsking(true);
      const bubble = this.#append(question);
      this.#ui.log.scrollTop = this.#ui.log.scrollHeight;
      try {
        await this.#stream(question, bubble);
      } catch (error) {
        if (!(error instanceof ServiceError)) console.error("rag-chat:", error);
        bubble.fail(error instanceof ServiceError ? error.message : MESSAGES.incomplete);
      } finally {
        this.#setAsking(false);
        this.#followLog();
      }
    }

    async #stream(question, bubble) {
      const history = this.#conversation.history();
      for await (const { type, data } of this.#client.ask(question, history)) {
        if (type === "retrieval") bubble.status(MESSAGES.composing);
        else if (type === "delta") bubble.append(data.text);
        else if (type === "answer") {
          this.#conversation.add(question, data);
          return bubble.finish(data);
        }
        else if (type === "error") throw new ServiceError(data.detail);
        this.#followLog();
      }
      throw new ServiceError(MESSAGES.incomplete);
    }

    #setAsking(asking) {
      this.#asking = asking;
      this.#ui.send.disabled = asking;
      this.#ui.newConversation.disabled = asking;
      // Screen readers then announce the finished answer, not every streamed piece.
      this.#ui.log.setAttribute("aria-busy", String(asking));
    }

    /** Keeps the newest text in view, unless the visitor scrolled up to read something. */
    #followLog() {
      const log = this.#ui.log;
      if (log.scrollHeight - log.scrollTop - log.clientHeight < 80) {
        log.scrollTop = log.scrollHeight;
      }
    }

    async #showCitation(citation, button) {
      const ui = this.#ui;
      this.#citationButton = button;
      this.#reading?.abort(); // a slower earlier paragraph must not replace this one
      const reading = (this.#reading = new AbortController());
      ui.conversation.hidden = true;
      ui.reader.hidden = false;
      const sheet = citation.sheet == null ? "" : ` · 工作表 ${citation.sheet}`;
      const page = citation.page == null ? "" : ` · 第 ${citation.page} 页`;
      ui.source.textContent = `${citation.file}${sheet}${page} · 第 ${citation.paragraph} 段`;
      ui.paragraphs.replaceChildren(h("p", { class: "pending" }, MESSAGES.loadingParagraph));
      ui.source.focus();
      try {
        const { file, paragraph, token } = citation;
        const found = await this.#client.paragraph(file, paragraph, token, reading.signal);
        ui.paragraphs.replaceChildren(...paragraphView(found, citation.quote));
        if (SERVICE.originals && citation.page != null && /\.pdf$/i.test(file)) {
          ui.paragraphs.append(this.#originalButton(citation));
        }
        (ui.paragraphs.querySelector("mark") ?? ui.paragraphs.querySelector(".cited"))
          .scrollIntoView({ block: "nearest" });
      } catch (error) {
        if (error.name === "AbortError") return;
        if (!(error instanceof ServiceError)) console.error("rag-chat:", error);
        const message = error instanceof ServiceError ? error.message : MESSAGES.paragraphFailed;
        ui.paragraphs.replaceChildren(h("p", {}, message));
      }
    }

    /** A button opening the cited PDF at the cited page, in a new tab. */
    #originalButton({ file, paragraph, token, page }) {
      const button = h("button", { type: "button", part: "original", class: "original" },
        MESSAGES.openOriginal(page));
      button.addEventListener("click", async () => {
        // Opened before the download: a window opened after an await is blocked as a popup.
        const opened = window.open("", "_blank");
        try {
          const url = await this.#client.original(file, paragraph, token);
          if (opened) opened.location.href = `${url}#page=${page}`;
        } catch (error) {
          opened?.close();
          const message = error instanceof ServiceError ? error.message : MESSAGES.paragraphFailed;
          this.#ui.paragraphs.append(h("p", {}, message));
        }
      });
      return button;
    }

    #showConversation() {
      this.#reading?.abort();
      this.#ui.reader.hidden = true;
      this.#ui.conversation.hidden = false;
      (this.#citationButton ?? this.#ui.input).focus();
    }
  }

  customElements.define("rag-chat", RagChat);

  const mount = () => document.body.append(document.createElement("rag-chat"));
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
})();
