/* Consentry consent script: asks a visitor about the purposes the operator's Consentry names,
 * remembers the answer in a first-party cookie, runs the page's scripts that wait for a purpose
 * once it is granted, tells Google Consent Mode, and records every decision on the server as
 * proof. Plain JavaScript, no dependencies, no inline styles or scripts: it runs under a CSP
 * that allows only nonces.
 *
 * <script src="https://privacy.example.com/sdk/consentry.js" nonce="..." defer></script>
 * Attributes: data-api (Consentry's address; default: where this file comes from),
 * data-jurisdiction, data-lang, data-style (the stylesheet's address).
 */
(function () {
  "use strict";
  var me = document.currentScript;
  var attr = function (name) { return me && me.getAttribute(name); };
  var src = me && me.src ? new URL(me.src, location.href) : new URL(location.href);
  var api = (attr("data-api") || src.origin).replace(/\/$/, "");
  var nonce = (me && me.nonce) || attr("nonce") || "";
  var NAME = "consentry";
  var gpcSignal = navigator.globalPrivacyControl === true;
  var state = read();
  var shown = null;
  var banner = null;
  var dialog = null;
  var opener = null;

  function read() {
    var parts = document.cookie.split(/;\s*/);
    for (var i = 0; i < parts.length; i++) {
      if (parts[i].indexOf(NAME + "=") === 0) {
        try { return JSON.parse(decodeURIComponent(parts[i].slice(NAME.length + 1))); } catch (e) { return null; }
      }
    }
    return null;
  }

  function write() {
    var days = (shown && shown.cookie_days) || 365;
    var domain = shown && shown.cookie_domain;
    document.cookie = NAME + "=" + encodeURIComponent(JSON.stringify(state)) + "; Max-Age=" + days * 86400 +
      "; Path=/; SameSite=Lax" + (domain ? "; Domain=" + domain : "") + (location.protocol === "https:" ? "; Secure" : "");
  }

  function visitor() {
    if (state && state.v) return state.v;
    var bytes = new Uint8Array(18);
    crypto.getRandomValues(bytes);
    return btoa(String.fromCharCode.apply(null, bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function granted(key) { return !!(state && state.d && state.d[key] === 1); }

  function emit(name) {
    document.dispatchEvent(new CustomEvent("consentry:" + name, { detail: { purposes: (state && state.d) || {} } }));
  }

  /* Scripts written as <script type="text/plain" data-consentry-purpose="analytics"> run once
   * their purpose is granted, with their own nonce, and never twice. */
  function gate() {
    var waiting = document.querySelectorAll("script[type='text/plain'][data-consentry-purpose]");
    for (var i = 0; i < waiting.length; i++) {
      var old = waiting[i];
      if (old.hasAttribute("data-consentry-ran") || !granted(old.getAttribute("data-consentry-purpose"))) continue;
      var run = document.createElement("script");
      for (var j = 0; j < old.attributes.length; j++) {
        var a = old.attributes[j];
        if (a.name !== "type" && a.name.indexOf("data-consentry") !== 0) run.setAttribute(a.name, a.value);
      }
      run.nonce = old.nonce || old.getAttribute("nonce") || nonce;
      if (!old.src) run.text = old.text;
      old.setAttribute("data-consentry-ran", "");
      old.parentNode.insertBefore(run, old.nextSibling);
    }
  }

  /* Google Consent Mode v2: every type a purpose grants is denied until it is granted. */
  function consentMode(kind) {
    var map = state && state.m;
    if (typeof window.gtag !== "function" || !map) return;
    var types = {};
    Object.keys(map).forEach(function (key) {
      map[key].forEach(function (t) { types[t] = granted(key) ? "granted" : "denied"; });
    });
    window.gtag("consent", kind, types);
  }

  function apply(kind) {
    gate();
    consentMode(kind === "ready" ? "default" : "update");
    emit(kind);
  }

  function fetchExperience() {
    var q = [];
    if (attr("data-jurisdiction")) q.push("jurisdiction=" + encodeURIComponent(attr("data-jurisdiction")));
    /* The page may name a language; otherwise the server reads the browser's Accept-Language. */
    var lang = attr("data-lang");
    if (lang) q.push("lang=" + encodeURIComponent(lang));
    return fetch(api + "/v1/experience" + (q.length ? "?" + q.join("&") : ""), { credentials: "omit" })
      .then(function (r) { if (!r.ok) throw new Error("experience " + r.status); return r.json(); });
  }

  /* Keeps the choice, applies it at once, and records it on the server as proof. */
  function decide(decisions, method) {
    var d = (state && state.d) || {};
    decisions.forEach(function (x) { d[x.purpose] = x.granted ? 1 : 0; });
    /* r: the revision the visitor last answered in the banner (a GPC signal answers nothing). */
    state = {
      v: visitor(), r: method === "banner" ? shown.revision : (state && state.r) || "", d: d,
      m: shown.consent_mode, g: method === "gpc" || (state && state.g) || false
    };
    write();
    apply("change");
    return fetch(api + "/v1/experience/decisions", {
      method: "POST",
      credentials: "omit",
      keepalive: true,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        visitor: state.v, revision: shown.revision, jurisdiction: shown.jurisdiction || null,
        lang: shown.language, decisions: decisions, method: method
      })
    }).then(function (r) {
      if (r.status === 409) { state.r = ""; write(); start(); }
    }).catch(function () { /* the choice stands on this device; the next one is recorded */ });
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text) e.textContent = text;
    return e;
  }

  function button(text, onClick) {
    var b = el("button", "consentry-button", text);
    b.type = "button";
    b.addEventListener("click", onClick);
    return b;
  }

  function everything(value) {
    return shown.purposes.map(function (p) { return { purpose: p.key, granted: value && !(state && state.g && p.gpc_opt_out) }; });
  }

  function closeBanner() {
    if (banner) { banner.parentNode.removeChild(banner); banner = null; }
    reopenButton();
  }

  function showBanner() {
    if (banner || !shown.purposes.length) return;
    var w = shown.words;
    banner = el("section", "consentry-banner");
    banner.setAttribute("aria-labelledby", "consentry-banner-title");
    var title = el("h2", "consentry-title", w.title);
    title.id = "consentry-banner-title";
    banner.appendChild(title);
    banner.appendChild(el("p", "consentry-text", w.body));
    if (state && state.g) banner.appendChild(el("p", "consentry-text consentry-gpc", w.gpc));
    var link = el("a", "consentry-link", w.policy_link);
    link.href = shown.policy.url;
    banner.appendChild(link);
    var row = el("div", "consentry-actions");
    row.appendChild(button(w.accept_all, function () { decide(everything(true), "banner"); closeBanner(); }));
    row.appendChild(button(w.reject_all, function () { decide(everything(false), "banner"); closeBanner(); }));
    row.appendChild(button(w.customise, function () { openDialog(); }));
    banner.appendChild(row);
    document.body.appendChild(banner);
  }

  function reopenButton() {
    if (document.querySelector(".consentry-reopen") || !shown) return;
    var b = button(shown.words.reopen, function () { openDialog(); });
    b.className = "consentry-reopen";
    document.body.appendChild(b);
  }

  /* The preferences: a modal dialog, a choice per purpose with nothing ticked that the visitor
   * did not grant, focus kept inside, Escape closes. */
  function openDialog() {
    if (dialog) return;
    if (!shown) { fetchExperience().then(function (x) { shown = x; openDialog(); }); return; }
    var w = shown.words;
    opener = document.activeElement;
    dialog = el("div", "consentry-overlay");
    var box = el("div", "consentry-dialog");
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-modal", "true");
    box.setAttribute("aria-labelledby", "consentry-dialog-title");
    var title = el("h2", "consentry-title", w.dialog_title);
    title.id = "consentry-dialog-title";
    box.appendChild(title);
    box.appendChild(el("p", "consentry-text", w.dialog_body));
    var boxes = [];
    shown.purposes.forEach(function (p) {
      var item = el("div", "consentry-purpose");
      var label = el("label", "consentry-choice");
      var input = el("input");
      input.type = "checkbox";
      input.name = p.key;
      input.checked = granted(p.key);
      boxes.push(input);
      label.appendChild(input);
      label.appendChild(el("span", "consentry-purpose-title", p.title));
      item.appendChild(label);
      item.appendChild(el("p", "consentry-text", p.description));
      var facts = [];
      if (p.recipients.length) facts.push(w.recipients + " " + p.recipients.join("; "));
      if (p.kept_for) facts.push(w.kept_for + " " + p.kept_for);
      if (facts.length) item.appendChild(el("p", "consentry-facts", facts.join(" · ")));
      box.appendChild(item);
    });
    var row = el("div", "consentry-actions");
    row.appendChild(button(w.save, function () {
      decide(boxes.map(function (b) { return { purpose: b.name, granted: b.checked }; }), "banner");
      closeDialog();
      closeBanner();
    }));
    row.appendChild(button(w.accept_all, function () { decide(everything(true), "banner"); closeDialog(); closeBanner(); }));
    row.appendChild(button(w.reject_all, function () { decide(everything(false), "banner"); closeDialog(); closeBanner(); }));
    row.appendChild(button(w.close, closeDialog));
    box.appendChild(row);
    dialog.appendChild(box);
    dialog.addEventListener("keydown", function (e) {
      if (e.key === "Escape") { e.preventDefault(); closeDialog(); return; }
      if (e.key !== "Tab") return;
      var focusable = box.querySelectorAll("input, button, a[href]");
      var first = focusable[0];
      var last = focusable[focusable.length - 1];
      if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
      else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
    });
    document.body.appendChild(dialog);
    (boxes[0] || box.querySelector("button")).focus();
  }

  function closeDialog() {
    if (!dialog) return;
    dialog.parentNode.removeChild(dialog);
    dialog = null;
    if (opener && opener.focus && document.contains(opener)) opener.focus();
    else if (banner) banner.querySelector("button").focus();
  }

  /* A browser's Global Privacy Control opts out of the purposes marked for it before any banner,
   * recorded with method gpc. */
  function honourGpc() {
    if (!gpcSignal) return;
    var out = shown.purposes.filter(function (p) { return p.gpc_opt_out && !(state && state.g && state.d && p.key in state.d); });
    if (!out.length) return;
    state = state || { d: {} };
    state.g = true;
    decide(out.map(function (p) { return { purpose: p.key, granted: false }; }), "gpc");
  }

  function start() {
    fetchExperience().then(function (experience) {
      shown = experience;
      honourGpc();
      if (state && state.r === shown.revision) { reopenButton(); return; }
      showBanner();
    }).catch(function () { /* Consentry unreachable: nothing waiting runs, nothing is asked */ });
  }

  var style = el("link");
  style.rel = "stylesheet";
  style.href = attr("data-style") || new URL("consentry.css", src).href;
  if (nonce) style.nonce = nonce;
  document.head.appendChild(style);

  window.Consentry = {
    open: openDialog,
    granted: granted,
    purposes: function () { return JSON.parse(JSON.stringify((state && state.d) || {})); }
  };

  function ready() {
    /* A returning visitor's choice applies at once, with no network call. */
    if (state && state.d) apply("ready");
    start();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();
