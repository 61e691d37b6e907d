// Every sentence the capture page writes at run time is in texts-zh.js (Chinese, first) and
// texts-en.js, with the same keys; a page loads only its own language's (capture.html preloads it).
// The page's language is <html lang>; `?lang=en` on the URL switches it (see base.html).

export const english = document.documentElement.lang.startsWith('en');

let table = {};

/** Settles once the page's sentences are loaded: t() is for after it. */
export const loaded = import(english ? './texts-en.js' : './texts-zh.js').then((module) => {
  table = module.default;
});

/** The sentence `key` in the page's language, with `{name}` placeholders filled from `values`. */
export function t(key, values = {}) {
  const text = table[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ''));
}

/** Pick the server's Chinese or English wording of a message object. */
export function pick(zh, en) {
  return (english ? en : zh) || zh || en || '';
}
