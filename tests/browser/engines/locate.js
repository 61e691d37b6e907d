// Test instrumentation, not page code: find an element the way a screen reader names it.
// `(role, name, exact)` → the first visible element with that ARIA role (explicit or implicit)
// whose accessible name is `name` (exact: the whole name; else a part of it), or null.
// A simplified accessible-name computation (aria-labelledby, aria-label, <label>, alt, then the
// text), enough for the capture page, which names every control in one of these ways.
(role, name, exact) => {
  const IMPLICIT = {
    button: 'button, input[type=button], input[type=submit], [role=button]',
    link: 'a[href], [role=link]',
    heading: 'h1, h2, h3, h4, h5, h6, [role=heading]',
    region: 'section, [role=region]',
    status: '[role=status], output',
    checkbox: 'input[type=checkbox], [role=checkbox]',
    textbox: 'input:not([type]), input[type=text], input[type=tel], textarea, [role=textbox]',
    combobox: 'select, [role=combobox]',
    file: 'input[type=file]',
    listitem: 'li, [role=listitem]',
  };
  const clean = (text) => (text || '').replace(/\s+/g, ' ').trim();
  const textOf = (element) => clean(element.innerText ?? element.textContent);
  const nameOf = (element) => {
    const by = element.getAttribute('aria-labelledby');
    if (by) return clean(by.split(/\s+/).map((id) => textOf(document.getElementById(id) ?? document.createElement('i'))).join(' '));
    if (element.hasAttribute('aria-label')) return clean(element.getAttribute('aria-label'));
    if (element.labels?.length) return clean([...element.labels].map(textOf).join(' '));
    if (element.alt) return clean(element.alt);
    if (element.tagName === 'INPUT' && element.value && ['button', 'submit'].includes(element.type)) return clean(element.value);
    return textOf(element);
  };
  const visible = (element) => {
    // A file input is often hidden behind its label: its label's visibility counts.
    const target = element.type === 'file' && element.labels?.length ? element.labels[0] : element;
    if (!target.getClientRects().length) return false;
    const style = getComputedStyle(target);
    return style.visibility !== 'hidden' && style.display !== 'none';
  };
  const selector = IMPLICIT[role] ?? `[role=${role}]`;
  const candidates = [...document.querySelectorAll(selector)].filter((element) => {
    const explicit = element.getAttribute('role');
    return !explicit || explicit === role || role === 'file';
  });
  const wanted = clean(name);
  return candidates.find((element) => {
    if (!visible(element)) return false;
    if (name === null || name === undefined) return true;
    const named = nameOf(element);
    return exact ? named === wanted : named.includes(wanted);
  }) ?? null;
}
